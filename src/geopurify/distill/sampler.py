"""Contrastive sampling from teacher similarities, and the InfoNCE loss on student embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import knn

#: anchors per KD-tree query of :func:`contrastive_rows` ((block, micro_pool + 1) int64 at a time)
KNN_BLOCK = 65536


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
    local_positives: bool = False,
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
        local_positives: take the positive among the ``micro_pool`` spatial neighbours, not the scene.

    Returns:
        :class:`ContrastiveSample`.
    """
    anc = draw_anchors(teacher.shape[0], anchors, generator).to(teacher.device)
    pos, macro, micro = contrastive_rows(
        teacher, centers, anc, macro_negatives, micro_negatives, micro_pool, chunk, local_positives=local_positives
    )
    return ContrastiveSample(anc, pos, macro, micro)


def crop_sites(centers: np.ndarray, size: float, generator: torch.Generator, min_sites: int = 64) -> np.ndarray:
    """Sorted int64 indices of the voxels in a ``size`` x ``size`` metre (x, y) square, full height.

    The square is centred on a voxel drawn with ``generator`` (so dense parts of a scene are cropped
    more often); below ``min_sites`` voxels (an isolated corner) the whole scene is returned. Training
    on crops cuts a step's cost to the crop's share of the scene while every site keeps its full
    convolutional context inside the crop.
    """
    centers = np.asarray(centers)
    v = len(centers)
    c = centers[int(torch.randint(v, (1,), generator=generator))]
    inside = (np.abs(centers[:, 0] - c[0]) <= size / 2) & (np.abs(centers[:, 1] - c[1]) <= size / 2)
    sel = np.flatnonzero(inside)
    return sel if len(sel) >= min(min_sites, v) else np.arange(v)


def draw_anchors(num_voxels: int, anchors: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(min(anchors, V),) int64 distinct random voxel indices (CPU)."""
    if num_voxels < 3:
        raise ValueError(f"need at least 3 voxels for contrastive sampling, got {num_voxels}")
    return torch.randperm(num_voxels, generator=generator)[: min(anchors, num_voxels)]


def contrastive_rows(
    teacher: torch.Tensor,
    centers: np.ndarray,
    ids: torch.Tensor,
    macro_negatives: int,
    micro_negatives: int,
    micro_pool: int,
    chunk: int = 512,
    progress: bool = False,
    local_positives: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positive (A,), macro (A, M) and micro (A, m) negatives of the voxels ``ids`` (A,), chunked.

    The positive is the most teacher-similar voxel of the whole scene, or with ``local_positives`` of the
    anchor's ``micro_pool`` spatial neighbours (the ones pooling will weigh).
    """
    from scipy.spatial import cKDTree
    from tqdm.auto import tqdm

    v = teacher.shape[0]
    t = F.normalize(teacher.float(), dim=1)
    m_macro = min(macro_negatives, v - 1)
    pool = min(micro_pool, v - 1)
    m_micro = min(micro_negatives, pool)
    centers = np.asarray(centers)
    # one KD-tree, queried in large blocks (a tree per chunk was ~40 % of building the table)
    tree = cKDTree(centers)
    ids_np = ids.cpu().numpy()
    block = max(chunk, (KNN_BLOCK // chunk) * chunk)
    nb_block = None
    pos_out, macro_out, micro_out = [], [], []
    for s in tqdm(range(0, ids.numel(), chunk), desc="contrastive table", disable=None if progress else True):
        cid = ids[s : s + chunk]
        if s % block == 0:
            # spatial pool: the pool+1 nearest include the anchor itself, dropped by index below
            nb_block, _ = knn(centers, centers[ids_np[s : s + block]], pool + 1, tree=tree)
            nb_block = torch.from_numpy(nb_block).to(teacher.device)
        nb = _drop_self(nb_block[s % block : s % block + cid.numel()], cid, pool)
        sim = t[cid] @ t.T  # (c, V)
        rows = torch.arange(cid.numel(), device=sim.device)
        sim[rows, cid] = -torch.inf  # the anchor is neither its own positive...
        if not local_positives:
            pos_out.append(sim.argmax(dim=1))
        sim[rows, cid] = torch.inf  # ...nor its own negative
        macro_out.append(sim.topk(m_macro, dim=1, largest=False).indices)
        nb_sim = torch.gather(sim, 1, nb)  # nb never holds the anchor itself
        if local_positives:
            pos_out.append(torch.gather(nb, 1, nb_sim.argmax(dim=1, keepdim=True))[:, 0])
        micro_out.append(torch.gather(nb, 1, nb_sim.topk(m_micro, dim=1, largest=False).indices))
    return torch.cat(pos_out), torch.cat(macro_out), torch.cat(micro_out)


@dataclass
class ContrastiveTable:
    """Positives and negatives of every voxel of a scene, precomputed once.

    They depend only on the frozen teacher, so drawing anchors from the table gives exactly what
    :func:`sample_contrastive` gives for the same generator, at a fraction of the per-step cost when
    ``steps x anchors`` exceeds V. Attributes: positives (V,), macro (V, M), micro (V, m) int64.
    """

    positives: torch.Tensor
    macro: torch.Tensor
    micro: torch.Tensor

    @classmethod
    def build(
        cls,
        teacher: torch.Tensor,
        centers: np.ndarray,
        macro_negatives: int = 48,
        micro_negatives: int = 16,
        micro_pool: int = 96,
        chunk: int = 512,
        local_positives: bool = False,
    ) -> ContrastiveTable:
        ids = torch.arange(teacher.shape[0], device=teacher.device)
        rows = contrastive_rows(
            teacher, centers, ids, macro_negatives, micro_negatives, micro_pool, chunk, True, local_positives
        )
        return cls(*rows)

    def sample(self, anchors: int, generator: torch.Generator | None = None) -> ContrastiveSample:
        anc = draw_anchors(self.positives.shape[0], anchors, generator).to(self.positives.device)
        return ContrastiveSample(anc, self.positives[anc], self.macro[anc], self.micro[anc])


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
    anc = torch.index_select(e, 0, sample.anchors)  # (A, E)
    cand = torch.cat([sample.positives[:, None], sample.macro, sample.micro], dim=1)  # (A, 1+M+m)
    # index_select's backward is one index_add; e[cand]'s (index_put with accumulate) sorts every
    # index first and was a quarter of a CPU training step. Same gradients up to summation order.
    gathered = torch.index_select(e, 0, cand.reshape(-1)).view(*cand.shape, e.shape[1])  # (A, 1+M+m, E)
    logits = torch.bmm(gathered, anc.unsqueeze(2)).squeeze(2) / temperature
    target = torch.zeros(anc.shape[0], dtype=torch.long, device=e.device)
    return F.cross_entropy(logits, target)
