"""Geometry-Guided Pooling: the released GeoPurify code path against geopurify's, on one room.

Both paths start from the same saved inputs of one room, prepared by geopurify's own read, lift and
voxelise: integer voxel coordinates, voxel centres, the student's inputs ``[feature | rgb | normal]``
(V, D + 6) and the lifted features (V, D). The student (a trained one with ``--student``, else a
randomly initialised one of the default size: same cost) gives the embeddings; they come from the
room's inputs, never from its ground truth.

Rows (each in its own process, so its peak RSS is its own; each imports its libraries before its timer:
faiss for the released path, scipy.spatial and geopurify for the others):

* ``released``: written after ``evaluate_scene`` in GeoPurify's ``models/affinity_module.py``. faiss
  ``IndexFlatL2`` kNN over the integer voxel coordinates (``K + 1`` hits, the first, itself, dropped),
  ``repeat_interleave``/gather of ``(V*K, E)`` embeddings, einsum cosines, ``softmax(20 cos)``, a COO
  matrix and ``1 + 18 = 19`` ``torch.sparse.mm`` products over the ``D + 6`` columns. **Out:** the
  pooled features (V, D + 6); labels = cosine argmax of the first D. The student's forward is not timed
  (it ran before, in geopurify).
* ``geopurify features, stencil, T=19``: the same neighbours (integer grid, ``--knn stencil``) and step
  count, pooling the D-dim features. **Out:** pooled features (V, D), compared column for column with
  the released path's first D columns. Timed: student forward + kNN + affinities + products.
* ``geopurify features (segment default)``: what ``geopurify segment`` runs: KD-tree over the
  voxels' mean positions, T = 18, the D-dim features. **Out:** pooled features (V, D).
* ``geopurify labels (segment --no-features)``: the default pooling of the C class logits only.
  **Out:** labels (V,), compared with the released labels.

    python benchmarks/pooling.py                              # synthetic 512-d room
    python benchmarks/pooling.py --scene ROOM --student S     # any scene folder (e.g. synth --from-scan)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_rss_mb, markdown_table, peak_rss_mb, run_worker  # noqa: E402

log = logging.getLogger("bench.pooling")

HERE = Path(__file__).resolve().parent
K = 96
SHARPEN = 20.0
INPUTS = ("coords", "centers", "inputs", "vfeat", "text", "emb")
METHODS = ("released", "stencil19", "default", "labels")
TITLES = {
    "released": "released (faiss, COO, 19 products on D+6)",
    "stencil19": "geopurify features, stencil kNN, T=19",
    "default": "geopurify features (segment default: KD-tree, T=18)",
    "labels": "geopurify labels (segment --no-features)",
}


def prepare(scene: Path, student_path: Path | None, folder: Path) -> dict:
    """Lift and voxelise ``scene`` with geopurify, run the student once, save the inputs as .npy."""
    import torch

    from geopurify import api
    from geopurify.config import SegmentConfig
    from geopurify.distill import voxel_inputs
    from geopurify.encoders.scene import class_text, encoder_for_scene
    from geopurify.lifting import lift_scene
    from geopurify.student import AffinityNet, StudentConfig, load, save

    cfg = SegmentConfig(purify=False)  # read and lift options only; the student comes below
    sc = api.load_scene(scene, cfg.read)
    enc = encoder_for_scene(sc, cfg.lift.encoder, cfg.lift.encoder_options, cfg.lift.classes)
    text = class_text(sc, cfg.lift.text, cfg.lift.classes, enc)
    lifted = lift_scene(sc, enc, text, cfg.lift)
    grid, inputs, vfeat = voxel_inputs(sc, lifted.features, cfg.voxel_size)
    if student_path is None:
        torch.manual_seed(0)
        student_path = folder / "student.safetensors"
        save(AffinityNet(StudentConfig(in_dim=inputs.shape[1])), student_path)
    model = load(student_path).eval()
    with torch.no_grad():
        emb = model(torch.from_numpy(grid.coords), torch.from_numpy(inputs)).float().numpy()
    arrays = dict(coords=grid.coords.astype(np.int32), centers=grid.centers.astype(np.float32), inputs=inputs,
                  vfeat=vfeat, text=text.normalized(), emb=emb)
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", np.ascontiguousarray(arr))
    return {"points": sc.num_points, "voxels": grid.num_voxels, "dim": vfeat.shape[1], "classes": len(text.names),
            "student": str(student_path), "frames": lifted.stats.get("frames_used")}


def released(coords, emb, feats, text, sem_dim: int) -> dict:
    """The released code's pooling, step for step (CPU)."""
    import faiss
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    pts = np.ascontiguousarray(coords, dtype=np.float32)
    index = faiss.IndexFlatL2(3)
    index.add(pts)
    _, nbr = index.search(pts, K + 1)
    nbr = torch.from_numpy(nbr[:, 1:])  # drop the first hit (the voxel itself)
    t1 = time.perf_counter()
    e = F.normalize(torch.from_numpy(emb), dim=-1)
    v = len(e)
    rows = torch.arange(v).repeat_interleave(K)
    cols = nbr.flatten()
    centre = e.repeat_interleave(K, dim=0)  # (V*K, E)
    neigh = e[cols]
    aff = torch.einsum("bd,bd->b", centre, neigh)
    del centre, neigh
    w = F.softmax(aff.view(v, K) * SHARPEN, dim=1).flatten()
    A = torch.sparse_coo_tensor(torch.stack([rows, cols]), w, size=(v, v))
    x = torch.sparse.mm(A, torch.from_numpy(feats))
    for _ in range(18):
        x = torch.sparse.mm(A, x)
    t2 = time.perf_counter()
    f = F.normalize(x[:, :sem_dim], dim=-1)
    labels = (f @ torch.from_numpy(text).T).argmax(1).numpy()
    t3 = time.perf_counter()
    return {"out": x[:, :sem_dim].numpy(), "labels": labels, "knn": t1 - t0, "pool": t2 - t1,
            "classify": t3 - t2, "student": 0.0, "total": t3 - t0}


def geopurify_path(method: str, arrays: dict, student_path: str) -> dict:
    """Student forward + kNN + pool, as ``api.segment`` runs them (features or class logits)."""
    import torch

    from geopurify.pooling import PoolConfig, class_logits, purify
    from geopurify.segment import classify
    from geopurify.student import load

    model = load(student_path).eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        emb = model(torch.from_numpy(arrays["coords"]).long(), torch.from_numpy(arrays["inputs"])).float()
    t1 = time.perf_counter()
    text = torch.from_numpy(arrays["text"])
    if method == "stencil19":
        cfg = PoolConfig(k=K, sharpen=SHARPEN, steps=19, knn="stencil")
    else:
        cfg = PoolConfig(k=K, sharpen=SHARPEN)
    x = torch.from_numpy(arrays["vfeat"])
    if method == "labels":
        x = class_logits(x, text)
    res = purify(torch.from_numpy(arrays["centers"]), emb, x, cfg, coords=arrays["coords"])
    out = res.values
    labels = out.argmax(1) if method == "labels" else classify(out, text)
    t2 = time.perf_counter()
    return {"out": None if method == "labels" else np.asarray(out), "labels": np.asarray(torch.as_tensor(labels)),
            "knn": res.seconds_knn, "pool": res.seconds_pool, "student": t1 - t0, "total": t2 - t0}


def worker(method: str, folder: Path, student_path: str, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    # Each path's libraries are imported before its timer (faiss here; scipy.spatial, which geopurify's
    # kNN imports on first use, 0.25-0.3 s): start-up imports belong to the whole-process benchmark
    # (segment_vs.py), not to this one's per-stage seconds.
    if method == "released":
        import faiss  # noqa: F401
    else:
        import scipy.spatial  # noqa: F401

        import geopurify.pooling  # noqa: F401
        import geopurify.student  # noqa: F401
    arrays = {n: np.load(folder / f"{n}.npy") for n in INPUTS}
    base = current_rss_mb()
    if method == "released":
        r = released(arrays["coords"], arrays["emb"], arrays["inputs"], arrays["text"], arrays["vfeat"].shape[1])
    else:
        r = geopurify_path(method, arrays, student_path)
    if r["out"] is not None:
        np.save(folder / f"out-{method}.npy", r["out"])
    np.save(folder / f"labels-{method}.npy", r["labels"])
    print(json.dumps({k: v for k, v in r.items() if k not in ("out", "labels")}
                     | {"peak_mb": peak_rss_mb(), "base_mb": base, "threads": torch.get_num_threads()}))


def compare(a: np.ndarray, b: np.ndarray) -> str:
    """Max |a - b| relative to max |b|, and the median row cosine."""
    rel = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.sum(a * b, 1) / np.maximum(na * nb, 1e-30)
    return f"max rel. diff {rel:.1e}; row cosine median {np.median(cos):.6f}, min {cos.min():.4f}"


def make_synthetic(folder: Path, dim: int, seed: int) -> Path:
    from geopurify.synthetic import SyntheticConfig, make_scene

    return make_scene(folder, "pool512_00", dataclasses.replace(SyntheticConfig(), feature_dim=dim, seed=seed))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", type=Path, default=None, help="scene folder (default: a synthetic 512-d room)")
    ap.add_argument("--student", type=Path, default=None, help="trained student (default: random init)")
    ap.add_argument("--dim", type=int, default=512, help="feature dimension of the synthetic room")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each round runs every method once, in turn")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in every worker (default: torch's)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pooling.md")
    ap.add_argument("--worker", choices=METHODS)
    ap.add_argument("--inputs", type=Path)
    ap.add_argument("--student-path", default="")
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.inputs, args.student_path, args.threads)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scene = args.scene or make_synthetic(folder / "scene", args.dim, args.seed)
        info = prepare(scene, args.student, folder)
        log.info("inputs: %s", info)
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        extra = ["--threads", str(args.threads)] if args.threads else []
        for _ in range(args.repeat):  # methods in turn, so drifting machine load hits all of them alike
            for m in METHODS:
                r = run_worker([__file__, "--worker", m, "--inputs", str(folder), "--student-path", info["student"],
                                *extra])
                runs[m].append(r)
                log.info("%s: %.2f s", m, r["total"])
        outs = {m: np.load(folder / f"out-{m}.npy") for m in METHODS if (folder / f"out-{m}.npy").is_file()}
        labels = {m: np.load(folder / f"labels-{m}.npy") for m in METHODS}
    med = {m: {k: float(np.median([r[k] for r in rs])) for k in rs[0] if isinstance(rs[0][k], float)}
           for m, rs in runs.items()}
    ratios = {m: [a["total"] / b["total"] for a, b in zip(runs["released"], runs[m])] for m in METHODS}
    rows = []
    for m in METHODS:
        r = med[m]
        out = "labels (V,)" if m == "labels" else f"features (V, {info['dim'] + (6 if m == 'released' else 0)})"
        vs = "-" if m == "released" else (
            compare(outs[m], outs["released"]) if m in outs else "labels only")
        rows.append([TITLES[m], out, f"{r['student']:.2f}", f"{r['knn']:.2f}", f"{r['pool']:.2f}", f"{r['total']:.2f}",
                     "1.0x" if m == "released" else f"{np.median(ratios[m]):.1f}x "
                     f"({min(ratios[m]):.1f}-{max(ratios[m]):.1f})",
                     f"{r['peak_mb']:.0f}", vs, f"{100 * (labels[m] == labels['released']).mean():.3f} %"])
    head = ["path", "output", "student s", "kNN s", "affinity+pool s", "total s", "speed-up (median, min-max)",
            "peak RSS MB", "output vs released", "labels = released"]
    import torch

    room = args.scene or f"synthetic (geopurify.synthetic, seed {args.seed}, {args.dim}-d features)"
    lines = [
        f"# Geometry-Guided Pooling: released code vs geopurify ({info['voxels']:,} voxels, K={K}, D={info['dim']})",
        "",
        markdown_table(head, rows),
        "",
        f"Room: {room}; "
        f"{info['points']:,} points, {info['voxels']:,} voxels, {info['frames']} frames, C = {info['classes']}. "
        f"Student: {'trained, ' + str(args.student) if args.student else 'randomly initialised, default size'}. "
        f"Seconds: median of {args.repeat} rounds, each round running every path once in turn, each in its own "
        f"process; speed-up = released total / this total, paired round by round. torch threads "
        f"{runs['default'][0]['threads']} ({torch.__version__}); 1-min load average {load_start:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end on {os.cpu_count()} CPUs (a machine shared with other jobs: quote ratios).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps({"info": info, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
