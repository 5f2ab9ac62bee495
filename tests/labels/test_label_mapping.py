"""Raw labels -> class indices: NYU40 ids, ScanNet TSV categories, Matterport category ids."""

from __future__ import annotations

import numpy as np
import pytest

from geopurify.errors import ConfigError, InputError
from geopurify.labels import (
    categories_to_index,
    get_label_set,
    matterport_category_map,
    matterport_to_index,
    nyu40_to_scannet20,
    raw_to_index,
    read_labels_tsv,
    scannet_category_map,
)

# Real rows (subset of columns) of ScanNet's scannetv2-labels.combined.tsv.
SCANNET_TSV = (
    "id\traw_category\tcategory\tcount\tnyu40id\tnyu40class\n"
    "1\twall\twall\t8277\t1\twall\n"
    "2\tchair\tchair\t4646\t5\tchair\n"
    "22\tbook\tbook\t1678\t23\tbooks\n"
    "3\tfloor\tfloor\t2760\t2\tfloor\n"
    "41\tceiling\tceiling\t806\t22\tceiling\n"
    "1191\tmattress\tmattress\t1\t4\tbed\n"
    "12\tpicture frame\tpicture\t60\t11\tpicture\n"
    "40\tcoffee table\tcoffee table\t100\t7\ttable\n"
)

# Real rows of Matterport's category_mapping.tsv (as shipped with OpenScene), selected columns + one padded.
MP_TSV = (
    "index\traw_category\tcategory\tcount\tnyuId\tnyu40id\teigen13id\tnyuClass\tnyu40class\n"
    "1\twall\twall\t7667\t21\t1\t12\twall\twall\n"
    "2\tdoor\tdoor\t2544\t28\t8\t12\tdoor\tdoor\n"
    "3\tceiling\tceiling\t2363\t4\t22\t3\tceiling\tceiling\n"
    "9\tremove\tremove\t1622\t0\t0\t0\tvoid\tvoid\n"
    "11\tobject\tobject\t1145\t\t40\t7\t\totherprop\n"
    "40\tunknown\tunknown\t186\t20\t40\t7\tunknown\totherprop\n"
    "47\tcoffee table\tcoffee table\t159\t356\t39\t6\tcoffee table\totherfurniture\n"
    "87\trefrigerator\trefrigerator\t65\t17\t24\t6\trefridgerator\trefridgerator\n"
    "24\tcouch\tcouch\t290\t83\t6\t9\tsofa\tsofa\n"
    "13\tcabinet\tcabinet\t785\t3\t3\t6\tcabinet\n"
)


def test_nyu40_to_scannet20_known_ids():
    raw = np.array([1, 2, 39, 36, 24, 16, 14, 0, 13, 22, 40, 41, -1, 255])
    expected = [0, 1, 19, 18, 14, 13, 12, -1, -1, -1, -1, -1, -1, -1]
    out = nyu40_to_scannet20(raw)
    assert out.dtype == np.int64 and out.shape == raw.shape
    assert out.tolist() == expected


def test_nyu40_to_scannet20_all_ids_match_naive():
    raw = np.arange(-3, 60)
    ids = get_label_set("scannet20").ids
    naive = [ids.index(r) if r in ids else -1 for r in raw]
    assert nyu40_to_scannet20(raw).tolist() == naive


def test_raw_to_index_float_and_shape():
    out = raw_to_index("scannet200", np.array([[1.0, 1191.0], [12.0, 41.0]], dtype=np.float32))
    s200 = get_label_set("scannet200")
    assert out.shape == (2, 2)
    assert out.tolist() == [[0, 199], [-1, s200.names.index("ceiling")]]
    assert get_label_set("scannet20").to_index([39]).tolist() == [19]
    with pytest.raises(InputError, match="whole numbers"):
        raw_to_index("nyu40", np.array([1.5]))
    with pytest.raises(InputError, match="integers"):
        raw_to_index("nyu40", np.array(["wall"]))


def test_scannet_tsv_to_scannet200_and_scannet20(tmp_path):
    p = tmp_path / "scannetv2-labels.combined.tsv"
    p.write_text(SCANNET_TSV)
    table = read_labels_tsv(p)
    assert table.columns[:3] == ["id", "raw_category", "category"]
    assert len(table.rows) == 8
    s200 = get_label_set("scannet200")
    m200 = scannet_category_map(table, "scannet200")
    assert m200["wall"] == 0 and m200["chair"] == 1 and m200["floor"] == 2
    assert m200["mattress"] == 199
    assert m200["book"] == s200.names.index("book")
    assert m200["picture frame"] == -1  # id 12 is not a ScanNet200 class
    m20 = scannet_category_map(table, "scannet20")
    assert m20["mattress"] == 3  # nyu40 4 = bed
    assert m20["book"] == -1  # nyu40 23 (books) is not a benchmark class
    assert m20["coffee table"] == 6
    cats = ["wall", "mattress", "unknown thing", "wall", "book"]
    assert categories_to_index(cats, m200).tolist() == [0, 199, -1, 0, s200.names.index("book")]
    assert categories_to_index([], m200).shape == (0,)
    with pytest.raises(ConfigError):
        scannet_category_map(table, "matterport40")


def test_matterport_tsv_mappings(tmp_path):
    p = tmp_path / "category_mapping.tsv"
    p.write_text(MP_TSV)
    table = read_labels_tsv(p)
    assert table.rows[-1]["nyu40class"] == ""  # short row padded
    lut21 = matterport_category_map(table, "matterport21")
    m21 = get_label_set("matterport21")
    assert lut21.shape == (88,)
    assert lut21[1] == 0 and lut21[2] == m21.names.index("door") and lut21[3] == 20  # ceiling (nyu40 22)
    assert lut21[9] == -1 and lut21[11] == -1  # void, otherprop
    assert lut21[47] == 19  # nyu40 39 -> "other"
    assert lut21[87] == m21.names.index("refrigerator")
    assert lut21[0] == -1 and lut21[5] == -1  # unlabelled, not in the table

    lut40 = matterport_category_map(table, "matterport40")
    m40 = get_label_set("matterport40")
    assert lut40[1] == 0 and lut40[2] == 1 and lut40[3] == 2
    assert lut40[47] == m40.names.index("coffee table")
    assert lut40[9] == -1 and lut40[11] == -1 and lut40[40] == -1  # void, empty, unknown
    assert lut40[87] == -1  # refrigerator is class 50, beyond the first 40
    lut80 = matterport_category_map(table, "matterport80")
    assert lut80[87] == get_label_set("matterport80").names.index("refrigerator")  # TSV spells it "refridgerator"

    face_ids = np.array([-1, 0, 1, 3, 87, 500, 24])
    assert matterport_to_index(face_ids, lut21).tolist() == [-1, -1, 0, 20, 14, -1, 5]


def test_read_labels_tsv_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_labels_tsv(tmp_path / "missing.tsv")
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.tsv: empty label table"):
        read_labels_tsv(empty)
    wide = tmp_path / "wide.tsv"
    wide.write_text("id\traw_category\n1\twall\textra\n")
    with pytest.raises(InputError, match="wide.tsv: line 2 has 3 cells"):
        read_labels_tsv(wide)
    nocol = tmp_path / "nocol.tsv"
    nocol.write_text("raw_category\nwall\n")
    with pytest.raises(InputError, match="nocol.tsv: no column 'id'"):
        scannet_category_map(read_labels_tsv(nocol))
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\traw_category\nabc\twall\n")
    with pytest.raises(InputError, match="bad.tsv: row 2, column 'id'"):
        scannet_category_map(read_labels_tsv(bad))
