"""Purify one scene's lifted features: student embeddings -> kNN affinity pooling -> per-voxel labels.

The step between lifting and the output folder that `segment` runs when a student is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..distill.prepare import student_voxel_inputs
from ..geometry import VoxelGrid
from ..io.scene import Scene
from ..pooling import PoolConfig, class_logits, purify
from ..student import AffinityNet
from .classify import classify


@dataclass
class PurifiedScene:
    """Per-voxel results of :func:`purify_scene`.

    labels: ``(V,)`` int64 class index per voxel.
    features: ``(V, D)`` float32 pooled features, or None when only labels were pooled.
    seconds: wall seconds of its stages (``student``, ``knn``, ``pool``, ``classify``).
    """

    labels: np.ndarray
    features: np.ndarray | None
    seconds: dict[str, float] = field(default_factory=dict)


def purify_scene(
    scene: Scene, grid: VoxelGrid, lifted: np.ndarray, text_unit: np.ndarray, student: AffinityNet, pool: PoolConfig,
    save_features: bool, device: torch.device | str = "cpu",
) -> PurifiedScene:
    """Embed ``grid``'s voxels with ``student`` and pool their mean lifted features over the kNN affinity.

    Args:
        lifted: ``(N, D)`` float32 lifted per-point features of ``scene`` (``grid`` built from its points).
        text_unit: ``(C, D)`` float32 unit text embeddings.
        save_features: pool the ``D`` feature columns and return them; otherwise pool the ``C`` class
            logits only, which gives the same argmax (pooling is linear) at a fraction of the cost.
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    inputs, vfeat = student_voxel_inputs(scene, grid, lifted)
    with torch.no_grad():
        emb = student.to(device).eval()(torch.from_numpy(grid.coords).to(device),
                                        torch.from_numpy(inputs).to(device)).float()  # fmt: skip
    seconds["student"] = time.perf_counter() - t0
    centers, vfeat_t = torch.from_numpy(grid.centers).to(device), torch.from_numpy(vfeat).to(device)
    text_t = torch.from_numpy(np.ascontiguousarray(text_unit)).to(device)
    features = None
    if save_features:
        res = purify(centers, emb, vfeat_t, pool, coords=grid.coords)
        t0 = time.perf_counter()
        labels = classify(res.values, text_t)
        features = np.asarray(torch.as_tensor(res.values).cpu())
    else:
        res = purify(centers, emb, class_logits(vfeat_t, text_t), pool, coords=grid.coords)
        t0 = time.perf_counter()
        labels = torch.as_tensor(res.values).argmax(1)
    seconds["classify"] = time.perf_counter() - t0
    seconds["knn"], seconds["pool"] = res.seconds_knn, res.seconds_pool
    return PurifiedScene(np.asarray(torch.as_tensor(labels).cpu(), np.int64), features, seconds)
