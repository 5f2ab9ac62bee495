"""xdecoder / lseg adapters against fake upstream modules exposing the targeted call signatures."""

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from geopurify.encoders import build_encoder  # noqa: E402
from geopurify.errors import ConfigError, MissingDependencyError  # noqa: E402


def frame(fid, hw=(6, 8)):
    img = np.full((*hw, 3), 10 * (int(fid) + 1), np.uint8)
    return SimpleNamespace(frame_id=str(fid), color=lambda: img)


class FakeXDecoderNet:
    pixel_mean = torch.tensor([100.0, 100.0, 100.0]).view(1, 3, 1, 1)
    pixel_std = torch.tensor([50.0, 50.0, 50.0]).view(1, 3, 1, 1)

    def __init__(self):
        self.seen = []
        lang = SimpleNamespace(default_text_embeddings=None)

        def get_text_embeddings(names, is_eval=False):
            assert is_eval
            lang.default_text_embeddings = torch.tensor([[float(len(n)), 1.0] for n in names])

        lang.get_text_embeddings = get_text_embeddings
        self.sem_seg_head = self._head
        self.sem_seg_head.predictor = SimpleNamespace(lang_encoder=lang)

    def backbone(self, x):
        self.seen.append(x.clone())
        return {"res5": x}

    class _Head:
        def __call__(self, feats):
            x = feats["res5"]
            B, _, H, W = x.shape
            masks = torch.full((B, 2, H, W), -5.0)
            masks[:, 0, :, : W // 2] = 5.0  # query 0 covers the left half, nothing covers the right
            caps = torch.tensor([[3.0, 4.0], [1.0, 0.0]]).expand(B, 2, 2)
            return {"pred_masks": masks, "pred_captions": caps}

    _head = _Head()


def install_xdecoder(monkeypatch, net):
    calls = {}
    arguments = types.ModuleType("utils.arguments")
    arguments.load_opt_from_config_files = lambda files: calls.setdefault("opt", {"files": files})
    xdecoder = types.ModuleType("xdecoder")
    xdecoder.build_model = lambda opt: calls.setdefault("build", opt)
    base = types.ModuleType("xdecoder.BaseModel")

    class BaseModel(torch.nn.Module):
        def __init__(self, opt, model):
            super().__init__()
            calls["base"] = (opt, model)

        def from_pretrained(self, path):
            calls["weights"] = path
            self.model = net
            return self

    base.BaseModel = BaseModel
    for name, mod in {
        "utils": types.ModuleType("utils"),
        "utils.arguments": arguments,
        "xdecoder": xdecoder,
        "xdecoder.BaseModel": base,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return calls


def test_xdecoder_segments_and_text(monkeypatch, tmp_path):
    cfg, ckpt = tmp_path / "xdecoder.yaml", tmp_path / "xdecoder_focalt.pt"
    cfg.write_text("x")
    ckpt.write_bytes(b"x")
    net = FakeXDecoderNet()
    calls = install_xdecoder(monkeypatch, net)
    enc = build_encoder("xdecoder", config=str(cfg), weights=str(ckpt), device="cpu")
    assert calls["opt"] == {"files": [str(cfg)]} and calls["weights"] == str(ckpt)
    maps = enc.encode_batch([frame(0), frame(1)])
    assert len(net.seen) == 1 and net.seen[0].shape == (2, 3, 6, 8)  # one batched call
    torch.testing.assert_close(net.seen[0][1, 0, 0, 0], torch.tensor((20.0 - 100.0) / 50.0))
    seg = maps[0].segments
    assert seg.dtype == np.int32 and seg.shape == (6, 8)
    assert (seg[:, :4] == 0).all() and (seg[:, 4:] == -1).all()
    np.testing.assert_allclose(maps[0].embeddings, [[0.6, 0.8], [1.0, 0.0]])
    text = enc.encode_text(["cat", "ab"])
    expected = np.array([[16.0, 1.0], [15.0, 1.0]])  # len("a cat in a scene") = 16, "a ab in a scene" = 15
    np.testing.assert_allclose(text, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)


def test_xdecoder_needs_config_and_weights(monkeypatch):
    install_xdecoder(monkeypatch, FakeXDecoderNet())
    with pytest.raises(ConfigError, match="needs config"):
        build_encoder("xdecoder", weights="x")


def test_lseg_dense_and_text(monkeypatch, tmp_path):
    ckpt = tmp_path / "demo_e200.ckpt"
    ckpt.write_bytes(b"x")
    got = {}

    class Net(torch.nn.Module):
        def forward(self, x, labelset):
            got["x"], got["labelset"] = x, labelset
            B = x.shape[0]
            return torch.arange(B * 2 * 3 * 4, dtype=torch.float32).view(B, 2, 3, 4) + 1.0

    net = Net()
    net.clip_pretrained = SimpleNamespace(encode_text=lambda tok: tok.float()[:, :3])
    mod = types.ModuleType("modules.lseg_module")

    class LSegModule:
        @staticmethod
        def load_from_checkpoint(checkpoint_path, **kw):
            got["ckpt"], got["backbone"] = checkpoint_path, kw["backbone"]
            return SimpleNamespace(net=net)

    mod.LSegModule = LSegModule
    clip = types.ModuleType("clip")
    clip.tokenize = lambda texts: torch.tensor([[len(t), 0, 1, 5] for t in texts])
    for name, m in {"modules": types.ModuleType("modules"), "modules.lseg_module": mod, "clip": clip}.items():
        monkeypatch.setitem(sys.modules, name, m)
    enc = build_encoder("lseg", weights=str(ckpt), device="cpu")
    assert got["ckpt"] == str(ckpt) and got["backbone"] == "clip_vitl16_384"
    maps = enc.encode_batch([frame(0), frame(1)])
    assert got["labelset"] == "" and got["x"].shape == (2, 3, 6, 8)
    torch.testing.assert_close(got["x"][0, 0, 0, 0], torch.tensor((10 / 255 - 0.5) / 0.5))
    d = maps[0].dense
    assert d.shape == (3, 4, 2) and d.dtype == np.float16
    np.testing.assert_allclose(d[0, 0], np.array([1.0, 13.0]) / np.hypot(1, 13), rtol=1e-3)
    np.testing.assert_allclose(enc.encode_text(["wall"]), [[4 / np.hypot(4, 1), 0, 1 / np.hypot(4, 1)]], rtol=1e-6)


@pytest.mark.parametrize("name,package", [("xdecoder", "xdecoder"), ("lseg", "lseg")])
def test_missing_package_error(monkeypatch, name, package):
    for mod in ("xdecoder", "xdecoder.BaseModel", "utils", "utils.arguments", "modules", "modules.lseg_module"):
        monkeypatch.setitem(sys.modules, mod, None)  # None in sys.modules makes the import fail
    with pytest.raises(MissingDependencyError) as e:
        build_encoder(name, weights="w")
    msg = str(e.value)
    assert f"needs the '{package}' package" in msg and "PYTHONPATH" in msg and "\n" not in msg
