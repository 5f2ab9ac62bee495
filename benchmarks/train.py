"""Seconds per distillation step against voxel count and student width (CPU or GPU).

Usage: .venv/bin/python benchmarks/train.py [--voxels 10000 50000 100000] [--widths 32 64 128]
       [--blocks 3] [--repeat 2] [--device auto]
Scenes are synthetic rooms (floor + walls + boxes) voxelised at 2 cm, with random 32-d "lifted" inputs
and the geometric teacher's features; one step = sampling + forward + backward + AdamW update.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from geopurify.distill import TrainConfig, TrainScene, sample_contrastive
from geopurify.distill.sampler import info_nce
from geopurify.geometry import voxelize
from geopurify.student import AffinityNet, StudentConfig, build_kernel_map
from geopurify.utils.device import pick_device

log = logging.getLogger("benchmarks.train")


def synthetic_room(target_voxels: int, voxel: float = 0.02, seed: int = 0) -> TrainScene:
    """A box room whose surface has about ``target_voxels`` voxels (one point per voxel centre)."""
    rng = np.random.default_rng(seed)
    # surface area ~ floor + ceiling-less 4 walls: side s, height h=s/2 -> area = s^2 + 2 s^2
    side = np.sqrt(target_voxels * voxel**2 / 3.0)
    h = side / 2
    g = np.arange(0, side, voxel) + voxel / 2
    gh = np.arange(0, h, voxel) + voxel / 2
    a, b = np.meshgrid(g, g, indexing="ij")
    floor = np.stack([a.ravel(), b.ravel(), np.zeros(a.size)], 1)
    a, c = np.meshgrid(g, gh, indexing="ij")
    walls = [np.stack([a.ravel(), np.full(a.size, y), c.ravel()], 1) for y in (0.0, side)]
    walls += [np.stack([np.full(a.size, x), a.ravel(), c.ravel()], 1) for x in (0.0, side)]
    pts = np.concatenate([floor, *walls]).astype(np.float32)
    grid = voxelize(pts, voxel)
    v = grid.num_voxels
    inputs = rng.standard_normal((v, 38)).astype(np.float32)
    teacher = rng.standard_normal((v, 16)).astype(np.float32)
    return TrainScene(f"room{v}", grid.coords, grid.centers, inputs, teacher)


def time_step(scene: TrainScene, width: int, blocks: int, cfg: TrainConfig, device: torch.device, repeat: int) -> dict:
    torch.manual_seed(0)
    model = AffinityNet(StudentConfig(in_dim=scene.inputs.shape[1], width=width, blocks=blocks)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    coords = torch.as_tensor(scene.coords.astype(np.int64), device=device)
    x = torch.as_tensor(scene.inputs, device=device)
    teacher = torch.as_tensor(scene.teacher, device=device)
    t = time.perf_counter()
    kmap = build_kernel_map(coords)
    t_map = time.perf_counter() - t
    times = {"sample": [], "forward": [], "backward": []}
    for r in range(repeat + 1):  # first round warms up
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        s = sample_contrastive(
            teacher,
            scene.centers,
            cfg.anchors,
            cfg.macro_negatives,
            cfg.micro_negatives,
            cfg.micro_pool,
            generator=torch.Generator().manual_seed(r),
        )
        sync()
        t1 = time.perf_counter()
        loss = info_nce(model(coords, x, kmap), s, cfg.temperature)
        sync()
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        t3 = time.perf_counter()
        if r:
            times["sample"].append(t1 - t0)
            times["forward"].append(t2 - t1)
            times["backward"].append(t3 - t2)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"voxels": scene.num_voxels, "width": width, "kmap_s": t_map, **med, "step_s": sum(med.values())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voxels", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--blocks", type=int, default=TrainConfig.blocks)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = pick_device(args.device)
    cfg = TrainConfig()
    print(f"device {device}, threads {torch.get_num_threads()}, blocks {args.blocks}, anchors {cfg.anchors}")
    print(f"{'voxels':>8} {'width':>5} {'kmap s':>7} {'sample s':>8} {'fwd s':>7} {'bwd+opt s':>9} {'step s':>7}")
    for nv in args.voxels:
        scene = synthetic_room(nv)
        for w in args.widths:
            r = time_step(scene, w, args.blocks, cfg, device, args.repeat)
            print(
                f"{r['voxels']:>8} {r['width']:>5} {r['kmap_s']:>7.3f} {r['sample']:>8.3f} "
                f"{r['forward']:>7.3f} {r['backward']:>9.3f} {r['step_s']:>7.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
