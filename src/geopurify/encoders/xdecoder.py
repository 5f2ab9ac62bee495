"""The ``xdecoder`` encoder: X-Decoder per-mask features, as the released GeoPurify lifts them.

Upstream followed: ``tj12323/GeoPurify`` at commit ``d4f323a`` (``models/affinity_module.py``,
``SonataXAffinityTrainer.__init__`` and ``lift_xdecoder_features``, about lines 225-250 and 495-575),
with its vendored X-Decoder (``third_party/X-Decoder/``, imported as the package ``xdecoder``) and its
config ``config/xdecoder_focall_lang.yaml``. Read, not copied; the rule is re-stated here:

* **Model.** ``opt = xdecoder.utils.arguments.load_opt_from_config_files([config])``, then
  ``xdecoder.modeling.BaseModel(opt, xdecoder.modeling.build_model(opt)).from_pretrained(weights)``;
  ``net = model.model``.
* **Vocabulary.** ``net.sem_seg_head.predictor.lang_encoder.get_text_embeddings(prompts, is_eval=True)``
  with ``prompts = ["a {c} in a scene" for c in classes] + ["background"]``; ``sem_seg_head.num_classes
  = len(classes)``. The vocabulary decides ``pred_logits``, so the features depend on it (it is part of
  :meth:`cache_key`).
* **Image.** The colour image resized (bilinear) to ``image_size`` = (484, 648), the released
  ``fusion.img_dim`` (half of ScanNet's 968 x 1296), RGB 0..255 float; X-Decoder normalises it with its
  own ``PIXEL_MEAN``/``PIXEL_STD`` inside ``forward_seg_all``.
* **Call.** ``_, out = net.forward_seg_all([{"image": (1, 3, H, W), "height": H, "width": W}])``; used
  keys: ``pred_logits`` (B, Q, C+1), ``pred_masks`` (B, Q, h, w) logits, ``mask_embed`` (B, Q, 512).
* **Rule** (:func:`xdecoder_segments`): masks resized to ``mask_shape`` (bicubic, antialiased, on the
  logits), then sigmoid; query score = max over classes of ``softmax(pred_logits)`` without the last
  ("background"/no-object) column; queries with score <= ``score_threshold`` (0.0) dropped; each pixel
  goes to ``argmax_q score_q * sigmoid_q``, kept only where that query's own probability is >= 0.5
  (so only non-empty masks survive); elsewhere -1. A pixel's feature is its query's ``mask_embed``.
* **Text.** The points are classified against the same prompts' embeddings without the background row
  (``forward_seg_all``'s ``text_embed``); :meth:`XDecoderEncoder.encode_text` computes them under a
  separate name so the image vocabulary is left alone.

Two things the released code does that this encoder does not own: points of a view that fall on no mask
get the feature of the nearest masked point of that view (here they are "not seen" in that view, and
lifting's fill handles points no view sees), and ``forward_seg_all`` pads images to a multiple of 32
before predicting, yet the padded mask grid is resized to the unpadded ``mask_shape`` (a shift of up to
31 pixels at the far edges); ``crop_padding=True`` crops the padding first (off by default, as released).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import ENCODERS, Encoder, FeatureMap
from .text import PROMPT_TEMPLATE, XDECODER_BACKGROUND, vocabulary
from .upstream import import_upstream, need_file, resize_rgb

log = logging.getLogger(__name__)

URL = "https://github.com/tj12323/GeoPurify (third_party/X-Decoder)"


def xdecoder_segments(
    pred_logits,
    pred_masks,
    mask_embed,
    mask_shape: tuple[int, int],
    score_threshold: float = 0.0,
    mask_threshold: float = 0.5,
    chunk: int = 32,
) -> FeatureMap:
    """GeoPurify's per-pixel rule for one image (torch tensors in, on any device; numpy out).

    Args:
        pred_logits: (Q, C+1) class logits; the last column is background / no object.
        pred_masks: (Q, h, w) mask logits.
        mask_embed: (Q, D) per-query embeddings in the language space.
        mask_shape: (H, W) the masks are resized to (bicubic, antialiased).
    Returns:
        ``segments`` (H, W) int32 (-1 where no query is kept) and ``embeddings`` (S, D) float32 unit rows
        of the S queries that own at least one pixel, in query order.
    """
    import torch
    import torch.nn.functional as F

    H, W = int(mask_shape[0]), int(mask_shape[1])
    masks = pred_masks.float()
    scores = F.softmax(pred_logits.float(), dim=-1)[:, :-1].max(dim=-1).values  # (Q,)
    kept = torch.nonzero(scores > score_threshold).flatten()
    dev = masks.device
    best = torch.full((H, W), -1.0, device=dev)  # weighted scores are >= 0
    winner = torch.full((H, W), -1, dtype=torch.int64, device=dev)
    own = torch.zeros((H, W), device=dev)
    # blocks of queries bound the memory (Q x H x W floats otherwise); argmax keeps the first of equal
    # maxima, so a later block takes a pixel only when strictly better
    for start in range(0, len(kept), chunk):
        q = kept[start : start + chunk]
        m = masks[q]
        if tuple(m.shape[-2:]) != (H, W):
            m = F.interpolate(m[None], size=(H, W), mode="bicubic", align_corners=False, antialias=True)[0]
        prob = m.sigmoid()
        val, arg = (scores[q].view(-1, 1, 1) * prob).max(dim=0)
        better = val > best
        best = torch.where(better, val, best)
        winner = torch.where(better, q[arg], winner)
        own = torch.where(better, prob.gather(0, arg[None])[0], own)
    segments = torch.where((winner >= 0) & (own >= mask_threshold), winner, torch.full_like(winner, -1))
    used, compact = torch.unique(segments[segments >= 0], return_inverse=True)
    out = segments.clone()
    out[segments >= 0] = compact
    emb = F.normalize(mask_embed.float()[used], dim=-1) if len(used) else mask_embed.float()[:0]
    return FeatureMap(segments=out.cpu().numpy().astype(np.int32), embeddings=emb.cpu().numpy().astype(np.float32))


class XDecoderEncoder(Encoder):
    """X-Decoder per-mask features with GeoPurify's rule (module docstring).

    Args:
        config: the X-Decoder YAML (GeoPurify's ``config/xdecoder_focall_lang.yaml``).
        weights: the X-Decoder checkpoint (e.g. ``xdecoder_focall_last.pt``).
        classes: the vocabulary: a label-set name (``scannet20``, ``scannet200``, ``matterport21`` ...:
            the class lists of the released configs, see :func:`geopurify.encoders.text.vocabulary`) or a
            comma-separated list of names.
        image_size: (H, W) the colour image is resized to before the model.
        mask_shape: (H, W) of the output masks; default ``image_size``.
        score_threshold: queries scoring at most this are dropped (released: 0.0).
        mask_threshold: a pixel's winning mask must reach this probability (released: 0.5).
        crop_padding: crop X-Decoder's size-divisibility padding off the masks before resizing.
    """

    name = "xdecoder"

    @staticmethod
    def precheck(options: dict) -> None:
        """Before any scene is read: the config and checkpoint files exist (no model loaded)."""
        need_file(options.get("config"), "config (the X-Decoder YAML, e.g. xdecoder_focall_lang.yaml)", "xdecoder")
        need_file(options.get("weights"), "weights (the X-Decoder checkpoint)", "xdecoder")

    def __init__(
        self,
        config: str | Path | None = None,
        weights: str | Path | None = None,
        classes: str | list[str] = "scannet20",
        device: str = "auto",
        image_size: tuple[int, int] = (484, 648),
        mask_shape: tuple[int, int] | None = None,
        score_threshold: float = 0.0,
        mask_threshold: float = 0.5,
        crop_padding: bool = False,
        size_divisibility: int = 32,
    ) -> None:
        self.image_size = _pair(image_size, "image_size")
        self.mask_shape = _pair(mask_shape, "mask_shape") if mask_shape is not None else self.image_size
        self.classes = vocabulary(classes)
        self.score_threshold, self.mask_threshold = float(score_threshold), float(mask_threshold)
        if not 0.0 <= self.mask_threshold <= 1.0:
            raise ConfigError(f"xdecoder mask_threshold must lie in [0, 1], got {mask_threshold}")
        self.crop_padding, self.size_divisibility = bool(crop_padding), int(size_divisibility)
        self.config = need_file(config, "config (the X-Decoder YAML, e.g. xdecoder_focall_lang.yaml)", "xdecoder")
        self.weights = need_file(weights, "weights (the X-Decoder checkpoint)", "xdecoder")
        arguments = import_upstream("xdecoder.utils.arguments", "xdecoder", URL)
        modeling = import_upstream("xdecoder.modeling", "xdecoder", URL)
        base = import_upstream("xdecoder.modeling.BaseModel", "xdecoder", URL)
        import torch

        self._torch = torch
        from ..utils.device import pick_device

        self.device = pick_device(device)
        opt = arguments.load_opt_from_config_files([str(self.config)])
        opt["device"] = self.device
        model = base.BaseModel(opt, modeling.build_model(opt)).from_pretrained(str(self.weights))
        self.net = model.eval().to(self.device).model
        prompts = [PROMPT_TEMPLATE.format(c) for c in self.classes] + [XDECODER_BACKGROUND]
        with torch.inference_mode():
            self._lang.get_text_embeddings(prompts, is_eval=True)
        self.net.sem_seg_head.num_classes = len(self.classes)

    @property
    def _lang(self):
        return self.net.sem_seg_head.predictor.lang_encoder

    def cache_key(self) -> str:
        st = self.weights.stat()
        vocab = hashlib.sha1("\n".join(self.classes).encode()).hexdigest()[:10]
        return (
            f"xdecoder-{self.weights.name}-{st.st_size}-{st.st_mtime_ns}-v{vocab}-i{self.image_size}-m{self.mask_shape}"
            f"-s{self.score_threshold}-t{self.mask_threshold}-c{int(self.crop_padding)}"
        )

    def encode(self, frame) -> FeatureMap:
        return self.encode_batch([frame])[0]

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        torch = self._torch
        H, W = self.image_size
        out_maps = []
        for frame in frames:  # the released code runs one view per call
            img = resize_rgb(np.asarray(frame.color()), (H, W), torch).to(self.device)  # (1, 3, H, W) 0..255
            with torch.inference_mode():
                _, out = self.net.forward_seg_all([{"image": img, "height": H, "width": W}])
                masks = out["pred_masks"][0]
                if self.crop_padding:
                    d = self.size_divisibility
                    Hp, Wp = -(-H // d) * d, -(-W // d) * d
                    masks = masks[:, : round(masks.shape[1] * H / Hp), : round(masks.shape[2] * W / Wp)]
                fmap = xdecoder_segments(  # on the model's device
                    out["pred_logits"][0],
                    masks,
                    out["mask_embed"][0],
                    self.mask_shape,
                    self.score_threshold,
                    self.mask_threshold,
                )
            out_maps.append(fmap)
        return out_maps

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """(C, D) unit embeddings of "a {class} in a scene", X-Decoder's eval-time template ensemble."""
        torch = self._torch
        with torch.inference_mode():
            self._lang.get_text_embeddings([PROMPT_TEMPLATE.format(p) for p in prompts], name="geopurify", is_eval=True)
            emb = torch.nn.functional.normalize(self._lang.geopurify_text_embeddings.float(), dim=-1)
        return emb.cpu().numpy().astype(np.float32)


def _pair(value, what: str) -> tuple[int, int]:
    if isinstance(value, str):
        value = value.replace("x", ",").split(",")
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"xdecoder {what} must be two integers H,W, got {value!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"xdecoder {what} must be positive, got {h},{w}")
    return h, w


ENCODERS.register("xdecoder")(XDecoderEncoder)
