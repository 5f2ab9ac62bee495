"""The clip encoder on a tiny randomly initialised CLIP saved to disk (no download, no real weights)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from geopurify.encoders import CachedEncoder, build_encoder  # noqa: E402
from geopurify.encoders.clip import ClipEncoder, resolve_weights  # noqa: E402
from geopurify.errors import ConfigError  # noqa: E402


def frame(fid, hw=(40, 56)):
    rng = np.random.default_rng(int(fid))
    img = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    return SimpleNamespace(frame_id=str(fid), color=lambda: img)


def test_dense_features_shapes_and_text(clip_dir, tmp_path):
    enc = build_encoder("clip", scene=None, weights=str(clip_dir), device="cpu", output_stride=4)
    maps = enc.encode_batch([frame(0), frame(1, (33, 47))])
    assert maps[0].dense.shape == (10, 14, 24) and maps[0].dense.dtype == np.float16
    assert maps[1].dense.shape == (9, 12, 24)
    np.testing.assert_allclose(np.linalg.norm(maps[0].dense.astype(np.float32), axis=-1), 1.0, atol=2e-3)
    assert not np.allclose(maps[0].dense[0, 0], maps[0].dense[-1, -1], atol=1e-3)  # spatially varying
    text = enc.encode_text(["chair", "table", "wall"])
    assert text.shape == (3, maps[0].dim) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    ens = ClipEncoder(weights=clip_dir, device="cpu", prompt_ensemble=True).encode_text(["chair"])
    assert ens.shape == (1, 24) and not np.allclose(ens, text[:1])


def test_standard_blocks_reproduce_transformers(clip_dir):
    """Our block maths equals transformers' encoder; so only the last block is changed on purpose."""
    enc = ClipEncoder(weights=clip_dir, device="cpu")
    vm = enc.model.vision_model
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = vm(pixel_values=x).last_hidden_state
        h = vm.pre_layrnorm(vm.embeddings(x))
        for layer in vm.encoder.layers:
            h = enc._block(layer, h)
    torch.testing.assert_close(h, ref, rtol=1e-4, atol=1e-5)
    # value path of the last block: projection of out_proj(v_proj(ln1(h))) for each patch
    with torch.no_grad():
        h = vm.pre_layrnorm(vm.embeddings(x))
        h = enc._block(vm.encoder.layers[0], h)
        last = vm.encoder.layers[1]
        manual = enc.model.visual_projection(
            vm.post_layernorm(last.self_attn.out_proj(last.self_attn.v_proj(last.layer_norm1(h)))[:, 1:])
        )
        manual = torch.nn.functional.normalize(manual, dim=-1).view(2, 4, 4, -1)
        torch.testing.assert_close(enc._forward_windows(x), manual, rtol=1e-4, atol=1e-5)


def test_single_window_image_equals_window_forward(clip_dir):
    """A 32x32 image with short_side 32 is one window: the map is its patch grid upsampled."""
    enc = ClipEncoder(weights=clip_dir, device="cpu", short_side=32, output_stride=8)
    f = frame(3, (32, 32))
    dense = enc.encode(f).dense.astype(np.float32)  # (4, 4, D): same size as the patch grid
    x = torch.from_numpy(f.color()).permute(2, 0, 1)[None].float() / 255.0
    x = (x - enc.mean) / enc.std
    with torch.no_grad():
        ref = enc._forward_windows(x)[0].numpy()
    np.testing.assert_allclose(dense, ref, atol=2e-3)


def test_cache_hit_on_second_run(clip_dir, tmp_path):
    scene = SimpleNamespace(name="scene0", root=tmp_path)
    frames = [frame(i) for i in range(3)]
    a = build_encoder("clip", scene=scene, weights=str(clip_dir), device="cpu", cache_dir=tmp_path / "c")
    assert isinstance(a, CachedEncoder)
    calls = []
    orig = a.inner._forward_windows
    a.inner._forward_windows = lambda x: calls.append(len(x)) or orig(x)
    first = a.encode_batch(frames)
    # 40x56 -> 64x88 (short side 64, multiples of the 8 px patch); 32 px windows, stride 16:
    # rows 0,16,32 x cols 0,16,32,48,56 = 15 windows per frame
    assert sum(calls) == 3 * 15
    b = build_encoder("clip", scene=scene, weights=str(clip_dir), device="cpu", cache_dir=tmp_path / "c")
    b.inner._forward_windows = lambda x: pytest.fail("model called on a cached frame")
    second = b.encode_batch(frames)
    assert b.hits == 3
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x.dense, y.dense)
    # other options -> other key -> recomputed
    c = build_encoder(
        "clip", scene=scene, weights=str(clip_dir), device="cpu", cache_dir=tmp_path / "c", attention="self_self"
    )
    assert c.cache_key() != b.cache_key()


def test_missing_weights_error_says_what_to_pass(tmp_path):
    with pytest.raises(ConfigError, match="pass --weights PATH") as e:
        build_encoder("clip")
    assert "config.json" in str(e.value) and "model.safetensors" in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        build_encoder("clip", weights=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        build_encoder("clip", weights=str(tmp_path / "empty"))
    (tmp_path / "cfgonly").mkdir()
    (tmp_path / "cfgonly" / "config.json").write_text(json.dumps({}))
    with pytest.raises(ConfigError, match="no model.safetensors"):
        build_encoder("clip", weights=str(tmp_path / "cfgonly"))


def test_wrong_weight_files_are_refused_with_one_line(clip_dir, tmp_path):
    """A truncated model.safetensors or a code-running pytorch_model.bin ended in an internal error
    (exit 1); another model's safetensors loaded with CLIP's tensors initialised at random, and a folder
    without tokenizer files gave a two-token tokenizer (every class the same prompt): both silently.
    Now each is a ConfigError (exit 3) naming the folder."""
    import os
    import shutil

    from safetensors.torch import save_file

    def copy(name, drop=()):
        d = tmp_path / name
        shutil.copytree(clip_dir, d)
        for n in drop:
            (d / n).unlink()
        return d

    cut = copy("cut")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[:1000])
    with pytest.raises(ConfigError, match="cannot load CLIP from .*cut.*pass --weights PATH"):
        build_encoder("clip", weights=str(cut), device="cpu")

    other = copy("other")
    save_file({"foo": torch.zeros(3)}, str(other / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="lacks .* of CLIP's tensors"):
        build_encoder("clip", weights=str(other), device="cpu")

    class Code:
        def __reduce__(self):
            return (os.getcwd, ())

    evil = copy("evil", drop=["model.safetensors"])
    torch.save({"x": Code()}, evil / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="refused, pytorch_model.bin is not plain weights"):
        build_encoder("clip", weights=str(evil), device="cpu")

    no_tok = copy("no_tok", drop=[p.name for p in clip_dir.iterdir() if p.name.startswith("tokenizer")])
    with pytest.raises(ConfigError, match="no tokenizer files"):
        build_encoder("clip", weights=str(no_tok), device="cpu")


def test_hugging_face_cache_layout(clip_dir, tmp_path):
    snap = tmp_path / "hub" / "models--openai--clip-tiny" / "snapshots" / "abc123"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(clip_dir, target_is_directory=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc123")
    assert resolve_weights(tmp_path / "hub") == snap
    assert resolve_weights(tmp_path / "hub", model="openai/clip-tiny") == snap
    other = tmp_path / "hub" / "models--x--y" / "snapshots" / "d"
    other.parent.mkdir(parents=True)
    other.symlink_to(clip_dir, target_is_directory=True)
    with pytest.raises(ConfigError, match="several models"):
        resolve_weights(tmp_path / "hub")
    enc = ClipEncoder(weights=tmp_path / "hub", model="x/y", device="cpu")
    assert enc.folder == other


def test_the_download_command_named_for_missing_weights_exists(tmp_path):
    """The message names a command of the huggingface_hub that `geopurify[clip]` installs (its 1.x removed
    `huggingface-cli`, which the message named before)."""
    import os
    import re
    import shutil
    import sys
    from pathlib import Path

    hub = pytest.importorskip("huggingface_hub")
    with pytest.raises(ConfigError) as exc:
        resolve_weights(tmp_path / "nothing")
    command = re.search(r"`(\S+) download openai/clip-vit-base-patch16 --local-dir PATH`", str(exc.value))
    assert command, str(exc.value)
    bindir = Path(sys.executable).parent
    assert shutil.which(command.group(1), path=os.pathsep.join([str(bindir), os.environ.get("PATH", "")])), (
        f"{command.group(1)} is not a command of huggingface_hub {hub.__version__}")
