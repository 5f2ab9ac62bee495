"""Quality gates that fail when distillation breaks: on >= 3 held-out rooms, confusion summed,

* the trained student beats an untrained student of the same architecture by >= 2 mIoU, and
* beats raw fusion by >= 4 mIoU.

Real-scan rooms when ../shared holds the ScanNet scans, procedural rooms otherwise; exactly what is
held out is written in tests/e2e/_gate_rooms.py. Both branches train for real (a few hundred steps).
"""

from __future__ import annotations

import json
import logging
import os

import pytest
from _gate_rooms import compare, have_real, procedural_rooms, real_rooms

log = logging.getLogger(__name__)


# GEOPURIFY_GATES=procedural runs the procedural branch even where the real scans are present.
BRANCH = os.environ.get("GEOPURIFY_GATES") or ("real" if have_real() else "procedural")
# Opt-in until they are validated: on the shared 2-core machine one run did not finish in time
# (training steps ran at > 30 s wall each under a load of 15-26), so no pass/fail has been observed.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("GEOPURIFY_RUN_GATES") != "1",
                       reason="quality gates are opt-in (GEOPURIFY_RUN_GATES=1): not yet validated"),
]


@pytest.fixture(scope="module", params=[BRANCH])
def scores(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"gates_{request.param}")
    train, test = (real_rooms if request.param == "real" else procedural_rooms)(root)
    assert len(test) >= 3 and not set(train) & set(test)
    res = compare(root, train, test)
    log.info("gates (%s): %s", request.param, json.dumps(res))
    print(f"\ngates ({request.param}, {len(test)} held-out rooms, summed): {res}")
    return res


def test_trained_student_beats_the_untrained_one(scores):
    assert scores["trained"] >= scores["untrained"] + 0.02, scores


def test_trained_student_beats_raw_fusion(scores):
    assert scores["trained"] >= scores["raw"] + 0.04, scores
