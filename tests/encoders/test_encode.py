"""`geopurify encode`: documented format, resume after a kill, atomic files, and segment reading it back."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from geopurify.cli import main
from geopurify.encoders import ENCODERS, Encoder, FeatureMap
from geopurify.encoders.encode import EncodeConfig, EncodedFeatures, encode_scene, read_manifest, scene_encoder
from geopurify.encoders.precomputed import read_feature_file
from geopurify.errors import ConfigError, FrameError, InputError
from geopurify.io import read_scene

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _fixtures import write_tiny_scannet  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
NAMES = {"wall": 0, "floor": 1}


class HalfEncoder(Encoder):
    """Dense (h, w, 4): e0 left of the centre, e1 right; a text tower over NAMES. Counts frames encoded."""

    name = "half"

    def __init__(self, device: str = "auto", scale: float = 1.0) -> None:
        self.device, self.scale, self.frames = device, scale, []

    def cache_key(self) -> str:
        return f"half-{self.scale}"

    def encode(self, frame) -> FeatureMap:
        img = frame.color()
        self.frames.append(frame.frame_id)
        h, w = img.shape[0] // 4, img.shape[1] // 4
        feat = np.zeros((h, w, 4), np.float32)
        feat[:, : w // 2, 0] = self.scale
        feat[:, w // 2 :, 1] = self.scale
        return FeatureMap(dense=feat)

    def encode_text(self, prompts):
        return np.eye(4, dtype=np.float32)[[NAMES[p] for p in prompts]]


@pytest.fixture
def half(monkeypatch):
    made = []

    def factory(scene=None, device="auto", scale=1.0):
        made.append(HalfEncoder(device, scale))
        return made[-1]

    monkeypatch.setitem(ENCODERS._items, "half", factory)
    return made


@pytest.fixture
def scene_dir(tmp_path):
    d = write_tiny_scannet(tmp_path, frames=5)
    for p in (d / "features_2d").iterdir():  # start without precomputed features
        p.unlink()
    (d / "features_2d").rmdir()
    return d


def test_encode_writes_the_documented_format_and_resumes(half, scene_dir):
    scene = read_scene(scene_dir)
    cfg = EncodeConfig(encoder="half", classes=["wall", "floor"], batch_size=2)
    res = encode_scene(scene, cfg)
    out = scene_dir / "features_2d"
    assert res.out_dir == out and res.written == 5 and res.reused == 0 and not res.failed
    for f in scene.frames:
        with np.load(out / f"{f.frame_id}.npz") as z:
            assert z.files == ["feat"] and z["feat"].dtype == np.float16 and z["feat"].shape == (30, 40, 4)
    man = read_manifest(out)
    assert man["status"] == "complete" and man["encoder"] == "half" and man["key"] == "half-1.0"
    assert man["frames"] == 5 and man["dim"] == 4 and half[0].device == "auto"
    with np.load(out / "text_embeddings.npz") as z:
        assert list(z["names"]) == ["wall", "floor"] and z["embeddings"].shape == (2, 4)
    # rerun: nothing to do; a deleted and a truncated file are redone, the rest kept
    assert encode_scene(scene, cfg).written == 0
    (out / "0.npz").unlink()
    (out / "3.npz").write_bytes((out / "3.npz").read_bytes()[:50])
    res = encode_scene(scene, cfg)
    assert res.written == 2 and res.reused == 3 and sorted(half[-1].frames) == ["0", "3"]
    # the features read back by `precomputed`
    assert read_feature_file(out / "3.npz").dense.shape == (30, 40, 4)


def test_encode_refuses_to_mix_encoders(half, scene_dir):
    scene = read_scene(scene_dir)
    encode_scene(scene, EncodeConfig(encoder="half"))
    with pytest.raises(ConfigError, match="--overwrite"):  # same encoder, other options
        encode_scene(scene, EncodeConfig(encoder="half", encoder_options={"scale": 2.0}))
    res = encode_scene(scene, EncodeConfig(encoder="half", encoder_options={"scale": 2.0}, overwrite=True))
    assert res.written == 5 and read_manifest(res.out_dir)["key"] == "half-2.0"
    hand = write_tiny_scannet(scene_dir.parent / "other", frames=2)  # features_2d/ written by hand
    with pytest.raises(ConfigError, match="not written by `geopurify encode`"):
        encode_scene(read_scene(hand), EncodeConfig(encoder="half"))


def test_bad_frame_is_skipped_and_counted(half, scene_dir):
    scene = read_scene(scene_dir)

    def broken():
        raise FrameError("truncated jpeg", reason="bad_color")

    scene.frames[2].load_color = broken
    res = encode_scene(scene, EncodeConfig(encoder="half", batch_size=4))
    assert res.written == 4 and res.failed == {"bad_color": 1}
    assert not (res.out_dir / "2.npz").exists() and read_manifest(res.out_dir)["failed"] == {"bad_color": 1}


def test_every_frame_bad_or_no_frames_is_bad_input(half, scene_dir, tmp_path, capsys):
    scene = read_scene(scene_dir)

    def broken():
        raise FrameError("truncated jpeg", reason="bad_color")

    for f in scene.frames:
        f.load_color = broken
    with pytest.raises(InputError, match="no frame could be encoded"):
        encode_scene(scene, EncodeConfig(encoder="half"))
    scene.frames = []
    with pytest.raises(InputError, match="no colour frames"):
        encode_scene(scene, EncodeConfig(encoder="half"))
    (tmp_path / "file").write_text("x")
    assert main(["encode", str(scene_dir), "--encoder", "half", "--out", str(tmp_path / "file")]) == 3
    assert "not a folder" in capsys.readouterr().err


def test_cli_encode_and_bad_options(half, scene_dir, capsys):
    assert main(["encode", str(scene_dir), "--encoder", "half", "--device", "cpu"]) == 0
    assert "5 frames encoded" in capsys.readouterr().out and half[0].device == "cpu"
    assert main(["encode", str(scene_dir), "--encoder", "precomputed"]) == 3
    assert main(["encode", str(scene_dir), "--encoder", "nope"]) == 3
    assert main(["encode", str(scene_dir), "--encoder", "half", "--batch-size", "0"]) == 3


def test_segment_reads_encoded_features_without_the_model(half, scene_dir, tmp_path, monkeypatch):
    scene = read_scene(scene_dir)
    encode_scene(scene, EncodeConfig(encoder="half", classes=["wall", "floor"]))
    monkeypatch.delitem(ENCODERS._items, "half")  # a laptop without the model
    enc = scene_encoder(scene, "half", {})
    assert isinstance(enc, EncodedFeatures) and enc.model is None
    np.testing.assert_array_equal(enc.encode(scene.frames[1]).dense[0, 0], np.float16([1, 0, 0, 0]))
    np.testing.assert_allclose(enc.encode_text(["floor"]), [[0, 1, 0, 0]])
    with pytest.raises(ConfigError, match="no embedding for sofa"):
        enc.encode_text(["sofa"])
    out = tmp_path / "seg"
    args = ["segment", str(scene_dir), "--no-purify", "--encoder", "half", "--classes", "wall", "floor"]
    assert main([*args, "--out", str(out)]) == 0
    labels = np.loadtxt(out / "labels.txt", dtype=int)
    assert json.loads((out / "names.json").read_text()) == ["wall", "floor"]
    x = scene.points[:, 0]
    assert (labels[x < -0.1] == 0).mean() > 0.9 and (labels[x > 0.1] == 1).mean() > 0.9


def test_an_unfinished_encode_read_without_the_model_is_said_to_be_unfinished(half, scene_dir, monkeypatch, caplog):
    """A stopped `encode` left status 'partial'; read without the model, only per-frame skips were logged."""
    import logging

    scene = read_scene(scene_dir)
    encode_scene(scene, EncodeConfig(encoder="half", classes=["wall", "floor"]))
    monkeypatch.delitem(ENCODERS._items, "half")
    with caplog.at_level(logging.WARNING):
        scene_encoder(scene, "half", {})
    assert "unfinished" not in caplog.text  # a complete encode: no word
    manifest = scene_dir / "features_2d" / "encoder.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "partial"}))
    with caplog.at_level(logging.WARNING):
        scene_encoder(scene, "half", {})
    assert "is an unfinished `geopurify encode` (status 'partial')" in caplog.text


def test_segment_with_the_model_fills_missing_frames_into_the_same_folder(half, scene_dir):
    scene = read_scene(scene_dir)
    encode_scene(scene, EncodeConfig(encoder="half"))
    (scene_dir / "features_2d" / "4.npz").unlink()
    enc = scene_encoder(scene, "half", {})
    assert isinstance(enc, EncodedFeatures) and enc.model is not None
    enc.encode(scene.frames[4])
    enc.encode(scene.frames[0])
    assert half[-1].frames == ["4"] and (scene_dir / "features_2d" / "4.npz").is_file()


SLOW_RUNNER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from geopurify.cli import main
    from geopurify.encoders import ENCODERS, Encoder, FeatureMap

    class Slow(Encoder):
        name = "slow"
        def __init__(self, device="auto"):
            pass
        def cache_key(self):
            return "slow-v1"
        def encode(self, frame):
            rng = np.random.default_rng(int(frame.frame_id))
            return FeatureMap(dense=rng.normal(size=(60, 80, 64)).astype(np.float32))

    if __name__ == "__main__":
        savez = np.savez
        def slow_savez(f, **arrays):  # a slow disk: the kill lands while a file is being written
            savez(f, **arrays)
            time.sleep(0.5)
        np.savez = slow_savez
        ENCODERS.register("slow")(Slow)
        sys.exit(main(sys.argv[1:]))
    """
)


def test_encode_resumes_after_sigkill(tmp_path, monkeypatch, capsys):
    """SIGKILL a real `geopurify encode` while it writes a file, rerun it: every frame once, nothing partial."""
    scene_dir = write_tiny_scannet(tmp_path, frames=16, labels=False)
    out = tmp_path / "feats"
    runner = tmp_path / "runner.py"
    runner.write_text(SLOW_RUNNER)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(runner), "encode", str(scene_dir), "--encoder", "slow", "--out", str(out),
           "--batch-size", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while time.time() < deadline:
        if len(list(out.glob("[0-9]*.npz"))) >= 3 and list(out.glob(".*.npz.*.tmp")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    first = sorted(out.glob("[0-9]*.npz"))
    assert 3 <= len(first) < 16, "the kill should land mid-run"
    assert list(out.glob(".*.npz.*.tmp")), "the kill should land inside a write"
    for p in first:  # whatever carries a final name is complete
        assert read_feature_file(p).dense.shape == (60, 80, 64)
    assert read_manifest(out)["status"] == "partial"
    mtimes = {p.name: p.stat().st_mtime_ns for p in first}
    # rerun the same command (in this process, with the same encoder and a normal disk, to save a start-up)
    namespace = {}
    exec(SLOW_RUNNER, namespace)
    monkeypatch.setitem(ENCODERS._items, "slow", namespace["Slow"])
    assert main(cmd[2:]) == 0
    assert f"{16 - len(first)} frames encoded, {len(first)} already there" in capsys.readouterr().out
    files = sorted(out.glob("*.npz"))
    assert sorted(p.stem for p in files) == sorted(str(i) for i in range(16))
    assert not list(out.glob(".*")), "temporary files left behind"
    for p in files:
        fmap = read_feature_file(p)
        expect = np.random.default_rng(int(p.stem)).normal(size=(60, 80, 64)).astype(np.float32).astype(np.float16)
        np.testing.assert_array_equal(fmap.dense, expect)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in mtimes.items())  # not redone
    assert read_manifest(out)["status"] == "complete"


def test_real_7scenes_frames_encode_to_a_separate_folder_and_segment(half, seven_scenes, tmp_path):
    """Real frames (read-only shared folder): encode --out DIR, then segment --encoder-opt features=DIR."""
    feats = tmp_path / "f2d"
    common = ["--max-frames", "3", "--layout", "7scenes"]
    argv = ["encode", str(seven_scenes), "--encoder", "half", "--out", str(feats), "--classes", "wall", "floor"]
    assert main([*argv, *common]) == 0
    ids = sorted(p.stem for p in feats.glob("*.npz") if p.stem != "text_embeddings")
    assert len(ids) == 3 and read_feature_file(feats / f"{ids[0]}.npz").dense.shape == (120, 160, 4)
    out = tmp_path / "seg"
    assert main(["segment", str(seven_scenes), "--no-purify", "--out", str(out), "--encoder", "half",
                 "--encoder-opt", f"features={feats}", *common]) == 0
    assert json.loads((out / "names.json").read_text()) == ["wall", "floor"]  # the encoded classes
    assert main(["segment", str(seven_scenes), "--no-purify", "--out", str(tmp_path / "x"), "--encoder", "clip",
                 "--encoder-opt", f"features={feats}", *common]) == 3  # written by another encoder


def test_features_from_another_folder_never_take_the_scene_folders_class_text(half, scene_dir, tmp_path, capsys):
    """features=DIR of an unfinished encode (or one without --classes) has no text_embeddings.npz: segment
    used to label with the scene folder's class text, whatever encoder that came from."""
    other = {"names": np.array(["chair", "table"]), "embeddings": np.eye(4, dtype=np.float32)[:2]}
    np.savez(scene_dir / "text_embeddings.npz", **other)  # same width as the features, another model's
    feats = tmp_path / "f2d"
    assert main(["encode", str(scene_dir), "--encoder", "half", "--out", str(feats)]) == 0  # no --classes
    out = tmp_path / "seg"
    argv = ["segment", str(scene_dir), "--no-purify", "--encoder", "half", "--encoder-opt", f"features={feats}"]
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 3
    assert f"no text_embeddings.npz in {feats}" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--classes", "wall", "floor", "--out", str(out)]) == 0  # the encoder's text tower
    assert json.loads((out / "names.json").read_text()) == ["wall", "floor"]


def test_a_scan_without_frames_or_point_features_is_told_what_to_do(half):
    """A Pointcept scan (no frames): segment advised `--encoder clip`, which then loaded the model and
    stopped at 'no camera frames'; now one line, before any model, pointing at synth --from-scan."""
    from geopurify.encoders.scene import encoder_for_scene
    from geopurify.io.scene import Scene

    pts = np.zeros((10, 3), np.float32)
    scan = Scene(name="scan", points=pts, colors=pts.copy())
    for name in ("auto", "half"):
        with pytest.raises(InputError, match="no camera frames and no per-point 2D features.*synth --from-scan"):
            encoder_for_scene(scan, name)
    assert not half  # no model was built
