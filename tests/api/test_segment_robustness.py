"""Issue 7: bad input never crashes a run or loses work. Each case builds the bad input itself."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from _fixtures import write_tiny_scannet
from geopurify.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "geopurify", *map(str, args)], capture_output=True, text=True)


def segment_raw(scene, out, *extra):
    return main(["-q", "segment", str(scene), "--no-purify", "--out", str(out), *extra])


def test_raw_segment_gives_the_hand_known_labels(tmp_path):
    d = write_tiny_scannet(tmp_path)
    assert segment_raw(d, tmp_path / "o") == 0
    o = tmp_path / "o"
    labels = np.loadtxt(o / "labels.txt", dtype=int)
    pts = np.load(o / "points.npy")
    # left half of the plane is "wall" (0), right half "floor" (1); a 1-vertex band at x=0 may go either way
    far = np.abs(pts[:, 0]) > 0.03
    assert (labels[far] == (pts[far, 0] > 0)).all()
    feats = np.load(o / "features.npy")
    assert feats.dtype == np.float16 and feats.shape == (1600, 4)
    run = json.loads((o / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["points"] == 1600
    assert {"lift", "classify", "write"} <= set(run["seconds"])
    assert run["config"]["purify"] is False and run["config"]["lift"]["fusion"] == "consensus"
    assert json.loads((o / "names.json").read_text()) == ["wall", "floor"]


def test_bad_frames_are_skipped_and_counted(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=5)
    np.savetxt(d / "pose" / "0.txt", np.full((4, 4), -np.inf))
    np.savetxt(d / "pose" / "1.txt", np.diag([2.0, 1, 1, 1]))
    data = (d / "depth" / "2.png").read_bytes()
    (d / "depth" / "2.png").write_bytes(data[: len(data) // 2])
    (d / "features_2d" / "3.npz").unlink()
    assert segment_raw(d, tmp_path / "o") == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    skipped = run["counts"]["frames_skipped"]
    assert skipped["bad_pose"] == 2 and skipped["bad_depth"] == 1 and skipped["missing_features"] == 1
    assert run["counts"]["frames_used"] == 1


def test_all_frames_bad_is_exit_2(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):
        (d / "features_2d" / f"{k}.npz").unlink()
    r = run_cli("segment", d, "--no-purify", "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "scene0000_00" in r.stderr and len(r.stderr.strip().splitlines()) >= 1
    assert not (tmp_path / "o" / "labels.txt").exists()


def test_no_point_visible_is_exit_2(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=2)
    for k in range(2):
        np.savetxt(d / "pose" / f"{k}.txt", np.diag([1.0, -1, -1, 1]))  # looking away from the plane
    r = run_cli("segment", d, "--no-purify", "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "scene0000_00" in r.stderr


@pytest.mark.parametrize(
    "make_bad, expect",
    [
        (lambda d: np.savez(d / "features_2d" / "0.npz", segments=np.zeros((60, 80), np.int32),
                            embeddings=np.ones((2, 7), np.float32)), "dimension"),
        (lambda d: np.savez(d / "features_2d" / "0.npz", segments=np.full((60, 80), 5, np.int32),
                            embeddings=np.eye(4, dtype=np.float32)[:2]), "0.npz"),
        (lambda d: np.savez(d / "features_2d" / "0.npz", segments=np.zeros((60, 80), np.int32),
                            embeddings=np.full((2, 4), np.nan, np.float32)), "0.npz"),
    ],
    ids=["dim-mismatch", "segment-id-past-table", "nan-embeddings"],
)
def test_bad_feature_files_are_clear_errors_or_counted_skips(tmp_path, make_bad, expect):
    d = write_tiny_scannet(tmp_path, frames=1)
    make_bad(d)
    r = run_cli("segment", d, "--no-purify", "--out", tmp_path / "o")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and expect in r.stderr


def test_text_dimension_mismatch(tmp_path):
    d = write_tiny_scannet(tmp_path)
    np.savez(d / "text_embeddings.npz", names=np.array(["wall", "floor"]), embeddings=np.ones((2, 9), np.float32))
    r = run_cli("segment", d, "--no-purify", "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "dimension" in r.stderr


def test_memory_estimate_refuses_up_front(tmp_path):
    d = write_tiny_scannet(tmp_path)
    r = run_cli("segment", d, "--no-purify", "--out", tmp_path / "o", "--memory-limit", "10K")
    assert r.returncode == 2 and "GiB" in r.stderr and "--no-features" in r.stderr
    assert not (tmp_path / "o").exists()


KILLER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import geopurify.utils.atomic as atomic
    real_fsync = os.fsync
    def slow_fsync(fd):
        # the first output being written: announce it, then hang until killed
        Path(sys.argv[1]).write_text("writing")
        time.sleep(60)
    atomic.os.fsync = slow_fsync
    from geopurify.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_sigkill_midway_leaves_no_partial_outputs_and_rerun_completes(tmp_path):
    d = write_tiny_scannet(tmp_path)
    out = tmp_path / "out"
    marker = tmp_path / "marker"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.Popen([sys.executable, str(script), str(marker), "-q", "segment", str(d), "--no-purify",
                             "--out", str(out / d.name)])
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "segment never reached its first write"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / d.name / "labels.txt").exists()
    assert not (out / d.name / "run.json").exists()
    # batch rerun: the killed scene is redone, a finished one is skipped
    d2 = write_tiny_scannet(tmp_path, name="scene0001_00")
    assert segment_raw(d2, out / d2.name) == 0
    stamp = (out / d2.name / "run.json").stat().st_mtime_ns
    lst = tmp_path / "scenes.txt"
    lst.write_text(f"{d}\n{d2}\n")
    assert main(["-q", "segment", "--scenes", str(lst), "--no-purify", "--out", str(out)]) == 0
    assert (out / d.name / "labels.txt").exists()
    assert json.loads((out / d.name / "run.json").read_text())["status"] == "complete"
    assert (out / d2.name / "run.json").stat().st_mtime_ns == stamp  # skipped, not redone
    assert not list((out / d.name).glob(".*.tmp"))


def test_batch_splits_scenes_across_ranks(tmp_path, monkeypatch):
    from geopurify import api
    from geopurify.config import SegmentConfig

    scenes = [str(write_tiny_scannet(tmp_path, name=f"scene000{i}_00")) for i in range(3)]
    st0 = api.segment_many(scenes, tmp_path / "o", SegmentConfig(purify=False), rank=0, world_size=2)
    st1 = api.segment_many(scenes, tmp_path / "o", SegmentConfig(purify=False), rank=1, world_size=2)
    assert set(st0) == {scenes[0], scenes[2]} and set(st1) == {scenes[1]}
    assert all(v == "done" for v in {**st0, **st1}.values())
