"""Components joined only by a thin bridge in the floor plane are cut (two chairs joined by a sill); a
component with a large and a small side, or one body, stays whole."""

from __future__ import annotations

import numpy as np
import pytest
from instances_fixtures import CHAIR, FLOOR, NAMES, STEP, box_surface

from geopurify.errors import ConfigError
from geopurify.instances import InstanceConfig, find_instances


def scene(a, b, seed=0):
    """A floor and two chair-class boxes ``a``, ``b`` (lo, hi) joined by a 2 cm strip 28 cm high."""
    rng = np.random.default_rng(seed)
    g = np.arange(0, 3, STEP)
    X, Y = np.meshgrid(g, g)
    floor = np.c_[X.ravel(), Y.ravel(), np.zeros(X.size)]
    ya = (a[0][1] + a[1][1]) / 2
    strip = box_surface([a[1][0], ya - 0.01, 0.02], [b[0][0], ya + 0.01, 0.3])
    parts = [(floor, FLOOR, -1), (box_surface(*a), CHAIR, 0), (box_surface(*b), CHAIR, 1), (strip, CHAIR, -1)]
    pts = np.concatenate([p for p, _, _ in parts]).astype(np.float32)
    cls = np.concatenate([np.full(len(p), c) for p, c, _ in parts])
    obj = np.concatenate([np.full(len(p), o) for p, _, o in parts])
    text = np.linalg.qr(rng.standard_normal((8, 8)))[0][:5].astype(np.float32)
    feats = (text[cls] + 0.2 * rng.standard_normal((len(pts), 8))).astype(np.float32)
    return pts, feats, text, obj


def ious(res, obj):
    return [max((len(np.intersect1d(i.points, np.flatnonzero(obj == o))) /
                 len(np.union1d(i.points, np.flatnonzero(obj == o))) for i in res.instances), default=0.0)
            for o in (0, 1)]  # fmt: skip


def test_two_chairs_joined_by_a_strip_are_cut_apart():
    pts, feats, text, obj = scene(([0.5, 0.5, 0.02], [0.9, 0.9, 0.5]), ([1.2, 0.5, 0.02], [1.6, 0.9, 0.5]))
    res = find_instances(pts, feats, text, NAMES, InstanceConfig())
    assert min(ious(res, obj)) > 0.85
    whole = find_instances(pts, feats, text, NAMES, InstanceConfig(split_width=0))
    assert len(whole) == 1 and max(ious(whole, obj)) < 0.6


def test_a_large_and_a_small_side_stay_one_object():
    # a 1.2 x 0.8 m body and a 0.45 x 0.45 m one: not two of a kind (a counter narrowed by its sink)
    pts, feats, text, obj = scene(([0.3, 0.5, 0.02], [1.5, 1.3, 0.5]), ([1.8, 0.68, 0.02], [2.25, 1.13, 0.5]))
    res = find_instances(pts, feats, text, NAMES, InstanceConfig())
    assert len(res) == 1
    assert np.isin(np.flatnonzero(obj >= 0), res.instances[0].points).mean() > 0.95


def test_split_options_are_validated():
    for bad in ({"split_width": -0.1}, {"split_min_area": -1}, {"split_balance": 1.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            InstanceConfig(**bad)
