"""The xdecoder adapter against a naive re-implementation of the released GeoPurify per-pixel rule.

The reference below is written from the description of ``lift_xdecoder_features`` (GeoPurify
``models/affinity_module.py``): loops over kept queries, per-query area checks, per-pixel averaging of
the embeddings of the masks that cover it. Output dicts have the real keys and shapes.
"""

import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from geopurify.encoders import build_encoder  # noqa: E402
from geopurify.encoders.xdecoder import xdecoder_segments  # noqa: E402


def naive_rule(pred_logits, pred_masks, mask_embed, score_thresh=0.0):
    """(H, W, D) per-pixel feature (zeros where no mask), the released way; masks already at mask_shape."""
    logits = np.asarray(pred_logits, np.float64)
    e = np.exp(logits - logits.max(1, keepdims=True))
    soft = (e / e.sum(1, keepdims=True))[:, :-1]
    scores, keep = soft.max(1), soft.max(1) > score_thresh
    cur_scores = scores[keep]
    cur_masks = 1.0 / (1.0 + np.exp(-np.asarray(pred_masks, np.float64)[keep]))
    cur_emb = np.asarray(mask_embed, np.float64)[keep]
    H, W = pred_masks.shape[1:]
    feat = np.zeros((H, W, mask_embed.shape[1]))
    if cur_masks.shape[0] == 0:
        return feat
    ids = (cur_scores[:, None, None] * cur_masks).argmax(0)
    final = []
    for k in range(len(cur_scores)):
        mask_area = (ids == k).sum()
        original_area = (cur_masks[k] >= 0.5).sum()
        mask = (ids == k) & (cur_masks[k] >= 0.5)
        if mask_area > 0 and original_area > 0 and mask.sum() > 0:
            final.append((mask, cur_emb[k]))
    count = np.zeros((H, W, 1))
    for mask, emb in final:
        feat[mask] += emb
        count[mask] += 1
    count[count == 0] = 1e-5
    return feat / count


def per_pixel(fmap):
    seg = fmap.segments
    out = np.zeros((*seg.shape, fmap.embeddings.shape[1]), np.float32)
    out[seg >= 0] = fmap.embeddings[seg[seg >= 0]]
    return out


def unit(x):
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(n > 0, x / np.maximum(n, 1e-12), 0.0)


def check_against_naive(logits, masks, emb, score_thresh=0.0):
    ours = xdecoder_segments(
        torch.as_tensor(logits), torch.as_tensor(masks), torch.as_tensor(emb), masks.shape[1:], score_thresh
    )
    ref = naive_rule(logits, masks, emb, score_thresh)
    assert ours.segments.shape == masks.shape[1:] and ours.segments.dtype == np.int32
    np.testing.assert_array_equal(ours.segments >= 0, np.abs(ref).sum(-1) > 0)
    np.testing.assert_allclose(per_pixel(ours), unit(ref), atol=1e-5)
    return ours


def test_random_outputs_with_real_shapes():
    """Q=200 queries, C=19 classes + background, 512-d embeddings, masks at mask_shape 121x162."""
    g = np.random.default_rng(0)
    Q, C, h, w = 200, 19, 121, 162
    logits = g.normal(0, 3, (Q, C + 1)).astype(np.float32)
    masks = g.normal(-9, 3, (Q, h, w)).astype(np.float32)
    emb = g.normal(size=(Q, 512)).astype(np.float32)
    ours = check_against_naive(logits, masks, emb)
    assert 0.05 < (ours.segments >= 0).mean() < 0.95 and len(ours.embeddings) > 10


def test_all_queries_below_threshold():
    g = np.random.default_rng(1)
    logits = g.normal(size=(5, 4)).astype(np.float32)
    masks = g.normal(size=(5, 8, 9)).astype(np.float32)
    emb = g.normal(size=(5, 512)).astype(np.float32)
    ours = check_against_naive(logits, masks, emb, score_thresh=1.0)  # no softmax score exceeds 1
    assert (ours.segments == -1).all() and ours.embeddings.shape == (0, 512)
    # every mask below 0.5 everywhere: nothing kept either
    ours = check_against_naive(logits, np.full((5, 8, 9), -3.0, np.float32), emb)
    assert (ours.segments == -1).all()


def test_overlapping_masks_go_to_the_best_weighted_query():
    H, W = 6, 10
    masks = np.full((3, H, W), -6.0, np.float32)
    masks[0, :, :7] = 4.0  # query 0: columns 0-6, confident mask, weak class score
    masks[1, :, 3:] = 1.0  # query 1: columns 3-9, softer mask, strong class score
    masks[2] = 0.2  # query 2: sigmoid 0.55 everywhere, tiny score
    logits = np.array([[1.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 0.0, 8.0]], np.float32)  # q2 is background
    emb = np.eye(3, 512, dtype=np.float32) * np.array([[2.0], [3.0], [4.0]], np.float32)
    ours = check_against_naive(logits, masks, emb)
    # in the overlap, score x prob decides: 0.99*sig(1) (q1) beats 0.58*sig(4) (q0)
    s = torch.softmax(torch.tensor(logits), -1)[:, :-1].max(-1).values.numpy()
    assert s[1] * (1 / (1 + np.exp(-1))) > s[0] * (1 / (1 + np.exp(-4)))
    emb_of = per_pixel(ours)
    assert (emb_of[:, 3:, 1] == 1).all() and (emb_of[:, :3, 0] == 1).all()


def test_query_whose_argmax_area_is_empty_is_dropped():
    H, W = 5, 5
    masks = np.full((3, H, W), -5.0, np.float32)
    masks[0] = 3.0
    masks[1, :2] = 3.0  # fully inside query 0, but lower score: wins no pixel
    masks[2, 4, 4] = 5.0  # a single pixel
    logits = np.array([[5.0, 0, 0], [1.0, 0, 0], [9.0, 0, 0]], np.float32)
    emb = np.random.default_rng(2).normal(size=(3, 512)).astype(np.float32)
    ours = check_against_naive(logits, masks, emb)
    assert len(ours.embeddings) == 2  # query 1 owns nothing and is not in the table
    assert ours.segments[4, 4] == 1 and (ours.segments[:4] == 0).all()


def test_argmax_winner_below_half_leaves_the_pixel_empty():
    """A pixel whose winning query has probability < 0.5 gets no mask even if another query has >= 0.5."""
    masks = np.array([[[0.1]], [[-0.3]]], np.float32)  # sigmoid 0.525 and 0.426
    logits = np.array([[0.0, 0, 0], [9.0, 0, 0]], np.float32)  # q1 score ~1, q0 ~0.33
    ours = check_against_naive(logits, masks, np.ones((2, 512), np.float32))
    assert ours.segments[0, 0] == -1


def test_masks_are_resized_bicubic_antialiased_on_logits():
    g = np.random.default_rng(3)
    logits = g.normal(size=(7, 5)).astype(np.float32)
    small = torch.tensor(g.normal(0, 3, (7, 16, 21)), dtype=torch.float32)
    emb = g.normal(size=(7, 512)).astype(np.float32)
    ours = xdecoder_segments(torch.tensor(logits), small, torch.tensor(emb), (64, 84))
    big = F.interpolate(small[None], size=(64, 84), mode="bicubic", align_corners=False, antialias=True)[0]
    ref = naive_rule(logits, big.numpy(), emb)
    assert ours.segments.shape == (64, 84)
    np.testing.assert_allclose(per_pixel(ours), unit(ref), atol=1e-5)
    # bilinear or no antialias would change some pixels' owner
    other = F.interpolate(small[None], size=(64, 84), mode="bilinear", align_corners=False)[0]
    assert (np.abs(naive_rule(logits, other.numpy(), emb) - ref).sum(-1) > 1e-6).any()


# ------------------------------------------------------------------ the adapter with a fake vendored X-Decoder
class FakeLang:
    def __init__(self):
        self.calls = []

    def get_text_embeddings(self, class_names, name="default", is_eval=False, add_bgd=False, prompt=True, norm=True):
        assert is_eval
        self.calls.append((name, list(class_names)))
        emb = torch.zeros(len(class_names), 512)
        emb[:, 0] = torch.tensor([float(len(n)) for n in class_names])
        emb[:, 1] = 1.0
        setattr(self, f"{name}_text_embeddings", emb)


class FakeNet:
    """forward_seg_all with the vendored signature; pred_logits depend on the vocabulary, like X-Decoder's."""

    def __init__(self, Q=4, h=4, w=5, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.lang = FakeLang()
        self.sem_seg_head = types.SimpleNamespace(predictor=types.SimpleNamespace(lang_encoder=self.lang))
        self.masks = torch.randn(Q, h, w, generator=g) * 3
        self.embed = torch.randn(Q, 512, generator=g)
        self.inputs = []

    def forward_seg_all(self, batched_inputs):
        self.inputs.append(batched_inputs)
        img = batched_inputs[0]["image"]
        vocab = self.lang.default_text_embeddings  # (C+1, 512)
        logits = self.embed @ vocab.t() / 10 + img.mean() / 255
        return {}, {"pred_logits": logits[None], "pred_masks": self.masks[None], "mask_embed": self.embed[None]}


def install(monkeypatch, net):
    seen = {}
    arguments = types.ModuleType("xdecoder.utils.arguments")
    arguments.load_opt_from_config_files = lambda files: {"files": files}
    modeling = types.ModuleType("xdecoder.modeling")
    modeling.build_model = lambda opt: seen.setdefault("opt", opt)
    base = types.ModuleType("xdecoder.modeling.BaseModel")

    class BaseModel(torch.nn.Module):
        def __init__(self, opt, model):
            super().__init__()

        def from_pretrained(self, path):
            seen["weights"] = path
            self.model = net
            return self

    base.BaseModel = BaseModel
    mods = {
        "xdecoder": types.ModuleType("xdecoder"),
        "xdecoder.utils": types.ModuleType("xdecoder.utils"),
        "xdecoder.utils.arguments": arguments,
        "xdecoder.modeling": modeling,
        "xdecoder.modeling.BaseModel": base,
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return seen


def _frame(fid, hw=(30, 40)):
    img = np.random.default_rng(int(fid)).integers(0, 255, (*hw, 3), dtype=np.uint8)
    return types.SimpleNamespace(frame_id=str(fid), color=lambda: img)


@pytest.fixture
def files(tmp_path):
    cfg, ckpt = tmp_path / "xdecoder_focall_lang.yaml", tmp_path / "xdecoder_focall_last.pt"
    cfg.write_text("x")
    ckpt.write_bytes(b"x")
    return str(cfg), str(ckpt)


def test_adapter_calls_forward_seg_all_and_applies_the_rule(monkeypatch, files):
    net = FakeNet()
    seen = install(monkeypatch, net)
    enc = build_encoder(
        "xdecoder",
        config=files[0],
        weights=files[1],
        classes="chair,table",
        device="cpu",
        image_size=(12, 16),
        mask_shape=(8, 10),
    )
    assert seen["weights"] == files[1] and seen["opt"]["files"] == [files[0]]
    assert net.lang.calls[0] == ("default", ["a chair in a scene", "a table in a scene", "background"])
    fr = _frame(3)
    fmap = enc.encode(fr)
    (inp,) = net.inputs[-1]
    assert inp["image"].shape == (1, 3, 12, 16) and (inp["height"], inp["width"]) == (12, 16)
    assert 0 <= float(inp["image"].min()) and float(inp["image"].max()) <= 255 and float(inp["image"].max()) > 1
    _, out = net.forward_seg_all([inp])
    big = F.interpolate(out["pred_masks"], size=(8, 10), mode="bicubic", align_corners=False, antialias=True)[0]
    ref = naive_rule(out["pred_logits"][0].numpy(), big.numpy(), out["mask_embed"][0].numpy())
    np.testing.assert_allclose(per_pixel(fmap), unit(ref), atol=1e-5)
    # text: separate name, vocabulary left alone; the cache key follows the vocabulary
    text = enc.encode_text(["sofa"])
    assert net.lang.calls[-1] == ("geopurify", ["a sofa in a scene"])
    assert net.lang.default_text_embeddings.shape[0] == 3
    assert text.shape == (1, 512)
    np.testing.assert_allclose(text[0, :3], [17 / np.hypot(17, 1), 1 / np.hypot(17, 1), 0], rtol=1e-6)
    other = build_encoder("xdecoder", config=files[0], weights=files[1], classes="chair", device="cpu")
    assert other.cache_key() != enc.cache_key()


def test_default_vocabulary_is_the_released_scannet_list(monkeypatch, files):
    net = FakeNet()
    install(monkeypatch, net)
    build_encoder("xdecoder", config=files[0], weights=files[1], device="cpu")
    prompts = net.lang.calls[0][1]
    assert len(prompts) == 20 and prompts[-1] == "background" and prompts[0] == "a wall in a scene"
    assert "a otherfurniture in a scene" not in prompts


def test_crop_padding_crops_the_size_divisibility_padding(monkeypatch, files):
    net = FakeNet(h=8, w=8)  # as if the 24x20 image had been padded to 32x32
    install(monkeypatch, net)
    enc = build_encoder(
        "xdecoder",
        config=files[0],
        weights=files[1],
        device="cpu",
        classes="a,b",
        image_size=(24, 20),
        crop_padding=True,
    )
    fmap = enc.encode(_frame(1))
    _, out = net.forward_seg_all(net.inputs[-1])
    cropped = out["pred_masks"][:, :, :6, :5]  # 8 * 24/32, 8 * 20/32
    big = F.interpolate(cropped, size=(24, 20), mode="bicubic", align_corners=False, antialias=True)[0]
    ref = naive_rule(out["pred_logits"][0].numpy(), big.numpy(), out["mask_embed"][0].numpy())
    np.testing.assert_allclose(per_pixel(fmap), unit(ref), atol=1e-5)


def test_encode_then_segment_on_a_machine_without_xdecoder(monkeypatch, files, tmp_path):
    """GPU box: `encode` with X-Decoder; laptop (no xdecoder package): `segment --encoder xdecoder` reads it."""
    from geopurify.cli import main
    from geopurify.encoders.encode import EncodeConfig, encode_scene, read_manifest
    from geopurify.io import read_scene

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    from _fixtures import write_tiny_scannet

    d = write_tiny_scannet(tmp_path / "scans", frames=3)
    for p in (d / "features_2d").iterdir():
        p.unlink()
    net = FakeNet(Q=6, h=8, w=10)
    install(monkeypatch, net)
    opts = {"config": files[0], "weights": files[1], "image_size": "24,32", "device": "cpu"}
    res = encode_scene(read_scene(d), EncodeConfig(encoder="xdecoder", encoder_options=opts, classes=["wall", "floor"]))
    assert res.written == 3
    assert net.lang.calls[0][1] == ["a wall in a scene", "a floor in a scene", "background"]  # --classes = vocabulary
    man = read_manifest(d / "features_2d")
    assert man["classes"] == ["wall", "floor"] and man["status"] == "complete"
    with np.load(d / "features_2d" / "0.npz") as z:
        assert sorted(z.files) == ["embeddings", "segments"] and z["segments"].shape == (24, 32)
    for mod in ("xdecoder", "xdecoder.utils", "xdecoder.utils.arguments", "xdecoder.modeling",
                "xdecoder.modeling.BaseModel"):
        monkeypatch.setitem(sys.modules, mod, None)  # the laptop has no X-Decoder
    out = tmp_path / "out"
    argv = ["segment", str(d), "--no-purify", "--out", str(out), "--encoder", "xdecoder", "--weights", files[1],
            "--encoder-opt", f"config={files[0]}", "--encoder-opt", "image_size=24,32"]
    assert main(argv) == 0
    assert len(np.loadtxt(out / "labels.txt")) == 40 * 40
    assert __import__("json").loads((out / "names.json").read_text()) == ["wall", "floor"]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_query_blocks_change_nothing_and_ties_go_to_the_first_query(chunk):
    g = np.random.default_rng(5)
    logits = g.normal(0, 2, (9, 6)).astype(np.float32)
    masks = g.normal(0, 3, (9, 7, 8)).astype(np.float32)
    logits[4], masks[4] = logits[1], masks[1]  # query 4 duplicates query 1: a tie everywhere
    emb = g.normal(size=(9, 512)).astype(np.float32)
    ours = xdecoder_segments(torch.tensor(logits), torch.tensor(masks), torch.tensor(emb), (7, 8), chunk=chunk)
    whole = xdecoder_segments(torch.tensor(logits), torch.tensor(masks), torch.tensor(emb), (7, 8), chunk=9)
    np.testing.assert_array_equal(ours.segments, whole.segments)
    np.testing.assert_allclose(per_pixel(ours), unit(naive_rule(logits, masks, emb)), atol=1e-5)
