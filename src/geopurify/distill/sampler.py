"""Contrastive sampling from teacher similarities, and the InfoNCE loss on student embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import knn


@dataclass
class ContrastiveSample:
    """Indices into one scene's voxels (all int64, on the teacher's device).

    Attributes:
        anchors: (A,) anchor voxels (distinct).
        positives: (A,) most teacher-similar voxel to each anchor, excluding the anchor.
        macro: (A, M) least teacher-similar voxels in the whole scene.
        micro: (A, m) least teacher-similar among the anchor's ``micro_pool`` spatial nearest neighbours.
    """

    anchors: torch.Tensor
    positives: torch.Tensor
    macro: torch.Tensor
    micro: torch.Tensor


def sample_contrastive(
    teacher: torch.Tensor,
    centers: np.ndarray,
    anchors: int = 4096,
    macro_negatives: int = 48,
    micro_negatives: int = 16,
    micro_pool: int = 96,
    generator: torch.Generator | None = None,
    chunk: int = 512,
) -> ContrastiveSample:
    """Pick anchors, positives and negatives by cosine similarity of teacher features.

    Args:
        teacher: (V, T) float teacher features of one scene.
        centers: (V, 3) float voxel centres (for the spatial neighbourhoods).
        anchors: number of anchors (capped at V).
        macro_negatives / micro_negatives: negatives per anchor (capped at what exists).
        micro_pool: spatial neighbours (excluding the anchor) searched for micro negatives.
        generator: CPU generator choosing the anchors (seeded by the trainer for reproducibility).
        chunk: anchors per similarity block; memory is O(chunk x V), never O(A x V).

    Returns:
        :class:`ContrastiveSample`.
    """
    v = teacher.shape[0]
    if v < 3:
        raise ValueError(f"need at least 3 voxels for contrastive sampling, got {v}")
    a = min(anchors, v)
    anc = torch.randperm(v, generator=generator)[:a].to(teacher.device)
    t = F.normalize(teacher.float(), dim=1)
    m_macro = min(macro_negatives, v - 1)
    pool = min(micro_pool, v - 1)
    m_micro = min(micro_negatives, pool)
    # spatial pool: k+1 nearest include the anchor itself, which we drop by index (ties at distance 0 safe)
    nn_idx, _ = knn(np.asarray(centers), np.asarray(centers)[anc.cpu().numpy()], pool + 1)
    nn_idx = torch.from_numpy(nn_idx).to(teacher.device)
    pos_out, macro_out, micro_out = [], [], []
    for s in range(0, a, chunk):
        ids = anc[s : s + chunk]
        sim = t[ids] @ t.T  # (c, V)
        rows = torch.arange(ids.numel(), device=sim.device)
        sim[rows, ids] = -torch.inf  # the anchor is neither its own positive...
        pos_out.append(sim.argmax(dim=1))
        sim[rows, ids] = torch.inf  # ...nor its own negative
        macro_out.append(sim.topk(m_macro, dim=1, largest=False).indices)
        nb = nn_idx[s : s + chunk]
        nb = _drop_self(nb, ids, pool)
        nb_sim = torch.gather(sim, 1, nb)
        micro_out.append(torch.gather(nb, 1, nb_sim.topk(m_micro, dim=1, largest=False).indices))
    return ContrastiveSample(anc, torch.cat(pos_out), torch.cat(macro_out), torch.cat(micro_out))


def _drop_self(nb: torch.Tensor, ids: torch.Tensor, pool: int) -> torch.Tensor:
    """(c, pool+1) neighbour lists -> (c, pool) without the anchor (or the farthest, if absent)."""
    is_self = nb == ids[:, None]
    # rows where the anchor is missing (duplicate centres) drop the last column instead
    missing = ~is_self.any(dim=1)
    is_self[missing, -1] = True
    first = is_self.int().argmax(dim=1, keepdim=True)
    keep = torch.ones_like(nb, dtype=torch.bool)
    keep.scatter_(1, first, False)
    return nb[keep].view(nb.shape[0], pool)


def info_nce(embeddings: torch.Tensor, sample: ContrastiveSample, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE: mean over anchors of -log softmax(logit of the positive) among [positive, negatives].

    Logits are cosine similarities of the student ``embeddings`` (V, E) divided by ``temperature``.
    Returns a scalar tensor.
    """
    e = F.normalize(embeddings, dim=1)
    anc = e[sample.anchors]  # (A, E)
    cand = torch.cat([sample.positives[:, None], sample.macro, sample.micro], dim=1)  # (A, 1+M+m)
    logits = torch.einsum("ae,ake->ak", anc, e[cand]) / temperature
    target = torch.zeros(anc.shape[0], dtype=torch.long, device=e.device)
    return F.cross_entropy(logits, target)
