"""Contrastive sampling from teacher similarities, and the InfoNCE loss on student embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import knn
from ..utils import linalg
from ..utils.progress import bar_disable

#: anchors per KD-tree query of :func:`contrastive_rows` ((block, micro_pool + 1) int64 at a time)
KNN_BLOCK = 65536
#: columns per group of the two-level searches of :class:`_SimilarityScan`
GROUP = 64
#: columns per tile of :class:`_SimilarityScan` (a multiple of GROUP): a (chunk x TILE) float32 block
#: is reduced to its group extremes while it is still in cache
TILE = 8192


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
    anchors: int,
    macro_negatives: int,
    micro_negatives: int,
    micro_pool: int,
    generator: torch.Generator | None = None,
    chunk: int = 64,
    local_positives: bool = False,
    segments: torch.Tensor | None = None,
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
        segments: (V,) int64 teacher segment ids: anchors spread over segments (:func:`draw_anchors`).

    Returns:
        :class:`ContrastiveSample`.
    """
    anc = draw_anchors(teacher.shape[0], anchors, generator, segments).to(teacher.device)
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


def draw_anchors(
    num_voxels: int, anchors: int, generator: torch.Generator | None = None, segments: torch.Tensor | None = None
) -> torch.Tensor:
    """(min(anchors, V),) int64 distinct random voxel indices (CPU).

    ``segments``: (V,) int64 segment ids; given, a voxel is drawn with probability proportional to one
    over its segment's size (every segment equally likely; without replacement), not uniformly.
    """
    if num_voxels < 3:
        raise ValueError(f"need at least 3 voxels for contrastive sampling, got {num_voxels}")
    n = min(anchors, num_voxels)
    if segments is None or n == num_voxels:
        return torch.randperm(num_voxels, generator=generator)[:n]
    seg = torch.unique(segments.cpu(), return_inverse=True)[1]  # compact ids (a crop holds a few segments)
    weights = 1.0 / torch.bincount(seg).double()[seg]
    return torch.multinomial(weights, n, replacement=False, generator=generator)


def contrastive_rows(
    teacher: torch.Tensor,
    centers: np.ndarray,
    ids: torch.Tensor,
    macro_negatives: int,
    micro_negatives: int,
    micro_pool: int,
    chunk: int = 64,
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
    scan = _SimilarityScan(t, min(chunk, ids.numel()))
    pos_out, macro_out, micro_out = [], [], []
    for s in tqdm(range(0, ids.numel(), chunk), desc="contrastive table", disable=bar_disable() if progress else True):
        cid = ids[s : s + chunk]
        if s % block == 0:
            # spatial pool: the pool+1 nearest include the anchor itself, dropped by index below
            nb_block, _ = knn(centers, centers[ids_np[s : s + block]], pool + 1, tree=tree)
            nb_block = torch.from_numpy(nb_block).to(teacher.device)
        nb = _drop_self(nb_block[s % block : s % block + cid.numel()], cid, pool)
        scan.run(cid)  # the anchor is neither its own positive nor its own negative
        if not local_positives:
            pos_out.append(scan.most_similar())
        macro_out.append(scan.least_similar(m_macro))
        nb_sim = scan.values(nb)  # nb never holds the anchor itself
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
        macro_negatives: int,
        micro_negatives: int,
        micro_pool: int,
        chunk: int = 64,
        local_positives: bool = False,
    ) -> ContrastiveTable:
        ids = torch.arange(teacher.shape[0], device=teacher.device)
        rows = contrastive_rows(
            teacher, centers, ids, macro_negatives, micro_negatives, micro_pool, chunk, True, local_positives
        )
        return cls(*rows)

    def sample(
        self, anchors: int, generator: torch.Generator | None = None, segments: torch.Tensor | None = None
    ) -> ContrastiveSample:
        anc = draw_anchors(self.positives.shape[0], anchors, generator, segments).to(self.positives.device)
        return ContrastiveSample(anc, self.positives[anc], self.macro[anc], self.micro[anc])


class _SimilarityScan:
    """Exact scene-wide extremes of one chunk of anchors' teacher similarities, in cache-sized tiles.

    ``run(cid)`` fills the (c, V) similarities ``t[cid] @ t.T`` tile by tile (TILE columns; stored
    tile-major in one buffer reused by every chunk, since a fresh (chunk, V) tensor per chunk cost more
    in page faults than its GEMM) and, while a tile is in cache, the maximum and minimum of each group
    of GROUP columns, with the anchor's own column and the padding excluded. Then:

    - :meth:`most_similar` = ``argmax`` over the row: the first group holding the row's maximum, then
      the first column in it holding it (the same index as ``argmax``, which returns the first maximum);
    - :meth:`least_similar` = ``topk(k, largest=False)``: the k groups with the smallest minima, then
      ``topk`` over their k * GROUP entries (narrowed once more the same way, to the k sub-groups of
      GROUP/8 columns with the smallest minima). Exact: each of a row's k smallest entries lies in a
      group whose minimum is itself among the k smallest, so among the k groups kept. Tie rule: the selected
      values equal those of a full ``topk`` (ascending); among equal values (duplicate teacher rows)
      which voxel is taken is unspecified, as it is for ``torch.topk``.

    Every pass over the (c, V) block is then one GEMM plus two vectorised reductions on cached data;
    ``argmax`` and ``topk`` over V columns were 4-7x slower each.
    """

    def __init__(self, t: torch.Tensor, rows: int) -> None:
        v, dim = t.shape
        self.v = v
        vp = -(-v // GROUP) * GROUP  # padded with zero teacher rows to whole groups
        tp = torch.zeros(dim, vp, dtype=t.dtype, device=t.device)
        tp[:, :v] = t.T
        self.starts = list(range(0, vp, TILE))
        self.widths = [min(TILE, vp - a) for a in self.starts]
        self.tiles = [tp[:, a : a + w].contiguous() for a, w in zip(self.starts, self.widths)]  # (T, w)
        self.starts_t = torch.tensor(self.starts, device=t.device)
        self.widths_t = torch.tensor(self.widths, device=t.device)
        self.t = t
        self.buf = torch.empty(rows * vp, dtype=t.dtype, device=t.device)
        self.gmax = torch.empty(rows, vp // GROUP, dtype=t.dtype, device=t.device)
        self.gmin = torch.empty_like(self.gmax)
        self.cid = torch.empty(0, dtype=torch.int64)

    def run(self, cid: torch.Tensor) -> None:
        """Similarities of the anchors ``cid`` (c,) int64 to every voxel, and their group extremes."""
        c = cid.numel()
        self.cid = cid
        a = self.t.index_select(0, cid)  # (c, T)
        tile_of = torch.div(cid, TILE, rounding_mode="floor")
        for j, (start, w) in enumerate(zip(self.starts, self.widths)):
            blk = self.buf[c * start : c * (start + w)].view(c, w)
            torch.mm(a, self.tiles[j], out=blk)
            own = torch.nonzero(tile_of == j)[:, 0]  # anchors whose own column lies in this tile
            own_col = cid[own] - start
            pad = self.v - start  # columns >= V are padding (last tile only)
            blk[own, own_col] = -torch.inf
            if pad < w:
                blk[:, pad:] = -torch.inf
            g0, g1 = start // GROUP, (start + w) // GROUP
            self.gmax[:c, g0:g1] = blk.view(c, -1, GROUP).amax(dim=2)
            blk[own, own_col] = torch.inf
            if pad < w:
                blk[:, pad:] = torch.inf
            self.gmin[:c, g0:g1] = blk.view(c, -1, GROUP).amin(dim=2)

    def _flat(self, cols: torch.Tensor) -> torch.Tensor:
        """(c, n) column indices -> (c, n) positions in the tile-major buffer."""
        c = self.cid.numel()
        tile = torch.div(cols, TILE, rounding_mode="floor")
        rows = torch.arange(c, device=cols.device)[:, None]
        return c * self.starts_t[tile] + rows * self.widths_t[tile] + (cols - tile * TILE)

    def values(self, cols: torch.Tensor) -> torch.Tensor:
        """(c, n) similarities at columns ``cols`` (c, n) int64 (own column and padding read +inf)."""
        return self.buf[self._flat(cols)]

    def _groups(self, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c, k) group indices -> their (c, k * GROUP) column indices and similarities.

        A group is GROUP consecutive floats of the buffer (tiles and their rows are whole groups).
        """
        c, k = groups.shape
        cols = (groups[:, :, None] * GROUP + torch.arange(GROUP, device=groups.device)).reshape(c, k * GROUP)
        rows = torch.div(self._flat(groups * GROUP), GROUP, rounding_mode="floor")  # (c, k) rows of GROUP
        vals = self.buf.view(-1, GROUP).index_select(0, rows.reshape(-1))
        return cols, vals.view(c, k * GROUP)

    def most_similar(self) -> torch.Tensor:
        """(c,) int64 column of each row's maximum excluding the own column (first among equals)."""
        c = self.cid.numel()
        cols, vals = self._groups(self.gmax[:c].argmax(dim=1)[:, None])  # (c, GROUP)
        vals[(cols == self.cid[:, None]) | (cols >= self.v)] = -torch.inf  # run() left them +inf
        return torch.gather(cols, 1, vals.argmax(dim=1, keepdim=True))[:, 0]

    def least_similar(self, k: int) -> torch.Tensor:
        """(c, k) int64 columns of each row's k smallest entries excluding the own column, ascending."""
        c = self.cid.numel()
        gmin = self.gmin[:c]
        keep = gmin.topk(min(k, gmin.shape[1]), dim=1, largest=False, sorted=False).indices
        cols, vals = self._groups(keep)
        sub = GROUP // 8
        if sub > 1 and vals.shape[1] > 8 * k:
            # the same argument once more inside the kept groups, in sub-groups of GROUP/8 columns:
            # ``topk`` costs about 4 ns per entry and row, so k*GROUP -> 8k entries pays for itself
            smin = vals.view(c, -1, sub).amin(dim=2)  # (c, k * 8)
            pick = smin.topk(k, dim=1, largest=False, sorted=False).indices[:, :, None].expand(-1, -1, sub)
            vals = torch.gather(vals.view(c, -1, sub), 1, pick).reshape(c, -1)
            cols = torch.gather(cols.view(c, -1, sub), 1, pick).reshape(c, -1)
        return torch.gather(cols, 1, vals.topk(k, dim=1, largest=False).indices)


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


def info_nce(embeddings: torch.Tensor, sample: ContrastiveSample, temperature: float) -> torch.Tensor:
    """InfoNCE: mean over anchors of -log softmax(logit of the positive) among [positive, negatives].

    Logits are cosine similarities of the student ``embeddings`` (V, E) divided by ``temperature``.
    Returns a scalar tensor.
    """
    e = linalg.unit_rows(embeddings)  # = F.normalize(embeddings, dim=1), fewer passes
    cand = torch.cat([sample.positives[:, None], sample.macro, sample.micro], dim=1)  # (A, 1+M+m)
    logits = _PairDots.apply(e, sample.anchors, cand) / temperature
    target = torch.zeros(cand.shape[0], dtype=torch.long, device=e.device)
    return F.cross_entropy(logits, target)


def local_targets(teacher: torch.Tensor, centers: np.ndarray, anchors: torch.Tensor, pool: int) -> LocalTargets:
    """The ``pool`` spatial nearest voxels of each anchor (itself excluded) and their teacher cosines.

    Args:
        teacher: (V, T) float teacher features; centers: (V, 3) voxel centres; anchors: (A,) int64.
    """
    pool = min(pool, teacher.shape[0] - 1)
    ids = anchors.cpu()
    nb, _ = knn(np.asarray(centers), np.asarray(centers)[ids.numpy()], pool + 1)
    nb = _drop_self(torch.from_numpy(nb), ids, pool).to(teacher.device)
    # only the rows used are normalised (every step would otherwise normalise the whole scene)
    t_a, t_nb = F.normalize(teacher[anchors].float(), dim=1), F.normalize(teacher[nb].float(), dim=2)
    sim = torch.einsum("at,apt->ap", t_a, t_nb)
    return LocalTargets(nb, sim)


@dataclass
class LocalTargets:
    """Each anchor's spatial neighbours (A, P) int64 and their teacher cosines (A, P) float32."""

    neighbors: torch.Tensor
    teacher_sim: torch.Tensor


def local_affinity_loss(
    embeddings: torch.Tensor, anchors: torch.Tensor, targets: LocalTargets, sharpen: float
) -> torch.Tensor:
    """Mean over anchors of KL(teacher || student) between the pooling-style affinities
    ``softmax(sharpen * cos)`` over each anchor's spatial neighbours: the student learns the teacher's
    local affinity itself, the weights pooling will use, not only a ranking of extremes. Scalar tensor.
    """
    e = linalg.unit_rows(embeddings)  # as in info_nce
    logits = _PairDots.apply(e, anchors, targets.neighbors) * sharpen
    target = torch.softmax(targets.teacher_sim * sharpen, dim=1)
    return F.kl_div(torch.log_softmax(logits, dim=1), target, reduction="batchmean")


#: anchors per piece of :class:`_PairDots` ((LOSS_CHUNK * (1+M+m), E) gathered rows at a time)
LOSS_CHUNK = 128


class _PairDots(torch.autograd.Function):
    """(A, K) dots ``e[anchors[a]] . e[cand[a, j]]`` of ``e`` (V, E), in pieces of LOSS_CHUNK anchors.

    Plain autograd kept the (A, K, E) gathered rows (136 MB at the defaults) for the backward and
    accumulated into them through ``index_put``; here each piece is gathered again in the backward
    while it is in cache, and the gradient is added with ``scatter_add_`` (measured ~2.5x faster for
    the loss's forward + backward on a CPU). Same values and gradients up to summation order.
    """

    @staticmethod
    def forward(ctx, e: torch.Tensor, anchors: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        a, k = cand.shape
        out = torch.empty(a, k, 1, dtype=e.dtype, device=e.device)
        for s in range(0, a, LOSS_CHUNK):
            c = cand[s : s + LOSS_CHUNK]
            rows = e.index_select(0, c.reshape(-1)).view(c.shape[0], k, e.shape[1])
            torch.bmm(rows, e.index_select(0, anchors[s : s + LOSS_CHUNK]).unsqueeze(2), out=out[s : s + c.shape[0]])
        ctx.save_for_backward(e, anchors, cand)
        return out.squeeze(2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        e, anchors, cand = ctx.saved_tensors
        a, k = cand.shape
        dim = e.shape[1]
        grad_e = torch.zeros_like(e)
        for s in range(0, a, LOSS_CHUNK):
            c, anc, g = cand[s : s + LOSS_CHUNK], anchors[s : s + LOSS_CHUNK], grad[s : s + LOSS_CHUNK]
            rows = e.index_select(0, c.reshape(-1)).view(c.shape[0], k, dim)
            grad_anc = torch.bmm(g.unsqueeze(1), rows).squeeze(1)  # (n, E)
            grad_rows = (g.unsqueeze(2) * e.index_select(0, anc).unsqueeze(1)).view(-1, dim)  # (n*K, E)
            grad_e.scatter_add_(0, c.reshape(-1, 1).expand(-1, dim), grad_rows)
            grad_e.scatter_add_(0, anc.unsqueeze(1).expand(-1, dim), grad_anc)
        return grad_e, None, None
