"""Label-set invariants against the published ScanNet / NYU40 / OpenScene tables."""

from __future__ import annotations

import numpy as np
import pytest

from geopurify.errors import ConfigError, InputError
from geopurify.labels import LABEL_SETS, get_label_set, nyu40_palette, palette

SCANNET20_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
SCANNET20_NAMES = [
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
]  # fmt: skip


def test_scannet20_ids_and_names_exact():
    ls = get_label_set("scannet20")
    assert ls.name == "scannet20"
    assert ls.ids == SCANNET20_IDS
    assert ls.names == SCANNET20_NAMES
    assert ls.num_classes == 20
    assert ls.colors.shape == (20, 3) and ls.colors.dtype == np.uint8


def test_nyu40_key_ids():
    ls = get_label_set("nyu40")
    assert ls.ids == list(range(1, 41))
    by_id = dict(zip(ls.ids, ls.names))
    assert by_id[39] == "otherfurniture"
    assert by_id[40] == "otherprop"
    assert by_id[38] == "otherstructure"
    assert by_id[22] == "ceiling"
    assert by_id[13] == "blinds"
    assert by_id[24] == "refrigerator"
    # ScanNet-20 is NYU40 restricted to the benchmark ids, with the same names.
    s20 = get_label_set("scannet20")
    assert [by_id[i] for i in s20.ids] == s20.names


def test_refrigerator_spelled_correctly_everywhere():
    for name in LABEL_SETS:
        ls = get_label_set(name)
        assert not any("refridgerator" in n or "excercise" in n for n in ls.names), name
    for name in ("scannet20", "nyu40", "scannet200", "matterport21", "matterport80", "matterport160"):
        assert "refrigerator" in get_label_set(name).names, name


def test_scannet200_partition_and_known_ids():
    ls = get_label_set("scannet200")
    assert ls.num_classes == 200
    assert len(set(ls.ids)) == 200 and len(set(ls.names)) == 200
    assert ls.ids == sorted(ls.ids)  # the benchmark lists ids ascending
    assert ls.ids[:3] == [1, 2, 3] and ls.ids[-1] == 1191
    by_id = dict(zip(ls.ids, ls.names))
    assert by_id[1] == "wall" and by_id[2] == "chair" and by_id[3] == "floor"
    assert by_id[1191] == "mattress" and by_id[41] == "ceiling"
    assert 12 not in by_id and 20 not in by_id  # gaps in the benchmark's id list
    split = ls.split
    assert split is not None and set(split) == {"head", "common", "tail"}
    assert [len(split[k]) for k in ("head", "common", "tail")] == [66, 68, 66]
    members = split["head"] + split["common"] + split["tail"]
    assert sorted(members) == list(range(200))  # every class exactly once
    assert ls.names.index("wall") in split["head"]
    assert ls.names.index("cushion") in split["common"]
    assert ls.names.index("luggage") in split["tail"]


def test_matterport_sets_are_openscene_prefixes():
    m21 = get_label_set("matterport21")
    assert m21.names[:19] == SCANNET20_NAMES[:19]
    assert m21.names[19:] == ["other", "ceiling"]
    assert m21.ids == SCANNET20_IDS + [22]
    m40, m80, m160 = (get_label_set(f"matterport{k}") for k in (40, 80, 160))
    assert (m40.num_classes, m80.num_classes, m160.num_classes) == (40, 80, 160)
    assert m160.names[:80] == m80.names and m80.names[:40] == m40.names
    assert m160.ids == list(range(1, 161))
    assert m40.names[:4] == ["wall", "door", "ceiling", "floor"]
    assert m40.names[-1] == "faucet"
    assert m80.names[49] == "refrigerator" and m80.names[-1] == "bucket"
    assert m160.names[-3:] == ["chimney", "person", "alarm"]
    assert "exercise equipment" in m160.names
    assert len(set(m160.names)) == 160


def test_nyu40_palette_standard_colours():
    pal = nyu40_palette()
    assert pal.shape == (41, 3)
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[1].tolist() == [174, 199, 232]  # wall
    assert pal[39].tolist() == [82, 84, 163]  # otherfurniture
    s20 = get_label_set("scannet20")
    assert s20.colors[14].tolist() == [255, 127, 14]  # refrigerator
    m21 = get_label_set("matterport21")
    assert m21.colors[-1].tolist() == pal[22].tolist()


def test_one_palette_unique_and_deterministic():
    """Label sets without NYU40 colours take the same class palette as every picture (viz.ply.palette)."""
    from geopurify.viz.ply import palette as picture_palette

    assert picture_palette is palette
    a = palette(300)
    assert a.shape == (300, 3) and a.dtype == np.uint8
    assert len({tuple(c) for c in a}) == 300
    np.testing.assert_array_equal(a, palette(300))
    np.testing.assert_array_equal(a[:10], palette(10))
    big = palette(3000)  # a user may name that many classes: every class its own colour
    assert len({tuple(c) for c in big}) == 3000
    np.testing.assert_array_equal(big[:300], a)
    for name in LABEL_SETS:
        cols = get_label_set(name).colors
        assert len({tuple(c) for c in cols}) == len(cols), name
    for name in ("scannet200", "matterport40", "matterport80", "matterport160"):
        np.testing.assert_array_equal(get_label_set(name).colors, palette(len(get_label_set(name).names)))


def test_colors_read_only_and_aliases():
    ls = get_label_set("ScanNet_20")
    assert ls.name == "scannet20"
    with pytest.raises(ValueError):
        ls.colors[0, 0] = 1
    assert get_label_set("matterport").name == "matterport21"


def test_unknown_set_and_class_raise():
    with pytest.raises(ConfigError, match="unknown label set 'coco'"):
        get_label_set("coco")
    with pytest.raises(InputError, match="no class named"):
        get_label_set("scannet20").index("ceiling")
    assert get_label_set("scannet20").index("sink") == 17
