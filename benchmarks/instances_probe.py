"""Probes of issue #17 on the outputs `benchmarks/instances.py` cached: where the instance AP is lost.

Reads ``--work/out/{raw,purified}/<scan>`` (the raw-fusion and purified `segment` outputs of the two real
ScanNet scans; run `benchmarks/instances.py` first) and measures, with the default grouping:

1. **GT outcomes** (a diagnostic; uses the GT): each evaluated GT instance is *found* (a prediction of its
   class at IoU > 0.5), *mislabelled* (the prediction of highest IoU with it has IoU > 0.5 but another
   class) or has no mask (no prediction reaches IoU 0.5 with it), then split by the prediction of highest
   IoU with it: *fragmented* (at least 70 % of that prediction's points are its) or *merged* (that
   prediction is mostly other points);
2. **class hypotheses** (a rule, not adopted): each instance is also predicted as its 2nd (and 3rd) most
   likely thing class, with confidence = its confidence x p(class) / p(its class), p the mean over its
   points of the softmax (temperature of the grouping) over the thing classes' cosines, as open-vocabulary
   instance methods score every mask for every class;
3. **blends** (not adopted): instances grouped on ``a unit(raw) + (1 - a) unit(purified)``;
4. **grouping settings** (not adopted): single options of :class:`InstanceConfig` changed, on both.

Writes ``benchmarks/results/instances_probe.md`` and ``.json``. About a minute per row on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from geopurify.encoders import load_text_embeddings
from geopurify.eval.gt import name_mapping
from geopurify.eval.instance import InstanceEvaluator, PredictedInstances, predictions, thing_classes
from geopurify.instances import InstanceConfig, find_instances
from geopurify.labels import get_label_set
from geopurify.utils.atomic import write_json, write_text
from geopurify.utils.rows import unit_rows_np

log = logging.getLogger("bench.instances_probe")
REPO = Path(__file__).resolve().parents[1]
SCANS = REPO.parent / "shared" / "data" / "scannet-scene0011-pointcept"
NAMES = ("scene0011_00", "scene0011_01")
S20 = get_label_set("scannet20")
THINGS = thing_classes(S20.names)


def load(work: Path, kind: str, name: str) -> dict:
    out = work / "out" / kind / name
    if not (out / "features.npy").is_file():
        raise SystemExit(f"no {kind} output at {out}: run benchmarks/instances.py --work {work} first")
    te = load_text_embeddings(out / "text_embeddings.npz")
    return {"points": np.load(out / "points.npy"), "features": np.load(out / "features.npy").astype(np.float32),
            "colors": np.load(out / "colors.npy").astype(np.float32) / 255.0, "text": te.embeddings,
            "names": list(te.names)}  # fmt: skip


def hypotheses(pred: PredictedInstances, res, d: dict, k: int, temperature: float) -> PredictedInstances:
    """``pred`` plus each instance's next ``k - 1`` thing classes (see the module doc, 2)."""
    cmap = name_mapping(res.names, S20.names)
    things = [i for i, _ in enumerate(res.names) if cmap[i] in THINGS]
    tu = unit_rows_np(np.asarray(d["text"], np.float32))[things]
    labels, scores, masks = list(pred.labels), list(pred.scores), list(pred.masks)
    for ins in res.instances:
        logits = unit_rows_np(d["features"][ins.points]) @ tu.T / temperature
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = (prob / prob.sum(axis=1, keepdims=True)).mean(axis=0)
        own = p[things.index(ins.label)]
        for j in [j for j in np.argsort(-p) if things[j] != ins.label][: k - 1]:
            labels.append(int(cmap[things[j]]))
            scores.append(ins.confidence * float(p[j] / own))
            masks.append(ins.points)
    return PredictedInstances(labels, scores, masks)


def outcomes(res, sem: np.ndarray, inst: np.ndarray) -> dict[str, int]:
    """GT-instance outcome counts (see the module doc, 1)."""
    cmap = name_mapping(res.names, S20.names)
    owner = np.full(len(sem), -1)
    for i, ins in enumerate(res.instances):
        owner[ins.points] = i
    sizes = np.array([len(i.points) for i in res.instances])
    out = {"found": 0, "mislabelled": 0, "fragmented": 0, "merged": 0}
    for g in np.unique(inst[inst >= 0]):
        m = inst == g
        lab = sem[m & (sem >= 0)]
        c = int(np.bincount(lab).argmax()) if len(lab) else -1
        if c not in THINGS or m.sum() < 100:
            continue
        ids, inter = np.unique(owner[m], return_counts=True)
        keep = ids >= 0
        ids, inter = ids[keep], inter[keep]
        iou = inter / (m.sum() + sizes[ids] - inter) if len(ids) else np.zeros(0)
        hit = iou > 0.5
        if any(cmap[res.instances[i].label] == c for i in ids[hit]):
            out["found"] += 1
        elif hit.any():
            out["mislabelled"] += 1
        elif len(ids) and inter[np.argmax(iou)] >= 0.7 * sizes[ids[np.argmax(iou)]]:
            out["fragmented"] += 1
        else:
            out["merged"] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(REPO / "benchmarks" / "_work" / "instances"), help="instances.py's cache")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "instances_probe.md"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    work = Path(a.work)
    data = {(k, n): load(work, k, n) for k in ("raw", "purified") for n in NAMES}
    gt = {n: (np.load(SCANS / n / "segment20.npy"), np.load(SCANS / n / "instance.npy")) for n in NAMES}
    rows = [("raw fusion", "raw", None, 1, {}), ("purified", "purified", None, 1, {}),
            *[(f"{w}, {k} class hypotheses", kind, None, k, {}) for w, kind in (("raw fusion", "raw"),
              ("purified", "purified")) for k in (2, 3)],
            *[(f"blend a = {b} (a: raw's share)", "purified", b, 1, {}) for b in (0.3, 0.5, 0.7)],
            *[(f"{w}, {o} = {v}", kind, None, 1, {o: v}) for o, v in (("merge_cosine", 0.0), ("max_edge", 3.0),
              ("fh_c", 0.1)) for w, kind in (("raw fusion", "raw"), ("purified", "purified"))]]  # fmt: skip
    results = {}
    for label, kind, blend, k, over in rows:
        cfg = InstanceConfig(**over)
        ev = InstanceEvaluator(len(S20.names), THINGS)
        per, outs = [], {"found": 0, "mislabelled": 0, "fragmented": 0, "merged": 0}
        for n in NAMES:
            d = data[(kind, n)]
            f = d["features"]
            if blend is not None:
                f = blend * unit_rows_np(data[("raw", n)]["features"]) + (1 - blend) * unit_rows_np(f)
            res = find_instances(d["points"], f, d["text"], d["names"], cfg, colors=d["colors"])
            pred = predictions(res, name_mapping(res.names, S20.names))
            if k > 1:
                pred = hypotheses(pred, res, {**d, "features": f}, k, cfg.temperature)
            sem, inst = gt[n]
            ev.add(sem, inst, pred)
            one = InstanceEvaluator(len(S20.names), THINGS)
            one.add(sem, inst, pred)
            per.append(one.result(S20.names).ap50)
            for key, v in outcomes(res, sem, inst).items():
                outs[key] += v
        r = ev.result(S20.names)
        results[label] = {"ap50": r.ap50, "ap": r.ap, "ap25": r.ap25, "ap50_per_scan": per, "gt_outcomes": outs}
        log.info("%s: AP50 %.1f (%s) %s", label, 100 * r.ap50, " / ".join(f"{100 * x:.1f}" for x in per), outs)
    write_json(Path(a.out).with_suffix(".json"), {"work": str(work), "results": results})
    write_text(Path(a.out), report(results))
    print(report(results))


def report(results: dict) -> str:
    from common import markdown_table

    def p(x: float) -> str:
        return f"{100 * x:.1f}"

    rows = [[k, p(r["ap50"]), " / ".join(p(x) for x in r["ap50_per_scan"]), p(r["ap"]), p(r["ap25"]),
             " / ".join(str(r["gt_outcomes"][o]) for o in ("found", "mislabelled", "fragmented", "merged"))]
            for k, r in results.items()]  # fmt: skip
    return "\n".join([
        "# Where the instance AP is lost (`benchmarks/instances_probe.py`)",
        "",
        "Both real scans (scene0011_00, scene0011_01), default grouping, ScanNet-20 thing classes, matches pooled. "
        "GT outcomes: evaluated GT instances found with their class at IoU > 0.5 / covered at IoU > 0.5 by a "
        "prediction of another class only / with no prediction at IoU > 0.5, the best one at least 70 % theirs "
        "(fragmented) or not (merged). Counted on the grouping's own instances (the class-hypothesis rows add "
        "labels to the same masks).",
        "",
        markdown_table(["instances from", "AP50", "AP50 per scan", "AP", "AP25",
                        "GT found / mislabelled / fragmented / merged"],
                       rows),
        "",
    ])


if __name__ == "__main__":
    main()
