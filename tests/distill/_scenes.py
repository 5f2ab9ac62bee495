"""Tiny synthetic scenes with known structure for the distillation tests."""

from __future__ import annotations

import numpy as np

from geopurify.distill import TrainConfig, TrainScene


def two_planes(n: int = 14, seed: int = 0, name: str = "planes") -> tuple[TrainScene, np.ndarray]:
    """A floor (z=0) and a wall (x=0) of n x n voxels each; teacher = noisy one-hot of the plane.

    Student inputs carry no plane information beyond noise, so the student must learn it from the
    teacher through geometry. Returns the scene and the (V,) plane label.
    """
    rng = np.random.default_rng(seed)
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    floor = np.stack([a.ravel() + 1, b.ravel(), np.zeros(a.size, int)], 1)
    wall = np.stack([np.zeros(a.size, int), b.ravel(), a.ravel() + 1], 1)
    coords = np.concatenate([floor, wall]).astype(np.int32)
    label = np.repeat([0, 1], n * n)
    centers = (coords * 0.02 + 0.01).astype(np.float32)
    teacher = np.eye(2, dtype=np.float32)[label] + 0.05 * rng.standard_normal((len(label), 2)).astype(np.float32)
    inputs = rng.standard_normal((len(label), 5)).astype(np.float32)
    return TrainScene(name, coords, centers, inputs, teacher), label


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        anchors=96,
        macro_negatives=8,
        micro_negatives=4,
        micro_pool=16,
        width=8,
        out_dim=8,
        blocks=1,
        steps=30,
        lr=1e-2,
        warmup=2,
        device="cpu",
        checkpoint_every=0,
        log_every=100,
    )
    base.update(kw)
    return TrainConfig(**base)
