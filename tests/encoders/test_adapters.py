"""lseg adapter (and both adapters' missing-package errors) against fake upstream modules."""

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from geopurify.encoders import build_encoder  # noqa: E402
from geopurify.errors import MissingDependencyError  # noqa: E402


def frame(fid, hw=(6, 8)):
    img = np.full((*hw, 3), 10 * (int(fid) + 1), np.uint8)
    return SimpleNamespace(frame_id=str(fid), color=lambda: img)


def test_lseg_follows_openscenes_evaluator(monkeypatch, tmp_path):
    """image_size 240x320 -> long side 640, padded to 640x640 with -1, plain + mirrored pass, top-left crop."""
    ckpt = tmp_path / "demo_e200.ckpt"
    ckpt.write_bytes(b"x")
    got = {"x": []}

    class Net(torch.nn.Module):
        def forward(self, x, labelset):
            got["x"].append(x)
            got["labelset"] = labelset
            pooled = torch.nn.functional.avg_pool2d(x, 2)  # features at half the input resolution
            return torch.cat([pooled, pooled[:, :1] * 0 + 1], dim=1)  # (B, 4, h/2, w/2)

    net = Net()
    net.clip_pretrained = SimpleNamespace(encode_text=lambda tok: tok.float()[:, :3])
    mod = types.ModuleType("modules.lseg_module")

    class LSegModule:
        @staticmethod
        def load_from_checkpoint(checkpoint_path, **kw):
            got["ckpt"], got["kw"] = checkpoint_path, kw
            return SimpleNamespace(net=net)

    mod.LSegModule = LSegModule
    clip = types.ModuleType("clip")
    clip.tokenize = lambda texts: torch.tensor([[len(t), 0, 1, 5] for t in texts])
    for name, m in {"modules": types.ModuleType("modules"), "modules.lseg_module": mod, "clip": clip}.items():
        monkeypatch.setitem(sys.modules, name, m)
    enc = build_encoder("lseg", weights=str(ckpt), device="cpu")
    assert got["ckpt"] == str(ckpt) and got["kw"]["backbone"] == "clip_vitl16_384" and got["kw"]["widehead"]
    img = np.zeros((48, 64, 3), np.uint8)
    img[:24] = 255  # top half white, bottom half black
    (fmap,) = enc.encode_batch([SimpleNamespace(frame_id="0", color=lambda: img)])
    assert got["labelset"] == "" and len(got["x"]) == 2  # plain and mirrored
    x = got["x"][0]
    assert x.shape == (1, 3, 640, 640)
    assert torch.all(x[:, :, 480:] == -1) and float(x[:, :, :200].min()) > 0.99  # padding = a black pixel
    torch.testing.assert_close(got["x"][1], x.flip(3))
    d = fmap.dense.astype(np.float32)
    assert d.shape == (240, 320, 4) and fmap.dense.dtype == np.float16
    np.testing.assert_allclose(d[:100, :, 0], 2.0, atol=1e-2)  # white, summed over the two passes
    np.testing.assert_allclose(d[140:, :, 0], -2.0, atol=1e-2)  # black (not the padding's rows)
    np.testing.assert_allclose(enc.encode_text(["wall"]), [[17 / np.hypot(17, 1), 0, 1 / np.hypot(17, 1)]], rtol=1e-6)


@pytest.mark.parametrize("name,package", [("xdecoder", "xdecoder"), ("lseg", "lseg")])
def test_missing_package_error(monkeypatch, tmp_path, name, package):
    (tmp_path / "w").write_bytes(b"x")
    (tmp_path / "c.yaml").write_text("x")
    for mod in (
        "xdecoder",
        "xdecoder.utils",
        "xdecoder.utils.arguments",
        "xdecoder.modeling",
        "modules",
        "modules.lseg_module",
    ):
        monkeypatch.setitem(sys.modules, mod, None)  # None in sys.modules makes the import fail
    with pytest.raises(MissingDependencyError) as e:
        build_encoder(
            name, weights=str(tmp_path / "w"), **({"config": str(tmp_path / "c.yaml")} if name == "xdecoder" else {})
        )
    msg = str(e.value)
    assert f"needs the '{package}' package" in msg and "PYTHONPATH" in msg and "\n" not in msg


def test_missing_files_name_the_command_line_option(tmp_path):
    """'pass config=PATH' / 'pass weights=PATH' named no option of the command line, where --config is
    the run.json rerun (a user who typed `--config xdecoder.yaml` got "not JSON"); now the message names
    --encoder-opt config=PATH and --weights PATH."""
    from geopurify.errors import ConfigError

    with pytest.raises(ConfigError, match=r"X-Decoder YAML.*pass --encoder-opt config=PATH .*none given"):
        build_encoder("xdecoder")
    (tmp_path / "c.yaml").write_text("x")
    with pytest.raises(ConfigError, match=r"X-Decoder checkpoint.*pass --weights PATH .*nope.pt is not a file"):
        build_encoder("xdecoder", config=str(tmp_path / "c.yaml"), weights=str(tmp_path / "nope.pt"))
    with pytest.raises(ConfigError, match=r"LSeg checkpoint.*pass --weights PATH"):
        build_encoder("lseg")


def test_resize_rgb_matches_opencv_conventions():
    from geopurify.encoders.upstream import resize_rgb

    img = np.arange(8 * 12 * 3, dtype=np.uint8).reshape(8, 12, 3)
    near = resize_rgb(img, (4, 3), torch, "nearest")[0].permute(1, 2, 0).numpy()
    ys, xs = np.floor(np.arange(4) * 8 / 4).astype(int), np.floor(np.arange(3) * 12 / 3).astype(int)
    np.testing.assert_array_equal(near, img[ys][:, xs])  # INTER_NEAREST: src = floor(i * scale)
    lin = resize_rgb(img, (4, 6), torch, "bilinear")[0].permute(1, 2, 0).numpy()
    ref = img.astype(np.float32).reshape(4, 2, 6, 2, 3).mean((1, 3))  # exact 2x: INTER_LINEAR = 2x2 mean
    np.testing.assert_allclose(lin, ref, atol=1e-4)


def test_upstream_helpers_are_fully_annotated():
    """Every public function of encoders/upstream.py names the types of its arguments and of its result."""
    import inspect

    from geopurify.encoders import upstream

    funcs = [f for n, f in vars(upstream).items()
             if inspect.isfunction(f) and f.__module__ == upstream.__name__ and not n.startswith("_")]
    assert funcs
    for f in funcs:
        sig = inspect.signature(f)
        bare = [p for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
        assert not bare, f"{f.__name__}: no type hint on {[p.name for p in bare]}"
        assert sig.return_annotation is not inspect.Signature.empty, f"{f.__name__}: no return type"
