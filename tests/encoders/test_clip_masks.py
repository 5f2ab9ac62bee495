"""clip per-mask mode: superpixels / user masks, pooled dense features or CLIP embeddings of crops."""

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from geopurify.encoders import build_encoder  # noqa: E402
from geopurify.encoders.masks import (  # noqa: E402
    labels_to_segments,
    mask_boxes,
    pooled_features,
    read_mask_file,
    stack_to_segments,
)
from geopurify.errors import ConfigError, FrameError  # noqa: E402


def frame(fid, hw=(40, 56)):
    img = np.zeros((*hw, 3), np.uint8)
    img[:, : hw[1] // 2] = (200, 40, 40)  # two flat regions with a little noise: superpixels follow them
    img[:, hw[1] // 2 :] = (30, 60, 210)
    img = np.clip(img + np.random.default_rng(int(fid)).integers(0, 12, img.shape), 0, 255).astype(np.uint8)
    return SimpleNamespace(frame_id=str(fid), color=lambda: img)


def test_stack_and_label_images():
    m = np.zeros((3, 4, 5), bool)
    m[0] = True  # the whole image
    m[1, :2, :2] = True  # inside mask 0: smaller, wins
    seg = stack_to_segments(m)  # mask 2 is empty
    assert (seg[:2, :2] == 1).all() and (seg[2:] == 0).all() and seg.dtype == np.int32
    lab = np.array([[0, 7, 7], [3, 3, 0]])
    np.testing.assert_array_equal(labels_to_segments(lab), [[-1, 1, 1], [0, 0, -1]])


def test_read_mask_file_forms(tmp_path):
    m = np.zeros((2, 4, 6), bool)
    m[0, :, :3] = m[1, :, 3:] = True
    np.savez(tmp_path / "a.npz", masks=m)
    np.save(tmp_path / "b.npy", m.argmax(0).astype(np.uint16) + 1)
    from PIL import Image

    Image.fromarray((m.argmax(0) * 5 + 1).astype(np.uint8)).save(tmp_path / "c.png")
    for fid in "abc":
        seg = read_mask_file(tmp_path, fid)
        np.testing.assert_array_equal(seg, m.argmax(0))
    with pytest.raises(FrameError, match="no mask file"):
        read_mask_file(tmp_path, "zz")
    np.save(tmp_path / "d.npy", np.zeros((2, 2, 2), np.float32))
    with pytest.raises(FrameError, match="bool stack"):
        read_mask_file(tmp_path, "d")


def test_pooled_features_is_the_unit_mean_over_each_mask():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(5, 7, 3)).astype(np.float32)
    seg = rng.integers(-1, 4, size=(10, 14)).astype(np.int32)  # twice the dense resolution
    got = pooled_features(dense, seg)
    up = dense.repeat(2, 0).repeat(2, 1)
    for s in range(4):
        mean = up[seg == s].mean(0)
        np.testing.assert_allclose(got[s], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)


def test_superpixels_pooled(clip_dir):
    pytest.importorskip("skimage")
    enc = build_encoder("clip", weights=str(clip_dir), device="cpu", masks="slic", n_segments=8, mask_short_side=40)
    fr = frame(0)
    (fmap,) = enc.encode_batch([fr])
    seg, emb = fmap.segments, fmap.embeddings
    assert fmap.dense is None and seg.shape == (40, 56) and seg.dtype == np.int32
    assert seg.min() == 0 and sorted(np.unique(seg)) == list(range(len(emb)))  # every id used, none empty
    assert 2 <= len(emb) <= 20 and emb.shape[1] == 24
    left, right = np.unique(seg[:, :26]), np.unique(seg[:, 30:])
    assert not set(left) & set(right), "superpixels should not cross the colour edge"
    dense = build_encoder("clip", weights=str(clip_dir), device="cpu").encode(fr).dense
    np.testing.assert_allclose(emb, pooled_features(dense, seg), atol=1e-6)
    fz = build_encoder("clip", weights=str(clip_dir), device="cpu", masks="felzenszwalb", mask_short_side=40)
    assert fz.encode(fr).segments.max() >= 1 and fz.cache_key() != enc.cache_key()


def test_crop_embedding_equals_clips_own_image_embedding(clip_dir, tmp_path):
    from PIL import Image
    from transformers import CLIPModel

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4: the slow processor is PIL-based already
        from transformers import CLIPImageProcessor as Processor
    masks = np.zeros((2, 40, 56), bool)
    masks[0, 5:25, 3:20] = True
    masks[1, 10:38, 30:55] = True
    np.savez(tmp_path / "0.npz", masks=masks)
    enc = build_encoder("clip", weights=str(clip_dir), device="cpu", masks="folder", mask_dir=str(tmp_path),
                        mask_feature="crop", crop_pad=0.0)
    fr = frame(0)
    fmap = enc.encode(fr)
    assert fmap.segments.shape == (40, 56) and fmap.embeddings.shape == (2, 24)
    np.testing.assert_array_equal(fmap.segments[masks[0]], 0)
    model = CLIPModel.from_pretrained(clip_dir).eval()
    proc = Processor(do_center_crop=False, size={"height": 32, "width": 32}, resample=Image.BICUBIC,
                     image_mean=enc.mean.flatten().tolist(), image_std=enc.std.flatten().tolist())
    img = fr.color()
    for k, (y0, y1, x0, x1) in enumerate([(5, 25, 3, 20), (10, 38, 30, 55)]):
        pix = proc(images=img[y0:y1, x0:x1], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            out = model.get_image_features(pixel_values=pix)
        ref = getattr(out, "pooler_output", out)[0]
        ref = (ref / ref.norm()).numpy()
        np.testing.assert_allclose(fmap.embeddings[k], ref, atol=1e-4)


def test_mask_options_are_checked(clip_dir, tmp_path):
    with pytest.raises(ConfigError, match="mask_dir"):
        build_encoder("clip", weights=str(clip_dir), masks="folder")
    with pytest.raises(ConfigError, match="masks must be"):
        build_encoder("clip", weights=str(clip_dir), masks="sam")
    with pytest.raises(ConfigError, match="mask_feature"):
        build_encoder("clip", weights=str(clip_dir), masks="slic", mask_feature="max")


def test_mask_boxes_grow_and_clip():
    seg = np.full((10, 10), -1, np.int32)
    seg[2:4, 3:7] = 0
    np.testing.assert_array_equal(mask_boxes(seg, (20, 20), 0.0), [[4, 6, 8, 14]])
    np.testing.assert_array_equal(mask_boxes(seg, (20, 20), 1.0), [[0, 0, 12, 20]])
