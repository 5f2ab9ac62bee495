"""Open-vocabulary queries: score points against phrases, select masks, rank phrases."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, InputError
from .classify import DEFAULT_CHUNK, ArrayLike, similarity


def query_scores(features: ArrayLike, text: ArrayLike, chunk: int = DEFAULT_CHUNK) -> ArrayLike:
    """Cosine scores ``(N, Q)`` float32 of ``features (N, D)`` with ``Q`` query embeddings.

    ``text`` may be ``(Q, D)`` or a single ``(D,)`` phrase (then ``Q = 1``).
    """
    if hasattr(text, "ndim") and text.ndim == 1:
        text = text[None, :]
    return similarity(features, text, chunk=chunk)


def mask_from_scores(scores: ArrayLike, threshold: float | None = None, top: int | None = None) -> np.ndarray:
    """Point indices ``(M,)`` int64, ascending, selected from ``scores (N,)``.

    Exactly one of ``threshold`` (keep ``score >= threshold``) or ``top`` (keep the ``top`` highest;
    ties at the cut are broken by the lower index; ``top > N`` keeps all) must be given.
    """
    if (threshold is None) == (top is None):
        raise ConfigError("mask_from_scores: give exactly one of threshold= or top=")
    s = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    if s.ndim != 1:
        raise InputError(f"mask_from_scores: scores must be 1-D (N,), got shape {s.shape}")
    if threshold is not None:
        if not math.isfinite(threshold):
            raise ConfigError(f"mask_from_scores: threshold must be finite, got {threshold!r}")
        return np.flatnonzero(s >= threshold).astype(np.int64)
    if int(top) != top or top < 1:
        raise ConfigError(f"mask_from_scores: top must be a positive integer, got {top!r}")
    top = min(int(top), len(s))
    # NaN scores never win: treat them as -inf. Stable sort keeps the lower index on ties.
    key = np.where(np.isnan(s), -np.inf, s)
    order = np.argsort(-key, kind="stable")[:top]
    return np.sort(order).astype(np.int64)


@dataclass
class PhraseRanking:
    """How well each phrase matches a point set, best first.

    Attributes:
        names: ``Q`` phrase names, reordered best first.
        mean_score: ``(Q,)`` float32 mean cosine over the points, best first.
        votes: ``(Q,)`` float32 fraction of points whose best phrase it is, in the same order.
        order: ``(Q,)`` int64 original phrase index of each row.
    """

    names: list[str]
    mean_score: np.ndarray
    votes: np.ndarray
    order: np.ndarray

    @property
    def best(self) -> str:
        """Name of the best-matching phrase."""
        return self.names[0]


def rank_phrases(
    features: ArrayLike,
    text: ArrayLike,
    names: list[str] | None = None,
    points: ArrayLike | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> PhraseRanking:
    """Rank ``Q`` phrases ``text (Q, D)`` by their mean cosine with a point set.

    Args:
        features: ``(N, D)`` per-point features.
        text: ``(Q, D)`` phrase embeddings.
        names: ``Q`` phrase names (default ``"0"``, ``"1"``, ...).
        points: optional ``(M,)`` indices (or ``(N,)`` bool mask) of the set; default all points.
        chunk: rows per chunk for the scores.
    """
    if points is not None:
        idx = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            raise InputError("rank_phrases: the point set is empty")
        features = features[torch.as_tensor(idx) if isinstance(features, torch.Tensor) else idx]
    if features.shape[0] == 0:
        raise InputError("rank_phrases: the point set is empty")
    q = text.shape[0]
    names = [str(i) for i in range(q)] if names is None else list(names)
    if len(names) != q:
        raise InputError(f"rank_phrases: {len(names)} names for {q} phrase embeddings")
    scores = query_scores(features, text, chunk=chunk)
    scores = scores.cpu().numpy() if isinstance(scores, torch.Tensor) else scores
    mean = scores.mean(axis=0).astype(np.float32)
    votes = (np.bincount(scores.argmax(axis=1), minlength=q) / len(scores)).astype(np.float32)
    order = np.argsort(-mean, kind="stable").astype(np.int64)
    return PhraseRanking(
        names=[names[i] for i in order], mean_score=mean[order], votes=votes[order], order=order
    )


# ---- phrases <-> class names (shared by query, eval's name matching and the viewer)
_TEMPLATES = [
    r"^(?:a|an)\s+(?:photo|picture|image|rendering)\s+of\s+(?:a|an|the)?\s*(.+?)$",
    r"^there\s+is\s+(?:a|an|the)?\s*(.+?)\s+in\s+the\s+(?:scene|room)$",
    r"^(?:a|an|the)?\s*(.+?)\s+in\s+(?:a|the)\s+(?:scene|room)$",
    r"^(?:a|an|the)\s+(.+)$",
]


def normalize_phrase(phrase: str) -> str:
    """Lower-case, drop punctuation and prompt templates: 'A photo of a Chair.' -> 'chair'."""
    s = re.sub(r"[^\w\s/-]", " ", phrase.lower())
    s = re.sub(r"[\s_]+", " ", s).strip()
    for pat in _TEMPLATES:
        m = re.match(pat, s)
        if m:
            s = m.group(1).strip()
    return s


def match_phrase(phrase: str, names: list[str]) -> int | None:
    """Index of the class name a phrase refers to (exact, then template-normalised, then singular)."""
    if phrase in names:
        return names.index(phrase)
    norm = [normalize_phrase(n) for n in names]
    p = normalize_phrase(phrase)
    for cand in (p, re.sub(r"es$", "", p), re.sub(r"s$", "", p)):
        if cand and cand in norm:
            return norm.index(cand)
    return None


#: names that mean the same class (eval's name matching and the phrase lookup)
CLASS_ALIASES = {"other": "otherfurniture", "other furniture": "otherfurniture", "fridge": "refrigerator"}


def norm_name(name: str) -> str:
    """A class name or prompt reduced to the bare name ("a chair in a scene" -> "chair"), with aliases."""
    n = normalize_phrase(name)
    return CLASS_ALIASES.get(n, n)


def phrase_slug(phrase: str, index: int) -> str:
    """A file-name stem for a phrase ("A red chair!" -> "a_red_chair"), ``q<index>`` when nothing is left."""
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")[:60] or f"q{index}"


def check_phrases(phrases: list[str]) -> list[str]:
    """``phrases`` as a list of non-empty strings; refuses (:class:`ConfigError`) a bare string, which
    would be searched letter by letter, an empty list and anything that is not text.

    >>> check_phrases(("sofa", "a red chair"))
    ['sofa', 'a red chair']
    >>> check_phrases("sofa")
    Traceback (most recent call last):
    ...
    geopurify.errors.ConfigError: query: phrases must be a list of strings, got the string 'sofa'; pass ['sofa']
    """
    if isinstance(phrases, str):
        raise ConfigError(f"query: phrases must be a list of strings, got the string {phrases!r}; pass [{phrases!r}]")
    try:
        out = list(phrases)
    except TypeError:
        raise ConfigError(f"query: phrases must be a list of strings, got {type(phrases).__name__}") from None
    if not out:
        raise ConfigError("query: no phrases; give at least one, e.g. ['a red office chair']")
    bad = [ph for ph in out if not isinstance(ph, str)]
    if bad:
        raise ConfigError(f"query: phrases must be strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    if any(not ph.strip() for ph in out):
        raise ConfigError("query: an empty phrase; give words to search for, e.g. 'a red office chair'")
    return out


def phrase_slugs(phrases: list[str]) -> list[str]:
    """One file-name stem per phrase (:func:`phrase_slug`), distinct for distinct phrases: a phrase whose
    stem an earlier, different phrase took gets ``_2``, ``_3``, ... ("tv/stand", "tv stand" ->
    tv_stand, tv_stand_2); a repeated phrase keeps its first stem."""
    taken: dict[str, str] = {}  # stem -> phrase
    by_phrase: dict[str, str] = {}
    out = []
    for j, ph in enumerate(phrases):
        if ph not in by_phrase:
            base = stem = phrase_slug(ph, j)
            k = 1
            while stem in taken:
                k += 1
                stem = f"{base}_{k}"
            taken[stem], by_phrase[ph] = ph, stem
        out.append(by_phrase[ph])
    return out


def phrase_embeddings(out_dir, run: dict, phrases: list[str], text: str | None = None,
                      encoder: str | None = None, weights: str | None = None) -> np.ndarray:
    """(Q, D) float32 embeddings of the phrases: an encoder's text tower, or lookup by class name in a
    text-embedding file (default ``out_dir/text_embeddings.npz``).

    Without ``encoder`` and ``text``, the encoder recorded in ``run`` (run.json) is used when it has a
    text tower.
    """
    from pathlib import Path

    from ..encoders import build_encoder, load_text_embeddings

    if any(not str(ph).strip() for ph in phrases):
        raise ConfigError("query: an empty phrase; give words to search for, e.g. 'a red office chair'")
    opts: dict = {"weights": weights} if weights else {}
    if not encoder and not text:
        lift_cfg = (run.get("config") or {}).get("lift") or {} if isinstance(run, dict) else {}
        if lift_cfg.get("encoder") not in (None, "auto", "precomputed"):
            encoder = lift_cfg["encoder"]
            opts = {**lift_cfg.get("encoder_options", {}), **opts}
    if encoder:
        return np.asarray(build_encoder(encoder, **opts).encode_text(list(phrases)), np.float32)
    src = Path(text) if text else Path(out_dir) / "text_embeddings.npz"
    if not src.is_file():
        raise ConfigError(f"{out_dir}: no text embeddings to encode phrases; pass --text FILE or --encoder NAME")
    te = load_text_embeddings(src)
    lookup = {norm_name(n): i for i, n in enumerate(te.names)}
    rows = []
    for ph in phrases:
        i = lookup.get(norm_name(ph))
        if i is None:
            raise ConfigError(
                f"phrase {ph!r} is not in {src} (which holds: {', '.join(te.names[:12])}...); "
                "free-form phrases need a text encoder: --encoder clip --weights PATH"
            )
        rows.append(te.embeddings[i])
    return np.stack(rows).astype(np.float32)
