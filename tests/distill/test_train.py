"""Training: the loss falls on a scene with known structure; checkpoints, resume and rejection."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from geopurify.distill import lr_at, step_scenes, train
from geopurify.errors import ConfigError, InputError
from geopurify.student import load

from ._scenes import tiny_config, two_planes

train_mod = importlib.import_module("geopurify.distill.train")


def _cos_stats(model, scene, label):
    with torch.no_grad():
        e = model(torch.as_tensor(scene.coords).long(), torch.as_tensor(scene.inputs))
    sim = (e @ e.T).numpy()
    same = label[:, None] == label[None]
    return sim[same].mean(), sim[~same].mean()


def test_loss_falls_and_student_separates_the_planes(tmp_path):
    scene, label = two_planes()
    cfg = tiny_config(steps=30)
    torch.manual_seed(cfg.seed)
    model = train([scene], cfg, out_dir=tmp_path)
    log = json.loads((tmp_path / "train_log.json").read_text())
    losses = log["losses"]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
    within, across = _cos_stats(model, scene, label)
    assert within - across > 0.5, (within, across)
    # the saved student is the returned one
    back = load(tmp_path / "student.safetensors")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v)


def test_schedule_and_step_scenes():
    cfg = tiny_config(steps=10, warmup=2, lr=1.0)
    assert lr_at(0, cfg) == 0.5 and lr_at(1, cfg) == 1.0
    assert lr_at(2, cfg) == pytest.approx(1.0) and lr_at(6, cfg) == pytest.approx(0.5)
    assert lr_at(9, cfg) < 0.05
    assert step_scenes(0, 3, cfg) == [0, 1, 2]
    sub = tiny_config(scenes_per_step=2)
    assert len(step_scenes(5, 4, sub)) == 2 and step_scenes(5, 4, sub) == step_scenes(5, 4, sub)


def test_resume_continues_from_saved_step_and_matches_uninterrupted(tmp_path, monkeypatch):
    scene, _ = two_planes(n=8)
    cfg = tiny_config(steps=6, checkpoint_every=3)
    full = train([scene], cfg, out_dir=tmp_path / "full")

    real_save = train_mod._save_checkpoint

    def save_then_crash(path, model, opt, step, config, losses, *context):
        real_save(path, model, opt, step, config, losses, *context)
        if step == 3:
            raise KeyboardInterrupt("simulated kill after the step-3 checkpoint")

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train([scene], cfg, out_dir=tmp_path / "cut")
    monkeypatch.setattr(train_mod, "_save_checkpoint", real_save)
    ck = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 3 and len(ck["losses"]) == 3
    assert not (tmp_path / "cut" / "student.safetensors").exists()

    resumed = train([scene], cfg, out_dir=tmp_path / "cut")
    log = json.loads((tmp_path / "cut" / "train_log.json").read_text())
    assert log["resumed_from"] == 3 and len(log["losses"]) == 6
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    # resume=False restarts from scratch (same result, since everything is seeded)
    again = train([scene], cfg, out_dir=tmp_path / "cut", resume=False)
    assert json.loads((tmp_path / "cut" / "train_log.json").read_text())["resumed_from"] == 0
    for k, v in full.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_ctrl_c_between_checkpoints_keeps_the_steps_taken(tmp_path, monkeypatch):
    """Ctrl-C at step 5 of a run that checkpoints every 20 steps used to leave nothing in --out (the
    steps were lost); now a checkpoint of the 4 finished steps is written and the rerun resumes there,
    ending where an uninterrupted run ends."""
    scene, _ = two_planes(n=8)
    cfg = tiny_config(steps=8, checkpoint_every=20)
    full = train([scene], cfg, out_dir=tmp_path / "full")

    real_nce, calls = train_mod.info_nce, []

    def nce_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # inside step 5's forward pass
            raise KeyboardInterrupt
        return real_nce(*args, **kwargs)

    monkeypatch.setattr(train_mod, "info_nce", nce_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train([scene], cfg, out_dir=tmp_path / "cut")
    monkeypatch.setattr(train_mod, "info_nce", real_nce)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["checkpoint.pt"]  # no temporary file
    ck = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 4 and len(ck["losses"]) == 4

    resumed = train([scene], cfg, out_dir=tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "train_log.json").read_text())["resumed_from"] == 4
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_ctrl_c_under_no_resume_says_how_to_resume(tmp_path, monkeypatch, caplog):
    """A run started with --no-resume (resume=False) and interrupted told the user to 'rerun the same
    command to resume'; that command ignores the checkpoint and starts again at step 0."""
    import logging

    scene, _ = two_planes(n=8)
    cfg = tiny_config(steps=8, checkpoint_every=20)
    real_nce, calls = train_mod.info_nce, []

    def nce_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_nce(*args, **kwargs)

    for resume, says, not_says in [(True, "rerun the same command", "--no-resume"),
                                   (False, "without --no-resume", "the same command")]:
        calls.clear()
        caplog.clear()
        monkeypatch.setattr(train_mod, "info_nce", nce_then_ctrl_c)
        with caplog.at_level(logging.WARNING, logger="geopurify.distill.train"), pytest.raises(KeyboardInterrupt):
            train([scene], cfg, out_dir=tmp_path / f"cut{resume}", resume=resume)
        monkeypatch.setattr(train_mod, "info_nce", real_nce)
        line = " ".join(r.getMessage() for r in caplog.records if "interrupted after step 2" in r.getMessage())
        assert says in line and not_says not in line, (resume, line)
        if not resume:  # what the message says to do resumes there
            train([scene], cfg, out_dir=tmp_path / f"cut{resume}", resume=True)
            log = json.loads((tmp_path / f"cut{resume}" / "train_log.json").read_text())
            assert log["resumed_from"] == 2


def test_bad_checkpoints_rejected(tmp_path):
    scene, _ = two_planes(n=6)
    cfg = tiny_config(steps=2)
    out = tmp_path / "run"
    train([scene], cfg, out_dir=out)
    ck = out / "checkpoint.pt"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="checkpoint.pt"):
        train([scene], cfg, out_dir=out)
    torch.save({"step": 1}, ck)
    with pytest.raises(InputError, match="not a geopurify training checkpoint"):
        train([scene], cfg, out_dir=out)
    train([scene], cfg, out_dir=out, resume=False)
    with pytest.raises(ConfigError, match="checkpoint.pt.*differs"):
        train([scene], tiny_config(steps=2, width=4), out_dir=out)


def test_bad_scenes_rejected():
    scene, _ = two_planes(n=4)
    with pytest.raises(InputError, match="no scenes"):
        train([], tiny_config())
    other, _ = two_planes(n=4)
    other.inputs = np.zeros((len(other.coords), 3), np.float32)
    with pytest.raises(InputError, match="different input widths"):
        train([scene, other], tiny_config(steps=1))
    from geopurify.distill import TrainScene

    with pytest.raises(InputError, match="teacher has shape"):
        TrainScene("x", scene.coords, scene.centers, scene.inputs, scene.teacher[:5])


def test_build_train_scene_from_a_scene():
    from geopurify.distill import build_train_scene
    from geopurify.io.scene import Scene
    from geopurify.teachers import build_teacher

    rng = np.random.default_rng(0)
    # 3 points in voxel 0 and one in voxel 1 (2 cm voxels)
    pts = np.array([[0.001, 0, 0], [0.002, 0, 0], [0.003, 0.001, 0], [0.1, 0, 0]] * 3, np.float32)
    pts[4:] += rng.uniform(0.2, 1.0, (8, 3)).astype(np.float32)
    colors = rng.uniform(0, 1, (12, 3)).astype(np.float32)
    normals = np.tile([[0, 0, 1.0]], (12, 1)).astype(np.float32)
    scene = Scene("s", pts, colors, normals=normals)
    lifted = rng.standard_normal((12, 4)).astype(np.float32)
    ts = build_train_scene(scene, lifted, build_teacher("geometric", variant="descriptor", k=4))
    v = ts.num_voxels
    assert ts.inputs.shape == (v, 4 + 6) and ts.teacher.shape == (v, 10) and ts.coords.dtype == np.int32
    # voxel 0 input: unit mean of the 3 lifted rows, 2*mean colour - 1, normal
    mean = lifted[:3].mean(0)
    row = int(np.flatnonzero((ts.coords == ts.coords[np.argmin(ts.centers.sum(1))]).all(1))[0])
    np.testing.assert_allclose(ts.inputs[row, :4], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(ts.inputs[row, 4:7], 2 * colors[:3].mean(0) - 1, atol=1e-5)
    np.testing.assert_allclose(ts.inputs[row, 7:], [0, 0, 1], atol=1e-6)
    with pytest.raises(InputError, match="lifted features"):
        build_train_scene(scene, lifted[:5])


def test_crops_are_squares_around_a_site_and_training_on_them_separates_the_planes(monkeypatch):
    from geopurify.distill.sampler import crop_sites

    calls = []
    monkeypatch.setattr(train_mod, "crop_sites", lambda *a, **k: calls.append(1) or crop_sites(*a, **k))

    scene, label = two_planes()
    g = torch.Generator().manual_seed(0)
    sel = crop_sites(scene.centers, 0.1, g, min_sites=1)
    c = scene.centers[sel]
    assert 0 < len(sel) < scene.num_voxels and np.all(np.ptp(c[:, :2], axis=0) <= 0.1 + 1e-6)
    assert np.array_equal(np.sort(sel), sel)
    # a crop with fewer sites than min_sites falls back to the whole scene
    assert len(crop_sites(scene.centers, 1e-4, g, min_sites=10)) == scene.num_voxels
    with pytest.raises(ConfigError):
        tiny_config(crop=-1.0)
    train([scene], tiny_config(steps=2, crop=0.16))  # a small scene (<= crop_above voxels) trains whole
    assert not calls
    model = train([scene], tiny_config(steps=30, crop=0.16, crop_above=0))
    assert len(calls) == 30
    within, across = _cos_stats(model, scene, label)
    assert within - across > 0.5, (within, across)


def test_anchor_spread_superpoint_draws_from_the_teacher_segments(monkeypatch):
    from geopurify.distill import TrainScene, build_train_scene, sampler
    from geopurify.io.scene import Scene
    from geopurify.teachers import build_teacher

    scene, label = two_planes(n=8)
    with pytest.raises(ConfigError, match="anchor_spread"):
        tiny_config(anchor_spread="nope")
    with pytest.raises(ConfigError, match="segments"):  # before any step: the scene carries none
        train([scene], tiny_config(steps=1, anchor_spread="superpoint"))
    with pytest.raises(InputError, match="segments"):
        TrainScene("x", scene.coords, scene.centers, scene.inputs, scene.teacher, label[:5])
    seen = []
    real = sampler.draw_anchors
    monkeypatch.setattr(sampler, "draw_anchors", lambda *a: seen.append(a[3]) or real(*a))
    scene.segments = label
    for crop in (0.0, 0.1):  # whole scenes (the precomputed table) and crops
        seen.clear()
        train([scene], tiny_config(steps=2, crop=crop, crop_above=0, anchor_spread="superpoint"))
        assert len(seen) == 2 and all(s is not None and set(s.tolist()) <= {0, 1} for s in seen)
    seen.clear()
    train([scene], tiny_config(steps=1))  # uniform (the default) ignores the segments
    assert seen == [None]
    # build_train_scene hands the teacher's segments on
    up = np.tile([[0, 0, 1.0]], (len(label), 1))
    s = Scene("s", scene.centers, np.full((len(label), 3), 0.5, np.float32), normals=up)
    ts = build_train_scene(s, scene.inputs, build_teacher("geometric", variant="combined", k=4))
    assert ts.segments is not None and ts.segments.shape == (ts.num_voxels,)
    assert build_train_scene(s, scene.inputs, build_teacher("geometric", variant="descriptor", k=4)).segments is None


def test_local_weight_mixes_the_local_affinity_loss_in(monkeypatch):
    scene, _ = two_planes(n=8)
    with pytest.raises(ConfigError, match="local_weight"):
        tiny_config(local_weight=1.5)
    calls = {"nce": 0, "local": 0}
    real_nce, real_local = train_mod.info_nce, train_mod.local_affinity_loss
    monkeypatch.setattr(train_mod, "info_nce", lambda *a: calls.__setitem__("nce", calls["nce"] + 1) or real_nce(*a))
    monkeypatch.setattr(train_mod, "local_affinity_loss",
                        lambda *a: calls.__setitem__("local", calls["local"] + 1) or real_local(*a))  # fmt: skip
    for w, crop, expect in ((0.0, 0.0, (3, 0)), (0.5, 0.0, (3, 3)), (1.0, 0.1, (0, 3))):  # crops too
        calls.update(nce=0, local=0)
        m = train([scene], tiny_config(steps=3, local_weight=w, crop=crop, crop_above=0))
        assert (calls["nce"], calls["local"]) == expect, w
        assert np.isfinite(m.embed(scene.coords, scene.inputs)).all()


@pytest.mark.parametrize("field,value", [("lr", float("inf")), ("temperature", float("inf")), ("lr", float("nan")),
                                         ("voxel_size", -1.0), ("voxel_size", float("nan")),
                                         ("weight_decay", float("nan")), ("weight_decay", -1.0),
                                         ("warmup", -1), ("checkpoint_every", -1), ("scenes_per_step", -1)])
def test_config_refuses_values_that_train_nonsense(field, value):
    with pytest.raises(ConfigError, match=field):
        tiny_config(**{field: value})


def test_a_diverging_run_stops_and_saves_no_student(tmp_path):
    scene, _ = two_planes(n=6)
    with pytest.raises(ConfigError, match="diverged.*lower --lr"):
        train([scene], tiny_config(steps=6, lr=1e9, warmup=0), out_dir=tmp_path)
    assert not (tmp_path / "student.safetensors").exists()


def test_checkpoint_of_other_settings_or_scenes_is_not_resumed(tmp_path):
    """A rerun into a finished run's folder with another lr, other scenes or the teacher changed used
    to 'resume' at the last step, train 0 steps and label the old student with the new settings."""
    scene, _ = two_planes(n=6)
    cfg = tiny_config(steps=2)
    out = tmp_path / "run"
    train([scene], cfg, out_dir=out, context={"teacher": "geometric"})
    with pytest.raises(ConfigError, match=r"different settings \(lr: "):
        train([scene], tiny_config(steps=2, lr=cfg.lr / 2), out_dir=out, context={"teacher": "geometric"})
    other, _ = two_planes(n=6, name="another_room")
    with pytest.raises(ConfigError, match="different settings.*scenes"):
        train([other], cfg, out_dir=out, context={"teacher": "geometric"})
    with pytest.raises(ConfigError, match="different settings.*teacher: 'geometric' then, 'sonata' now"):
        train([scene], cfg, out_dir=out, context={"teacher": "sonata"})
    with pytest.raises(ConfigError, match="at step 2, past this run's steps=1"):
        train([scene], tiny_config(steps=1), out_dir=out, context={"teacher": "geometric"})
    # a longer run of the same settings continues; reporting settings may change
    train([scene], tiny_config(steps=3, log_every=1), out_dir=out, context={"teacher": "geometric"})
    assert json.loads((out / "train_log.json").read_text())["resumed_from"] == 2


def test_interrupted_train_folder_as_student_says_how_to_finish(tmp_path, monkeypatch):
    """segment --student DIR of a train run cut short (checkpoint.pt, no student.safetensors) used to say
    only 'folder has no student.safetensors'; it says training did not finish, the checkpoint's step, how
    to resume, and that the checkpoint.pt itself loads."""
    scene, _ = two_planes(n=8)
    cfg = tiny_config(steps=6, checkpoint_every=3)
    real_save = train_mod._save_checkpoint

    def save_then_crash(path, model, opt, step, *rest):
        real_save(path, model, opt, step, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train([scene], cfg, out_dir=tmp_path / "cut")
    with pytest.raises(InputError) as info:
        load(tmp_path / "cut")
    msg = str(info.value)
    assert "training did not finish" in msg and "step 3 of 6" in msg, msg
    assert "rerun the same `geopurify train` command" in msg and str(tmp_path / "cut" / "checkpoint.pt") in msg
    assert load(tmp_path / "cut" / "checkpoint.pt").config.in_dim == scene.inputs.shape[1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder has no student.safetensors$"):
        load(tmp_path / "empty")
