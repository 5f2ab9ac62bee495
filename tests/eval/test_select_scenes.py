"""Training-subset selection: stats by hand, median filter, planted clusters, naive reference, k-means."""

from __future__ import annotations

import logging
import math
import statistics

import numpy as np
import pytest

from geopurify.errors import ConfigError, InputError
from geopurify.eval import kmeans, scene_stats, select_scenes

C = 24
BLOCK = 6  # cluster k owns classes [6k, 6k + 6)


def test_scene_stats_by_hand():
    count, ent = scene_stats(np.array([[1, 1, 0, 0], [4, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]))
    assert count.tolist() == [2, 1, 4, 0]
    np.testing.assert_allclose(ent, [math.log(2) / math.log(4), 0.0, 1.0, 0.0])


def test_median_filter_by_hand(caplog):
    h = {
        "A": np.array([1, 1, 1, 1]),  # count 4, entropy 1
        "B": np.array([5, 1, 0, 0]),  # count 2, entropy 0.325 < median 0.4125 -> dropped
        "C": np.array([1, 1, 0, 0]),  # count 2, entropy 0.5
        "D": np.array([9, 0, 0, 0]),  # count 1 -> dropped
    }
    sel = select_scenes(h, n=2)
    hb = -(5 / 6 * math.log(5 / 6) + 1 / 6 * math.log(1 / 6)) / math.log(4)
    assert sel.median_class_count == 2.0
    assert sel.median_entropy == pytest.approx((hb + 0.5) / 2)
    assert [r.kept for r in sel.table] == [True, False, True, False]
    assert sel.chosen == ["A", "C"]  # best score first: A 1 + 4/4, C 0.5 + 2/4
    assert [r.score for r in sel.table][0] == pytest.approx(2.0)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="geopurify.eval.select"):
        sel3 = select_scenes(h, n=3)
    assert sel3.chosen == ["A", "C", "B"]  # topped up from the dropped: B (0.325 + 2/4) before D (0 + 1/4)
    assert any("only 2 of 4 scenes" in r.getMessage() for r in caplog.records)


def _planted(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """4 clusters x 5 rich scenes (all of the cluster's own 6 classes, 0-3 small extras elsewhere),
    plus 12 one-class scenes and one 'trap' per cluster that the entropy filter must drop."""
    rng = np.random.default_rng(seed)
    hist: dict[str, np.ndarray] = {}
    truth: dict[str, int] = {}
    for k in range(4):
        own = np.arange(k * BLOCK, (k + 1) * BLOCK)
        other = np.setdiff1d(np.arange(C), own)
        for j in range(5):
            h = np.zeros(C, dtype=np.int64)
            h[own] = rng.integers(100, 600, size=BLOCK)
            extras = rng.choice(other, size=int(rng.integers(0, 4)), replace=False)
            h[extras] = rng.integers(1, 15, size=len(extras))
            name = f"s{k}_{j}_{rng.integers(1000)}"  # names do not sort in score order
            hist[name], truth[name] = h, k
        for j in range(3):
            h = np.zeros(C, dtype=np.int64)
            h[own[j]] = 200
            hist[f"poor{k}_{j}"], truth[f"poor{k}_{j}"] = h, k
        trap = np.ones(C, dtype=np.int64)  # all 24 classes, but 1 point each next to 20000 of one class
        trap[own[0]] = 20000
        hist[f"trap{k}"], truth[f"trap{k}"] = trap, k
    return hist, truth


def _naive_expected(hist: dict[str, np.ndarray], truth: dict[str, int], gamma: float) -> set[str]:
    stats = {}
    for name, h in hist.items():
        total = sum(int(v) for v in h)
        ent = -sum((v / total) * math.log(v / total) for v in h if v > 0) / math.log(C)
        cnt = sum(1 for v in h if v > 0)
        stats[name] = (cnt, ent, ent + gamma * cnt / C)
    med_c = statistics.median(s[0] for s in stats.values())
    med_e = statistics.median(s[1] for s in stats.values())
    best: dict[int, str] = {}
    for name, (cnt, ent, sc) in stats.items():
        if cnt >= med_c and ent >= med_e:
            k = truth[name]
            if k not in best or sc > stats[best[k]][2]:
                best[k] = name
    return set(best.values())


def test_planted_clusters_one_best_scene_each():
    hist, truth = _planted()
    expected = {g: _naive_expected(hist, truth, g) for g in (0.0, 1.0, 4.0)}
    assert len({frozenset(v) for v in expected.values()}) > 1  # gamma matters on this data
    for gamma, want in expected.items():
        sel = select_scenes(hist, n=4, gamma=gamma, seed=0)
        assert len(sel.chosen) == 4
        assert set(sel.chosen) == want, gamma
        assert sorted(truth[c] for c in sel.chosen) == [0, 1, 2, 3]
        rows = {r.name: r for r in sel.table}
        scores_chosen = [rows[c].score for c in sel.chosen]
        assert scores_chosen == sorted(scores_chosen, reverse=True)
        # the traps have the highest score of all (24 classes) but fail the entropy median
        assert max(rows.values(), key=lambda r: r.score).name.startswith("trap") or gamma == 0.0
        assert all(not rows[f"trap{k}"].kept and rows[f"trap{k}"].cluster == -1 for k in range(4))
        assert all(not r.kept for n, r in rows.items() if n.startswith("poor"))
        # clusters of kept scenes follow the planted blocks exactly
        kept = [r for r in sel.table if r.kept]
        pairs = {(truth[r.name], r.cluster) for r in kept}
        assert len(pairs) == 4 and len({p[1] for p in pairs}) == 4


def test_select_deterministic_and_json():
    hist, _ = _planted(seed=5)
    a = select_scenes(hist, n=4, seed=1)
    b = select_scenes(hist, n=4, seed=1)
    assert a.chosen == b.chosen
    assert [r.cluster for r in a.table] == [r.cluster for r in b.table]
    d = a.to_dict()
    assert d["chosen"] == a.chosen and len(d["table"]) == len(hist)
    assert sum(r["chosen"] for r in d["table"]) == 4


def test_select_bad_input():
    with pytest.raises(InputError, match="no scene"):
        select_scenes({})
    with pytest.raises(InputError, match="'b' has 3 classes, expected 2"):
        select_scenes({"a": np.array([1, 2]), "b": np.array([1, 2, 3])})
    with pytest.raises(InputError, match="'a' has negative"):
        select_scenes({"a": np.array([1, -2])})
    with pytest.raises(ConfigError):
        select_scenes({"a": np.array([1, 2])}, n=0)


def test_kmeans_recovers_blobs_and_handles_duplicates():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5]], dtype=float)
    truth = np.repeat(np.arange(5), 30)
    x = centres[truth] + rng.normal(scale=0.5, size=(150, 2))
    res = kmeans(x, 5, seed=0)
    assert res.labels.shape == (150,) and res.centers.shape == (5, 2)
    # same partition as the truth, up to relabelling
    assert len({(t, lab) for t, lab in zip(truth, res.labels)}) == 5
    np.testing.assert_allclose(np.sort(res.centers, axis=0), np.sort(centres, axis=0), atol=0.3)
    again = kmeans(x, 5, seed=0)
    np.testing.assert_array_equal(res.labels, again.labels)
    dup = np.array([[0.0, 0.0]] * 4 + [[1.0, 1.0]] * 2)
    r = kmeans(dup, 4, seed=0)
    assert sorted(np.bincount(r.labels, minlength=4).tolist())[0] >= 1  # no empty cluster
    with pytest.raises(ConfigError):
        kmeans(dup, 7)


def test_fewer_survivors_than_n_are_topped_up_by_score(caplog):
    """select --n 20 over 2 scenes chose 1 (the median filter dropped the other before the budget); the
    dropped scenes now top the selection up, best score first, with a warning."""
    import logging

    from geopurify.eval.select import select_scenes

    rich, poor = np.array([5.0, 5, 5, 5]), np.array([9.0, 1, 0, 0])
    with caplog.at_level(logging.WARNING, logger="geopurify.eval.select"):
        sel = select_scenes({"poor": poor, "rich": rich}, n=20)
    assert sel.chosen == ["rich", "poor"]
    assert "added the 1 best-scored of the others" in caplog.text
    assert [r.kept for r in sel.table] == [False, True] and all(r.chosen for r in sel.table)
    hists = {"a": rich, "b": poor, "c": np.array([0.0, 4, 4, 1]), "d": np.array([1.0, 0, 0, 0]),
             "e": np.array([3.0, 3, 2, 0])}
    sel3 = select_scenes(hists, n=4)
    kept = [r.name for r in sel3.table if r.kept]
    assert len(sel3.chosen) == 4 and set(kept) <= set(sel3.chosen)
    assert sel3.chosen[len(kept):] == sorted(set(hists) - set(kept), key=lambda k: -next(
        r.score for r in sel3.table if r.name == k))[: 4 - len(kept)]
