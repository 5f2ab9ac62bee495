"""GT of every reader maps onto the benchmark label sets the way `geopurify eval` needs."""

import numpy as np
import pytest

from geopurify.errors import InputError
from geopurify.eval.gt import gt_indices, name_mapping
from geopurify.io import Scene
from geopurify.labels import get_label_set


def _scene(**kw):
    return Scene(name="s", points=np.zeros((4, 3), np.float32), colors=np.zeros((4, 3), np.float32), **kw)


def test_nyu40_to_scannet20_and_ignore():
    s = _scene(labels=np.array([1, 39, 22, 0]), label_set="nyu40")  # wall, otherfurniture, ceiling, unlabelled
    assert gt_indices(s, "scannet20").tolist() == [0, 19, -1, -1]


def test_scannet200_from_sens_aggregation_ids():
    lset = get_label_set("scannet200")
    raw = np.array([lset.ids[0], lset.ids[5], 0, 999999])  # two valid ids, unannotated, unknown
    s = _scene(labels=np.array([1, 1, 1, 1]), label_set="nyu40", meta={"scannet200_raw": raw})
    assert gt_indices(s, "scannet200").tolist() == [0, 5, -1, -1]


def test_pointcept_indices_pass_through_and_other_set_from_meta():
    s = _scene(labels=np.array([0, 3, -1, 19]), label_set="scannet20",
               meta={"labels_scannet200": np.array([7, 8, -1, 199])})
    assert gt_indices(s, "scannet20").tolist() == [0, 3, -1, 19]
    assert gt_indices(s, "scannet200").tolist() == [7, 8, -1, 199]


def test_unmappable_label_set_is_an_input_error():
    s = _scene(labels=np.array([1, 2, 3, 4]), label_set="nyu40")
    with pytest.raises(InputError, match="--label-set nyu40"):
        gt_indices(s, "scannet200")


def test_raw_matterport_categories_name_the_missing_table_not_a_label_set_eval_rejects():
    """It said 'pass --label-set matterport_category', which eval then refused as an unknown label set."""
    s = _scene(labels=np.array([1, 2, 3, 4]), label_set="matterport_category")
    with pytest.raises(InputError, match="no category_mapping.tsv") as exc:
        gt_indices(s, "matterport21")
    assert "--label-set" not in str(exc.value)


def test_prediction_names_map_by_normalised_name():
    target = get_label_set("scannet20").names
    m = name_mapping(["a chair in a scene", "Other", "fridge", "lamp"], target)
    assert m.tolist() == [target.index("chair"), target.index("otherfurniture"), target.index("refrigerator"), -1]


def test_matterport_region_categories_map_to_openscene_sets(tmp_path):
    tsv = tmp_path / "category_mapping.tsv"
    tsv.write_text(
        "index\traw_category\tcategory\tcount\tnyuId\tnyu40id\teigen13id\tnyuClass\tnyu40class\tmpcat40index\n"
        "3\tfloor\tfloor\t9\t2\t2\t2\tfloor\tfloor\t2\n"
        "7\tkitchen chair\tchair\t4\t5\t5\t11\tchair\tchair\t3\n"
        "12\trug\trug\t1\t\t40\t\t\t\t40\n"
    )
    raw = np.array([3, 7, 12, 0])
    s = _scene(labels=np.array([2, 5, 40, 0]), label_set="nyu40",
               meta={"matterport_category_raw": raw, "category_mapping": str(tsv)})
    m40 = get_label_set("matterport40").names
    assert gt_indices(s, "matterport40").tolist() == [m40.index("floor"), m40.index("chair"), -1, -1]
    m21 = get_label_set("matterport21").names
    assert gt_indices(s, "matterport21").tolist() == [m21.index("floor"), m21.index("chair"), -1, -1]


@pytest.mark.parametrize("bad", [20, 255, -2])
def test_gt_indices_outside_the_label_set_are_refused(bad):
    """A Pointcept segment20 holding 20 (or 255 as its ignore value) was scored as a class of its own
    (before: the pseudo-class of predictions outside the label set, a present class with IoU 0 in the mean)."""
    s = _scene(labels=np.array([0, 3, -1, bad]), label_set="scannet20")
    with pytest.raises(InputError, match=rf"class index {bad} on 1 points, outside the 20 classes of scannet20"):
        gt_indices(s, "scannet20")
    s = _scene(labels=np.array([0, 3, -1, 19]), label_set="scannet20",
               meta={"labels_scannet200": np.array([0, 1, 2, 200])})
    with pytest.raises(InputError, match="outside the 200 classes of scannet200"):
        gt_indices(s, "scannet200")
    assert gt_indices(s, "scannet20").tolist() == [0, 3, -1, 19]
