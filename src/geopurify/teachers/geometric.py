"""Weight-free geometric teacher: local shape + appearance descriptors and superpoint embeddings.

Variants (``variant=``):
- ``"descriptor"``: standardised [normal | CIE Lab colour | linearity, planarity, scattering, verticality]
  from local PCA over the ``k`` nearest voxels, rows L2-normalised.
- ``"superpoint"``: Felzenszwalb-Huttenlocher superpoints over normals and colour; every superpoint gets a
  random unit vector (seeded), so voxels of one superpoint have cosine 1 and others ~0.
- ``"combined"`` (default): both, concatenated so that cosine = a*superpoint + (1-a)*descriptor.
- ``"semantic"``: the descriptor concatenated with the superpoint mean of the scene's lifted 2D features
  (unit rows, centred, PCA to ``sem_dim``), so that cosine = (1-b)*descriptor + b*semantic with
  ``b = sem_weight``: voxels of one superpoint, or of superpoints the 2D model reads alike, are
  positives; across a border where the reading changes, negatives (the part object-level features such
  as Sonata's play in the paper, bootstrapped from the 2D features instead; still label-free).
- ``"appearance"``: unit rows of [normal, ``app_color`` * Lab / 100], unstandardised: the strongest
  weight-free pooling affinity measured on the real scans (BENCHMARKS.md), as a teacher.

Several granularities (``levels`` > 1): superpoints are cut with thresholds ``fh_c * 4**l`` and each
level gets its own random table, scaled so the superpoint cosine is the fraction of levels two voxels
share; ``desc_scales`` > 1 adds shape descriptors over ``k * 4**s`` neighbours (local and wider shape).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import ConfigError, InputError
from ..geometry import VoxelGrid, estimate_normals, knn
from ..io.scene import Scene
from ..utils.rows import unit_rows_np
from .base import TEACHERS, Teacher
from .superpoints import felzenszwalb, segment_mean, voxel_edges

log = logging.getLogger(__name__)

VARIANTS = ("combined", "superpoint", "descriptor", "semantic", "appearance")


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (N, 3) -> CIE Lab (D65) (N, 3) float32; L in [0, 100]."""
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps = 216 / 24389
    f = np.where(xyz > eps, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    lab = np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)
    return lab.astype(np.float32)


def shape_descriptors(centers: np.ndarray, k: int = 16, chunk: int = 100_000, tree=None) -> np.ndarray:
    """Local PCA over the k nearest centres -> (V, 3) float32 [linearity, planarity, scattering].

    With eigenvalues l1 >= l2 >= l3: ((l1-l2)/l1, (l2-l3)/l1, l3/l1); they sum to 1. ``tree``: a
    ``cKDTree`` of ``centers`` to reuse (built here, once for all chunks, otherwise).
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(centers, dtype=np.float64)
    v = len(pts)
    out = np.zeros((v, 3), np.float32)
    k = max(3, min(k, v))
    tree = tree if tree is not None else cKDTree(pts)
    for s in range(0, v, chunk):
        idx, _ = knn(pts, pts[s : s + chunk], k, tree=tree)
        nb = pts[idx] - pts[idx].mean(axis=1, keepdims=True)
        ev = np.linalg.eigvalsh(np.einsum("cki,ckj->cij", nb, nb) / k)[:, ::-1]  # descending
        ev = np.maximum(ev, 0.0)
        l1 = np.maximum(ev[:, 0], 1e-12)
        out[s : s + chunk] = np.stack([(ev[:, 0] - ev[:, 1]) / l1, (ev[:, 1] - ev[:, 2]) / l1, ev[:, 2] / l1], 1)
    return out


@TEACHERS.register("geometric")
class GeometricTeacher(Teacher):
    """Geometric teacher (see module doc).

    Args:
        variant: ``"combined"``, ``"superpoint"``, ``"descriptor"``, ``"semantic"`` or ``"appearance"``.
        k: neighbours for local PCA descriptors (and normals when the scene has none).
        sp_dim: dimension of the random superpoint embeddings.
        sp_weight: ``a`` in the combined cosine (0..1).
        fh_c: Felzenszwalb threshold constant (larger -> bigger superpoints).
        min_size: smallest superpoint, in voxels.
        color_weight: weight of the Lab colour distance (per 100 Lab units) against ``1 - |n_i . n_j|``.
        seed: seed of the superpoint embeddings.
        levels: superpoint granularities (thresholds ``fh_c * 4**l``, l < levels).
        desc_scales: neighbourhood sizes of the shape descriptors (``k * 4**s``, s < desc_scales).
        sem_weight: ``b`` in the semantic cosine (0..1).
        sem_dim: PCA dimensions kept of the superpoint-mean lifted features (0 = all, centred only).
        app_color: weight of Lab / 100 against the unit normal in the ``appearance`` variant.
    """

    name = "geometric"

    def __init__(
        self,
        variant: str = "combined",
        k: int = 16,
        sp_dim: int = 32,
        sp_weight: float = 0.5,
        fh_c: float = 0.05,
        min_size: int = 20,
        color_weight: float = 0.5,
        seed: int = 0,
        levels: int = 1,
        desc_scales: int = 1,
        sem_weight: float = 0.5,
        sem_dim: int = 32,
        app_color: float = 2.0,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"geometric teacher: unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if not 0.0 <= sp_weight <= 1.0:
            raise ConfigError(f"geometric teacher: sp_weight must be in [0, 1], got {sp_weight}")
        if not 0.0 <= sem_weight <= 1.0 or int(sem_dim) < 0:
            raise ConfigError(
                f"geometric teacher: sem_weight must be in [0, 1] and sem_dim >= 0, got {sem_weight}, {sem_dim}"
            )
        if not app_color >= 0:
            raise ConfigError(f"geometric teacher: app_color must be >= 0, got {app_color}")
        if int(levels) < 1 or int(desc_scales) < 1:
            raise ConfigError(f"geometric teacher: levels and desc_scales must be >= 1, got {levels}, {desc_scales}")
        self.levels, self.desc_scales = int(levels), int(desc_scales)
        self.variant = variant
        self.k, self.sp_dim, self.sp_weight = int(k), int(sp_dim), float(sp_weight)
        self.fh_c, self.min_size, self.color_weight, self.seed = float(fh_c), int(min_size), float(color_weight), seed
        self.sem_weight, self.sem_dim, self.app_color = float(sem_weight), int(sem_dim), float(app_color)
        self.last_superpoints: np.ndarray | None = None  # (V,) labels of the last call, for inspection

    def cache_key(self) -> str:
        return (
            f"geometric-{self.variant}-k{self.k}-d{self.sp_dim}-a{self.sp_weight}-c{self.fh_c}"
            f"-m{self.min_size}-w{self.color_weight}-s{self.seed}-l{self.levels}-ds{self.desc_scales}"
            + (f"-b{self.sem_weight}-sd{self.sem_dim}" if self.variant == "semantic" else "")
            + (f"-ac{self.app_color}" if self.variant == "appearance" else "")
        )

    def _voxel_normals(self, scene: Scene, grid: VoxelGrid) -> np.ndarray:
        if scene.normals is not None:
            return unit_rows_np(grid.reduce(scene.normals))
        return estimate_normals(grid.centers, k=self.k)

    def features(self, scene: Scene, grid: VoxelGrid, lifted: np.ndarray | None = None) -> np.ndarray:
        if len(scene.points) != len(grid.point_to_voxel):
            raise InputError(
                f"{scene.root or scene.name}: voxel grid built from {len(grid.point_to_voxel)} points, "
                f"scene has {len(scene.points)}"
            )
        if self.variant == "semantic":  # cheap checks before the expensive work
            if lifted is None:
                raise ConfigError("geometric teacher: variant=semantic needs the scene's lifted 2D features")
            lifted = np.asarray(lifted)
            if lifted.ndim != 2 or lifted.shape[0] != len(scene.points):
                raise InputError(
                    f"{scene.name}: lifted features {lifted.shape} do not match {len(scene.points)} points"
                )
        self.last_segments = None
        normals = self._voxel_normals(scene, grid)
        lab = rgb_to_lab(grid.reduce(scene.colors))
        if self.variant == "appearance":
            return unit_rows_np(np.concatenate([normals, self.app_color * lab / 100.0], axis=1))
        parts = []
        if self.variant in ("descriptor", "combined", "semantic"):
            desc = self.descriptor(grid.centers, normals, lab)
            share = {"combined": 1.0 - self.sp_weight, "semantic": 1.0 - self.sem_weight}.get(self.variant, 1.0)
            parts.append(desc * np.sqrt(share))
        if self.variant == "semantic":
            labels = self.superpoints(scene, grid, normals, lab)
            parts.append(self.semantic_embedding(grid.reduce(lifted), labels) * np.sqrt(self.sem_weight))
            self.last_segments = labels
        if self.variant in ("superpoint", "combined"):
            w = np.sqrt((self.sp_weight if self.variant == "combined" else 1.0) / self.levels)
            graph = self.superpoint_graph(scene, grid, normals, lab)  # the same for every level
            for level in range(self.levels):
                labels = self.superpoints(scene, grid, normals, lab, self.fh_c * 4.0**level, graph=graph)
                parts.append(self.superpoint_embedding(labels, self.seed + level) * w)
                if level == 0:
                    self.last_segments = labels
        return np.concatenate(parts, axis=1).astype(np.float32)

    def descriptor(self, centers: np.ndarray, normals: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """(V, 7 + 3 desc_scales) float32 unit rows of standardised [normal, Lab, shape(3 per scale), verticality]."""
        from scipy.spatial import cKDTree

        tree = cKDTree(np.asarray(centers, dtype=np.float64))  # one tree for every scale
        shapes = [shape_descriptors(centers, self.k * 4**s, tree=tree) for s in range(self.desc_scales)]
        vert = 1.0 - np.abs(normals[:, 2:3])
        x = np.concatenate([normals, lab / np.array([100.0, 128.0, 128.0], np.float32), *shapes, vert], axis=1)
        x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-6)  # cosine needs centred columns
        return unit_rows_np(x)

    def superpoint_graph(
        self, scene: Scene, grid: VoxelGrid, normals: np.ndarray, lab: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voxel edges ``(E, 2)`` int64 (mesh edges or a kNN graph) and their ``(E,)`` weights
        ``1 - |n_i . n_j| + color_weight * |Lab_i - Lab_j| / 100``."""
        edges = voxel_edges(grid.point_to_voxel, scene.faces, grid.centers, k=8)
        w = 1.0 - np.abs(np.einsum("ij,ij->i", normals[edges[:, 0]], normals[edges[:, 1]]))
        w = w + self.color_weight * np.linalg.norm(lab[edges[:, 0]] - lab[edges[:, 1]], axis=1) / 100.0
        return edges, w

    def superpoints(
        self, scene: Scene, grid: VoxelGrid, normals: np.ndarray, lab: np.ndarray, c: float | None = None,
        graph: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """(V,) int64 superpoint labels from FH segmentation (threshold ``c``, default ``fh_c``) on
        :meth:`superpoint_graph` (pass ``graph`` to reuse it)."""
        edges, w = graph if graph is not None else self.superpoint_graph(scene, grid, normals, lab)
        labels = felzenszwalb(grid.num_voxels, edges, w, self.fh_c if c is None else c, self.min_size)
        log.info("%s: %d superpoints over %d voxels (%d edges)", scene.name, labels.max() + 1, len(labels), len(edges))
        self.last_superpoints = labels
        return labels

    def superpoint_embedding(self, labels: np.ndarray, seed: int | None = None) -> np.ndarray:
        """(V, sp_dim) float32: one seeded random unit vector per superpoint."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        table = unit_rows_np(rng.standard_normal((int(labels.max()) + 1, self.sp_dim)))
        return table[labels]

    def semantic_embedding(self, lifted_voxel: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(V, min(sem_dim, D)) float32 unit rows: per superpoint, the mean of the voxels' unit lifted
        features ``lifted_voxel`` (V, D), centred over voxels and reduced by PCA to ``sem_dim``.

        Centring removes the component every 2D feature shares (their raw cosines are all high); PCA is
        over the S superpoint means, so it costs O(S D^2), not O(V D^2).
        """
        f = unit_rows_np(np.asarray(lifted_voxel, np.float32)).astype(np.float64)
        s = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=s).astype(np.float64)
        means = unit_rows_np(segment_mean(f, labels, s)).astype(np.float64)
        means -= counts @ means / counts.sum()  # centred as the voxels weigh them
        if 0 < self.sem_dim < means.shape[1]:
            _, _, vt = np.linalg.svd(means * np.sqrt(counts)[:, None], full_matrices=False)
            proj = np.zeros((means.shape[0], self.sem_dim))  # fewer superpoints than sem_dim: zero columns
            proj[:, : min(self.sem_dim, len(vt))] = means @ vt[: self.sem_dim].T
            means = proj
        return unit_rows_np(means)[labels]
