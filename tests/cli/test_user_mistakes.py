"""Issue 13: user mistakes get exit 2 or 3 with one line, before any work; outputs never lie.

Each test asserts the exit code, the one-line message, and that the output folder is either
complete and consistent or untouched.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from _fixtures import write_tiny_scannet
from geopurify.cli import main
from geopurify.outputs import read_output


def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.startswith("geopurify:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_complete(out, n_points=1600):
    res = read_output(out)
    assert res.complete and len(res.labels) == n_points == len(res.points)
    assert res.run["status"] == "complete"
    return res


@pytest.fixture
def scene(tmp_path):
    return write_tiny_scannet(tmp_path)


@pytest.fixture
def no_lift(monkeypatch):
    """Any lifting fails loudly: the refusals under test must come before it."""
    import geopurify.lifting as lifting

    def boom(*a, **k):
        raise AssertionError("lifting started")

    monkeypatch.setattr(lifting, "lift_scene", boom)


# --------------------------------------------------------------------------- outputs that lie
def test_rerun_removes_stale_files_it_owns_and_keeps_others(scene, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["-q", "segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    # as left by an earlier purified run plus eval, render and query
    for name in ("raw_labels.txt", "eval.json", "render_top.png", "render_persp.png", "instances.json"):
        (out / name).write_text("stale")
    (out / "query").mkdir()
    (out / "query" / "chair.ply").write_text("stale")
    (out / "my_notes.txt").write_text("mine")
    assert main(["-q", "segment", str(scene), "--no-purify", "--no-features", "--out", str(out)]) == 0
    left = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert left == ["colors.npy", "labels.ply", "labels.txt", "my_notes.txt", "names.json", "points.npy", "run.json",
                    "text_embeddings.npz"]
    assert_complete(out)
    assert read_output(out).raw_labels is None  # render shows "prediction", no stale "raw fusion" panel


@pytest.mark.parametrize("where", ["equal", "inside"])
def test_out_equal_to_or_inside_the_scene_is_refused(scene, capsys, where, no_lift):
    before = snapshot(scene)
    out = scene if where == "equal" else scene / "out"
    assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 3
    assert "is the input" in err_line(capsys)
    assert snapshot(scene) == before


def test_second_concurrent_writer_is_refused(scene, tmp_path, capsys, no_lift):
    from geopurify.outputs import locked

    out = tmp_path / "o"
    with locked(out):
        assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 3
    assert "another geopurify process is writing into this folder" in err_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == [".geopurify.lock"]


def test_eval_and_render_refuse_a_killed_run_unless_allowed(scene, tmp_path, capsys, caplog):
    out = tmp_path / "o"
    assert main(["-q", "segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    (out / "run.json").unlink()  # what a kill between the files and run.json leaves
    before = snapshot(out)
    for cmd in (["eval", str(out), "--gt", str(scene)], ["render", str(out)], ["query", str(out), "wall"]):
        assert main(cmd) == 2
        line = err_line(capsys)
        assert "incomplete output" in line and "--allow-incomplete" in line
    assert snapshot(out) == before
    assert main(["eval", str(out), "--gt", str(scene), "--allow-incomplete"]) == 0
    assert "INCOMPLETE output" in caplog.text and f"-> {out / 'eval.json'}" in capsys.readouterr().out
    caplog.clear()
    assert main(["render", str(out), "--allow-incomplete"]) == 0
    assert "INCOMPLETE output" in caplog.text


def test_eval_says_it_wrote_eval_json_and_query_counts_the_selection(scene, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["-q", "segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["-q", "eval", str(out), "--gt", str(scene)]) == 0
    assert f"eval: 1 scene(s) scored -> {out / 'eval.json'}" in capsys.readouterr().out
    assert main(["-q", "query", str(out), "wall", "--top", "25"]) == 0
    assert "'wall': 25 of 1600 points selected (top 25)" in capsys.readouterr().out
    assert main(["-q", "render", str(out), "--view", "top"]) == 0
    assert f"render: wrote {out / 'render_top.png'}" in capsys.readouterr().out


# --------------------------------------------------------------------------- user mistakes
def test_classes_with_precomputed_features_is_a_config_error_before_lifting(scene, tmp_path, capsys, no_lift):
    out = tmp_path / "o"
    assert main(["segment", str(scene), "--no-purify", "--out", str(out), "--classes", "wall", "floor"]) == 3
    assert "has no text tower" in err_line(capsys)
    assert not out.exists()
    assert main(["segment", str(scene), "--no-purify", "--out", str(out), "--encoder", "precomputed",
                 "--classes", "wall"]) == 3
    assert "--classes needs an encoder with a text tower" in err_line(capsys)


def test_classes_swallowing_the_scene_is_explained(scene, tmp_path, capsys, no_lift):
    out = tmp_path / "o"
    assert main(["segment", "--no-purify", "--out", str(out), "--classes", "a", "b", str(scene)]) == 3
    line = err_line(capsys)
    assert "--classes took" in line and "put SCENE before --classes" in line
    assert main(["train", "--out", str(out), "--classes", "a", "b", str(scene)]) == 3
    assert "--classes took" in err_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("classes, message", [
    ([""], "empty class name"),
    (["chair", "Chair"], "duplicate class names: Chair"),
])
def test_empty_or_duplicate_classes_are_refused(scene, tmp_path, capsys, classes, message, no_lift):
    assert main(["segment", str(scene), "--no-purify", "--out", str(tmp_path / "o"), "--classes", *classes]) == 3
    assert message in err_line(capsys)
    assert not (tmp_path / "o").exists()


def test_cuda_on_a_cpu_build(scene, tmp_path, capsys, no_lift):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this build has CUDA")
    assert main(["segment", str(scene), "--no-purify", "--device", "cuda", "--out", str(tmp_path / "o")]) == 3
    assert "sees no CUDA GPU" in err_line(capsys)
    assert main(["segment", str(scene), "--no-purify", "--device", "gpu0", "--out", str(tmp_path / "o")]) == 3
    assert "not a device" in err_line(capsys)
    assert not (tmp_path / "o").exists()


def test_bad_memory_limit(scene, tmp_path, capsys, no_lift):
    assert main(["segment", str(scene), "--no-purify", "--memory-limit", "4X", "--out", str(tmp_path / "o")]) == 3
    assert "--memory-limit '4X': expected a size such as 4G" in err_line(capsys)


@pytest.mark.parametrize("kind", ["file", "dangling", "long", "unwritable"])
def test_bad_out_paths(scene, tmp_path, capsys, kind, no_lift, monkeypatch):
    out = tmp_path / "o"
    if kind == "file":
        out.write_text("precious")
    elif kind == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    elif kind == "long":
        out = tmp_path / ("x" * 300) / "o"
    else:
        import geopurify.outputs as outputs

        real = os.access
        monkeypatch.setattr(outputs.os, "access", lambda p, m: False if str(p) == str(tmp_path) else real(p, m))
    before = snapshot(tmp_path)
    assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 3
    line = err_line(capsys)
    assert {"file": "exists and is not a folder", "dangling": "dangling symbolic link",
            "long": "longer than 255 bytes", "unwritable": "cannot write there"}[kind] in line
    assert snapshot(tmp_path) == before


def test_eval_json_a_folder_and_synth_select_out_a_file(scene, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["-q", "segment", str(scene), "--no-purify", "--out", str(out)]) == 0
    before = snapshot(out)
    assert main(["eval", str(out), "--gt", str(scene), "--json", str(tmp_path)]) == 3
    assert "is a folder; give a file name" in err_line(capsys)
    assert snapshot(out) == before
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["synth", str(f)]) == 3
    assert "exists and is not a folder" in err_line(capsys)
    assert main(["select", str(tmp_path), "--out", str(f)]) == 3
    assert "exists and is not a folder" in err_line(capsys)
    assert f.read_text() == "x"


def test_unknown_reader_option_is_refused_like_encoder_options(scene, tmp_path, capsys):
    assert main(["segment", str(scene), "--no-purify", "--reader-opt", "camrea=freiburg2",
                 "--out", str(tmp_path / "o")]) == 3
    assert "dataset layout 'scannet' has no option camrea; it takes no options" in err_line(capsys)
    assert not (tmp_path / "o").exists()


def test_student_of_the_wrong_feature_size_before_lifting(scene, tmp_path, capsys, no_lift):
    from geopurify.student import AffinityNet, StudentConfig, save

    save(AffinityNet(StudentConfig(in_dim=16 + 6, width=8, out_dim=8, blocks=1)), tmp_path / "st.safetensors")
    assert main(["segment", str(scene), "--student", str(tmp_path / "st.safetensors"), "--out",
                 str(tmp_path / "o")]) == 3
    assert "st.safetensors expects 16-d features but this scene's are 4-d" in err_line(capsys)
    assert not (tmp_path / "o").exists()


def test_memory_estimate_uses_min_k_voxels():
    from geopurify.utils.memory import estimate_segment_bytes

    big_k = estimate_segment_bytes(1000, 8, 4, 10_000, purify=True, save_features=False, n_voxels=50)
    k49 = estimate_segment_bytes(1000, 8, 4, 49, purify=True, save_features=False, n_voxels=50)
    assert big_k == k49  # at most V - 1 neighbours exist
    assert estimate_segment_bytes(1000, 8, 4, 10_000, True, False) > 10 * big_k  # voxels unknown: N bounds it


def test_config_rerun_from_run_json(scene, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["-q", "segment", str(scene), "--no-purify", "--fusion", "mean", "--top-views", "2",
                 "--no-features", "--out", str(out)]) == 0
    first = json.loads((out / "run.json").read_text())
    labels = (out / "labels.txt").read_text()
    assert main(["-q", "segment", "--config", str(out / "run.json")]) == 0  # same scene, same folder
    again = json.loads((out / "run.json").read_text())
    assert again["config"] == first["config"] and again["scene"] == first["scene"]
    assert (out / "labels.txt").read_text() == labels
    # options given beside --config override it; bad keys in a config are refused with the accepted list
    assert main(["-q", "segment", "--config", str(out / "run.json"), "--out", str(tmp_path / "o2"),
                 "--top-views", "1"]) == 0
    assert json.loads((tmp_path / "o2" / "run.json").read_text())["config"]["lift"]["top_views"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {**first["config"], "pool": {"kk": 3}}, "scene": str(scene)}))
    assert main(["segment", "--config", str(bad), "--out", str(tmp_path / "o3")]) == 3
    assert "unknown key(s) kk; accepted: k, sharpen" in err_line(capsys)
    assert not (tmp_path / "o3").exists()


def test_invalid_values_refused_before_reading(tmp_path, capsys):
    # the scene does not exist: a config error must come first (exit 3, not 2)
    assert main(["segment", str(tmp_path / "missing"), "--no-purify", "-k", "0", "--out", str(tmp_path / "o")]) == 3
    assert "PoolConfig.k must be a positive integer, got 0" in err_line(capsys)
    assert main(["segment", str(tmp_path / "missing"), "--no-purify", "--frame-skip", "0",
                 "--out", str(tmp_path / "o")]) == 3
    assert "frame_skip must be a positive integer" in err_line(capsys)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- batches (issue 12)
def test_batch_names_collide_by_folder_name_and_are_disambiguated(tmp_path, capsys):
    a = write_tiny_scannet(tmp_path / "chess", name="seq-01")
    b = write_tiny_scannet(tmp_path / "fire", name="seq-01")
    lst = tmp_path / "scenes.txt"
    lst.write_text(f"{a}\n{b}\n")
    out = tmp_path / "out"
    assert main(["segment", "--scenes", str(lst), "--no-purify", "--out", str(out)]) == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["chess_seq-01", "fire_seq-01"]
    assert json.loads((out / "fire_seq-01" / "run.json").read_text())["scene"] == str(b)
    # same scene and config: skipped; another config: redone
    assert main(["segment", "--scenes", str(lst), "--no-purify", "--out", str(out)]) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out
    assert main(["segment", "--scenes", str(lst), "--no-purify", "--top-views", "1", "--out", str(out)]) == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    lst.write_text(f"{a}\n{a}\n")
    assert main(["segment", "--scenes", str(lst), "--no-purify", "--out", str(out)]) == 3
    assert "listed more than once" in err_line(capsys)


def test_train_takes_a_scene_list_as_segment_does(tmp_path, capsys):
    """`train --scenes LIST` was read as `--scenes-per-step LIST` (argparse's prefix match): exit 3,
    "invalid int value"; now the list's scenes are trained, as `segment --scenes` reads them."""
    a = write_tiny_scannet(tmp_path, name="scene0001_00", n_side=10)
    b = write_tiny_scannet(tmp_path, name="scene0002_00", n_side=10)
    lst = tmp_path / "scenes.txt"
    lst.write_text(f"# training rooms\n{a}\n\n{b}\n")
    out = tmp_path / "student"
    tiny = ["--steps", "1", "--anchors", "16", "--micro-pool", "8", "--micro-negatives", "4", "--width", "4",
            "--out-dim", "4", "--blocks", "1", "--device", "cpu"]
    assert main(["train", "--scenes", str(lst), "--out", str(out), *tiny]) == 0
    assert json.loads((out / "run.json").read_text())["scenes"] == [str(a), str(b)]
    assert main(["train", "--scenes", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "s2"), *tiny]) == 2
    assert "scene list not found" in err_line(capsys)
    # a scene listed twice (by another spelling of its path) would be trained on double: refused, as segment does
    assert main(["train", str(a), str(a), "--out", str(tmp_path / "s3"), *tiny]) == 3
    assert "listed more than once" in err_line(capsys) and not (tmp_path / "s3").exists()
    (tmp_path / "link").symlink_to(a)
    assert main(["train", str(a), str(tmp_path / "link"), "--out", str(tmp_path / "s4"), *tiny]) == 3
    assert "are the same scene" in err_line(capsys)


def test_batch_failure_names_scene_and_reason_and_others_finish(tmp_path, capsys):
    good = write_tiny_scannet(tmp_path, name="scene0001_00")
    bad = write_tiny_scannet(tmp_path, name="scene0002_00")
    (bad / "text_embeddings.npz").write_bytes(b"garbage")
    lst = tmp_path / "scenes.txt"
    lst.write_text(f"{bad}\n{good}\n")
    out = tmp_path / "out"
    assert main(["segment", "--scenes", str(lst), "--no-purify", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    assert f"{bad}: failed:" in cap.err and "text_embeddings.npz" in cap.err
    assert "1 done, 0 skipped (complete, same scene and config), 1 failed" in cap.out
    assert_complete(out / good.name)
    assert not (out / bad.name / "run.json").exists()


def test_batch_sharding_is_the_same_on_every_rank(tmp_path):
    from geopurify import api
    from geopurify.config import SegmentConfig

    scenes = [str(write_tiny_scannet(tmp_path, name=f"scene000{i}_00", n_side=10)) for i in range(3)]
    got = [api.segment_many(scenes, tmp_path / "o", SegmentConfig(purify=False), rank=r, world_size=2)
           for r in range(2)]
    assert [list(g) for g in got] == [[scenes[0], scenes[2]], [scenes[1]]]
    assert np.all([(tmp_path / "o" / f"scene000{i}_00" / "run.json").is_file() for i in range(3)])
