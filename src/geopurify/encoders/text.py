"""The text side: the paper's prompt, its class vocabularies, and reading ``text_embeddings.npz``.

Prompt and background follow the released GeoPurify (``tj12323/GeoPurify`` at ``d4f323a``,
``models/affinity_module.py`` lines 241-248 and the X-Decoder ``forward_seg_all``): every class becomes
``"a {class} in a scene"``; X-Decoder's vocabulary gets one more entry, ``"background"``, last, which is
the column dropped from the query scores and the row dropped from the text embeddings points are
classified against (background is never a class). The class lists are the released configs'
``DATA.all_label`` (``config/geopurify_{scannet,scannet200,matterport,matterport40,...}.yaml``), which
differ from :mod:`geopurify.labels` only as :data:`RELEASED_DIFFERENCES` says.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError, load_reason
from .base import TextEmbeddings

#: The paper's prompt (OpenScene's and GeoPurify's ``prompt_eng``).
PROMPT_TEMPLATE = "a {} in a scene"
#: The extra, last entry of X-Decoder's vocabulary (its no-object column).
XDECODER_BACKGROUND = "background"

#: How the released configs' class lists differ from our label sets (names as in geopurify.labels):
#: ``drop`` classes absent from the released list, ``rename`` spellings the released list uses.
RELEASED_DIFFERENCES: dict[str, dict] = {
    "scannet20": {"drop": ["otherfurniture"], "rename": {}},  # 19 classes, as the paper evaluates
    "scannet200": {"drop": [], "rename": {}},
    "matterport21": {"drop": [], "rename": {"other": "otherfurniture", "refrigerator": "refridgerator"}},
    "matterport40": {"drop": [], "rename": {}},
    "matterport80": {"drop": [], "rename": {"refrigerator": "refridgerator"}},
    "matterport160": {
        "drop": [],
        "rename": {"refrigerator": "refridgerator", "exercise equipment": "excercise equipment"},
    },
}


def released_classes(label_set: str) -> list[str]:
    """The class names the released GeoPurify prompts for ``label_set`` (e.g. 19 for ``scannet20``)."""
    from ..labels import get_label_set

    ls = get_label_set(label_set)
    diff = RELEASED_DIFFERENCES.get(ls.name)
    if diff is None:
        raise ConfigError(
            f"no released GeoPurify class list for {ls.name!r}; choose one of: {', '.join(RELEASED_DIFFERENCES)}"
        )
    return [diff["rename"].get(n, n) for n in ls.names if n not in diff["drop"]]


def vocabulary(classes: str | list[str] | tuple[str, ...]) -> list[str]:
    """Class names from a label-set name (its released list) or a comma-separated / explicit list."""
    if isinstance(classes, str):
        from ..labels import get_label_set

        if "," not in classes:
            try:
                ls = get_label_set(classes)
            except ConfigError:
                ls = None
            if ls is not None:
                return released_classes(ls.name) if ls.name in RELEASED_DIFFERENCES else list(ls.names)
        classes = classes.split(",")
    names = [str(c).strip() for c in classes if str(c).strip()]
    if not names:
        raise ConfigError("the class vocabulary is empty: pass a label-set name or class names")
    if len(set(names)) != len(names):
        raise ConfigError(f"the class vocabulary has duplicate names: {names}")
    return names


def load_text_embeddings(path: str | Path) -> TextEmbeddings:
    """Read ``names`` (C,) strings and ``embeddings`` (C, D) floats; rows come back unit-normalised.

    Raises InputError naming the file when it is missing, unreadable or inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: text-embedding file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "names" not in z.files or "embeddings" not in z.files:
                raise InputError(f"{path}: needs arrays 'names' and 'embeddings', found {sorted(z.files)}")
            names, emb = z["names"], z["embeddings"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: unreadable text-embedding file ({load_reason(exc)})") from None
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise InputError(f"{path}: 'names' must be a 1-D string array, got {names.dtype} {names.shape}")
    if emb.ndim != 2 or len(emb) != len(names) or not np.issubdtype(emb.dtype, np.floating):
        raise InputError(f"{path}: 'embeddings' must be float ({len(names)}, D), got {emb.dtype} {emb.shape}")
    if emb.size == 0:  # no class to choose, or 0-d vectors: every argmax downstream would fail
        raise InputError(f"{path}: holds no class embeddings (shape {emb.shape}); expected (C, D) with C, D >= 1")
    if not np.all(np.isfinite(emb)):
        raise InputError(f"{path}: 'embeddings' holds NaN or infinite values")
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    if np.any(norms == 0):
        raise InputError(f"{path}: class {names[np.argmin(norms)]!s} has an all-zero embedding")
    names_list = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    if len(set(names_list)) != len(names_list):
        raise InputError(f"{path}: duplicate class names")
    return TextEmbeddings(names=names_list, embeddings=(emb / norms[:, None]).astype(np.float32))
