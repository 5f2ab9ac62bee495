"""Geometry-Guided Pooling: the released GeoPurify code path vs geopurify's, on the same inputs.

Reference ("released"), written after ``evaluate_scene`` in GeoPurify's ``models/affinity_module.py``:
faiss ``IndexFlatL2`` exact kNN over the voxel coordinates (``K + 1`` hits, the first, itself, dropped),
``repeat_interleave``/gather of ``(V*K, 128)`` centre and neighbour embeddings, einsum cosines,
``softmax(20 x cos)`` per row, a COO ``torch.sparse_coo_tensor``, then ``1 + 18 = 19`` ``torch.sparse.mm``
products on the 518-d features (512 semantic + RGB + normal), classification by cosine on the first 512.

geopurify: cKDTree kNN, chunked affinities into a CSR matrix, 19 CSR products on the C = 20 class
logits (``pool_logits``), argmax. Same neighbourhood convention (self excluded, K = 96) and step
count as the reference, so the labels must agree; a third run uses geopurify's defaults (self
excluded, T = 18 products) for information.

Every measurement runs in its own subprocess so ``ru_maxrss`` is that method's peak alone.

    python benchmarks/pooling.py                       # 50k comparison + 10k..200k sweep
    python benchmarks/pooling.py --sizes 10000 --main 10000 --out /tmp/p.md   # quick check
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_rss_mb, markdown_table, mem_available_gb, peak_rss_mb, run_worker  # noqa: E402

log = logging.getLogger("bench.pooling")

K = 96
SHARPEN = 20.0
EMBED_DIM = 128
SEM_DIM = 512
NUM_CLASSES = 20
LABEL_NOISE = 0.4


@dataclass
class Layout:
    """Synthetic room: integer voxel coords (V, 3) int32, segment id (V,) and true class (V,) int64."""

    coords: np.ndarray
    segment: np.ndarray
    truth: np.ndarray


def make_layout(voxels: int, seed: int = 0) -> Layout:
    """A room (floor, four walls) with box-shaped furniture on a 2 cm grid, cut to ``voxels`` voxels."""
    rng = np.random.default_rng(seed)
    # Room side n (voxels) and wall height h: floor n^2 + walls 4 n h, furniture adds ~15 %.
    h = 120
    n = int((-4 * h + np.sqrt(16 * h * h + 4 * voxels / 1.05)) / 2) + 2
    parts, seg_ids = [], []

    def add(block: np.ndarray) -> None:
        parts.append(block)
        seg_ids.append(np.full(len(block), len(seg_ids)))

    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    add(np.stack([a.ravel(), b.ravel(), np.zeros(a.size, int)], 1))  # floor
    w, z = np.meshgrid(np.arange(n), np.arange(1, h), indexing="ij")
    w, z = w.ravel(), z.ravel()
    add(np.stack([np.zeros_like(w), w, z], 1))
    add(np.stack([np.full_like(w, n - 1), w, z], 1))
    add(np.stack([w, np.zeros_like(w), z], 1))
    add(np.stack([w, np.full_like(w, n - 1), z], 1))
    for _ in range(max(2, voxels // 6000)):  # boxes: top and four sides
        sx, sy, sz = rng.integers(8, 40, 3)
        x0, y0 = rng.integers(2, max(3, n - sx - 2)), rng.integers(2, max(3, n - sy - 2))
        u, v = np.meshgrid(np.arange(sx), np.arange(sy), indexing="ij")
        top = np.stack([x0 + u.ravel(), y0 + v.ravel(), np.full(u.size, sz)], 1)
        u, t = np.meshgrid(np.arange(sx), np.arange(1, sz), indexing="ij")
        s1 = np.stack([x0 + u.ravel(), np.full(u.size, y0), t.ravel()], 1)
        s2 = np.stack([x0 + u.ravel(), np.full(u.size, y0 + sy - 1), t.ravel()], 1)
        v, t = np.meshgrid(np.arange(sy), np.arange(1, sz), indexing="ij")
        s3 = np.stack([np.full(v.size, x0), y0 + v.ravel(), t.ravel()], 1)
        s4 = np.stack([np.full(v.size, x0 + sx - 1), y0 + v.ravel(), t.ravel()], 1)
        add(np.concatenate([top, s1, s2, s3, s4]))
    coords = np.concatenate(parts)
    segment = np.concatenate(seg_ids)
    # Later parts (furniture) win where they overlap the room shell.
    _, first = np.unique(coords[::-1], axis=0, return_index=True)
    keep = len(coords) - 1 - first
    if len(keep) < voxels:
        raise RuntimeError(f"layout has only {len(keep)} voxels, wanted {voxels}")
    keep = np.sort(rng.choice(keep, voxels, replace=False))
    coords, segment = coords[keep].astype(np.int32), segment[keep]
    seg_class = np.concatenate([[1, 0, 0, 0, 0], rng.integers(2, NUM_CLASSES, segment.max() - 4)])
    return Layout(coords=coords, segment=segment, truth=seg_class[segment].astype(np.int64))


def make_inputs(voxels: int, seed: int = 0):
    """Layout + student embeddings (V, 128), features (V, 518) float32, text (20, 512) float32."""
    lay = make_layout(voxels, seed)
    rng = np.random.default_rng(seed + 1)
    v = len(lay.coords)
    base = rng.standard_normal((lay.segment.max() + 1, EMBED_DIM)).astype(np.float32)
    emb = base[lay.segment] + 1.0 * rng.standard_normal((v, EMBED_DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    text = rng.standard_normal((NUM_CLASSES, SEM_DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    noisy = np.where(rng.random(v) < LABEL_NOISE, rng.integers(0, NUM_CLASSES, v), lay.truth)
    feats = np.empty((v, SEM_DIM + 6), np.float32)
    feats[:, :SEM_DIM] = text[noisy] + (2.0 / np.sqrt(SEM_DIM)) * rng.standard_normal((v, SEM_DIM))
    feats[:, SEM_DIM : SEM_DIM + 3] = rng.random((v, 3))  # colour
    feats[:, SEM_DIM + 3 :] = 0.0
    feats[:, SEM_DIM + 5] = 1.0  # normal
    return lay, emb, feats, text


def reference_path(coords: np.ndarray, emb: np.ndarray, feats: np.ndarray, text: np.ndarray) -> dict:
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
    e = torch.from_numpy(emb)
    v = len(e)
    rows = torch.arange(v).repeat_interleave(K)
    cols = nbr.flatten()
    centre = e.repeat_interleave(K, dim=0)  # (V*K, 128)
    neigh = e[cols]  # (V*K, 128)
    aff = torch.einsum("bd,bd->b", centre, neigh)
    del centre, neigh
    w = F.softmax(aff.view(v, K) * SHARPEN, dim=1).flatten()
    A = torch.sparse_coo_tensor(torch.stack([rows, cols]), w, size=(v, v))
    x = torch.sparse.mm(A, torch.from_numpy(feats))
    for _ in range(18):
        x = torch.sparse.mm(A, x)
    t2 = time.perf_counter()
    f = F.normalize(x[:, :SEM_DIM], dim=-1)
    labels = (f @ F.normalize(torch.from_numpy(text), dim=-1).T).argmax(1).numpy()
    t3 = time.perf_counter()
    return {"labels": labels, "knn": t1 - t0, "pool": t2 - t1, "classify": t3 - t2, "total": t3 - t0}


def geopurify_path(coords, emb, feats, text, include_self: bool, steps: int) -> dict:
    """geopurify: cKDTree, chunked CSR affinities, pooling the C class logits."""
    from geopurify.pooling import PoolConfig, pool_logits

    cfg = PoolConfig(k=K, sharpen=SHARPEN, steps=steps, include_self=include_self)
    t0 = time.perf_counter()
    res = pool_logits(coords.astype(np.float64), emb, feats[:, :SEM_DIM], text, cfg)
    labels = res.values.argmax(1)
    t1 = time.perf_counter()
    return {"labels": labels, "knn": res.seconds_knn, "pool": res.seconds_pool, "total": t1 - t0}


INPUT_NAMES = ("coords", "emb", "feats", "text")


def save_inputs(folder: Path, voxels: int, seed: int) -> None:
    """Write one size's inputs as .npy files, so every worker loads identical arrays."""
    lay, emb, feats, text = make_inputs(voxels, seed)
    for name, arr in zip(INPUT_NAMES, (lay.coords, emb, feats, text)):
        np.save(folder / f"{name}.npy", arr)


def worker(method: str, inputs: Path, labels_out: str) -> None:
    import torch  # noqa: F401  (import cost outside the measured baseline delta)

    if method == "released":
        import faiss  # noqa: F401
    else:
        import geopurify.pooling  # noqa: F401
    # Loading (not generating) the inputs keeps the pre-run peak equal to the inputs' size.
    coords, emb, feats, text = (np.load(inputs / f"{n}.npy") for n in INPUT_NAMES)
    base = current_rss_mb()
    if method == "released":
        out = reference_path(coords, emb, feats, text)
    elif method == "geopurify":
        out = geopurify_path(coords, emb, feats, text, include_self=False, steps=19)
    elif method == "geopurify-defaults":
        out = geopurify_path(coords, emb, feats, text, include_self=False, steps=18)
    else:
        raise SystemExit(f"unknown method {method}")
    np.save(labels_out, out.pop("labels"))
    out.update(peak_mb=peak_rss_mb(), base_mb=base)
    print(json.dumps(out))


def reference_gb(voxels: int) -> float:
    """Rough peak of the released path: two (V*K, 128) float32 gathers + COO indices/values."""
    return voxels * K * (2 * EMBED_DIM * 4 + 40) / 2**30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--main", type=int, default=50_000, help="voxels of the head-to-head comparison")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000, 200_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ref-max-gb", type=float, default=None, help="skip the released path above this")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pooling.md")
    ap.add_argument("--worker", choices=["released", "geopurify", "geopurify-defaults"])
    ap.add_argument("--inputs", type=Path)
    ap.add_argument("--labels-out")
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.inputs, args.labels_out)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    limit = args.ref_max_gb if args.ref_max_gb is not None else 0.6 * mem_available_gb()
    sizes = sorted(set(args.sizes) | {args.main})
    load_start = os.getloadavg()[0]
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in sizes:
            folder = Path(tmp) / f"inputs-{v}"
            folder.mkdir()
            save_inputs(folder, v, args.seed)
            methods = ["geopurify", "released"] + (["geopurify-defaults"] if v == args.main else [])
            for m in methods:
                if m == "released" and reference_gb(v) > limit:
                    log.info("skip released path at %d voxels: needs ~%.1f GB > %.1f GB", v, reference_gb(v), limit)
                    continue
                path = f"{tmp}/{m}-{v}.npy"
                r = run_worker([__file__, "--worker", m, "--inputs", str(folder), "--labels-out", path])
                r["labels"] = np.load(path)
                results[(m, v)] = r
                log.info("%s %d: %.2fs, peak %.0f MB", m, v, r["total"], r["peak_mb"])
    truth = {v: make_layout(v, args.seed).truth for v in sizes}

    def acc(m: str, v: int) -> str:
        return f"{100 * (results[(m, v)]['labels'] == truth[v]).mean():.2f} %"

    v = args.main
    ref = results.get(("released", v))
    lines = [f"# Geometry-Guided Pooling benchmark ({v:,} voxels, K={K}, 19 products, C={NUM_CLASSES})", ""]
    rows = []
    for m in ("released", "geopurify", "geopurify-defaults"):
        r = results.get((m, v))
        if r is None:
            continue
        agree = f"{100 * (r['labels'] == ref['labels']).mean():.3f} %" if ref else "n/a"
        speed = f"{ref['total'] / r['total']:.1f}x" if ref else "n/a"
        rows.append(
            [m, f"{r['knn']:.2f}", f"{r['pool']:.2f}", f"{r['total']:.2f}", speed,
             f"{r['peak_mb']:.0f}", f"{r['peak_mb'] - r['base_mb']:.0f}", agree, acc(m, v)]
        )  # fmt: skip
    lines.append(
        markdown_table(
            [
                "path",
                "kNN s",
                "affinity+pool s",
                "total s",
                "speed-up",
                "peak RSS MB",
                "peak - inputs MB",
                "label agreement vs released",
                "accuracy vs truth",
            ],
            rows,
        )  # fmt: skip
    )
    _, _, feats, text_emb = make_inputs(v, args.seed)
    raw = (feats[:, :SEM_DIM] @ text_emb.T).argmax(1)
    lines += [
        "",
        f"Accuracy vs truth before pooling (argmax of the lifted features): {100 * (raw == truth[v]).mean():.2f} %",
    ]
    del feats
    lines += ["", "## Memory growth (peak RSS of each path's own process)", ""]
    rows = []
    for s in sizes:
        g, r = results[("geopurify", s)], results.get(("released", s))
        rows.append(
            [f"{s:,}", f"{g['total']:.2f}", f"{g['peak_mb']:.0f}", f"{g['peak_mb'] - g['base_mb']:.0f}",
             f"{r['total']:.2f}" if r else f"skipped (~{reference_gb(s):.0f} GB)",
             f"{r['peak_mb']:.0f}" if r else "-", f"{r['peak_mb'] - r['base_mb']:.0f}" if r else "-"]
        )  # fmt: skip
    lines.append(
        markdown_table(
            [
                "voxels",
                "geopurify s",
                "geopurify peak MB",
                "geopurify peak - inputs MB",
                "released s",
                "released peak MB",
                "released peak - inputs MB",
            ],
            rows,
        )  # fmt: skip
    )
    import torch

    lines += [
        "",
        f"CPU threads: torch {torch.get_num_threads()}; synthetic room, {int(LABEL_NOISE * 100)} % label noise, "
        f"seed {args.seed}. 'peak - inputs' subtracts the RSS after imports and loading the inputs "
        "(saved once per size, loaded by every process). "
        f"1-min load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} CPUs "
        "(timings on a shared machine; both paths ran under the same conditions).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    from geopurify.utils.atomic import write_text

    write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
