"""The ``lseg`` encoder: dense LSeg pixel features, as OpenScene's released fusion script extracts them.

Upstream followed: ``pengsongyou/lseg_feature_extraction`` at commit ``60afac4`` (the LSeg fork that
``pengsongyou/openscene``'s ``scripts/feature_fusion/README.md`` points to for LSeg): ``fusion_scannet.py``
(``main``: model and evaluator set-up), ``fusion_util.py`` (``extract_lseg_img_feature``),
``additional_utils/models.py`` (``LSeg_MultiEvalModule.forward``) and ``modules/models/lseg_net.py``
(``LSeg.forward`` with ``labelset=''`` returning unit pixel features). Read, not copied; re-stated:

* **Model.** ``modules.lseg_module.LSegModule.load_from_checkpoint(ckpt, backbone="clip_vitl16_384",
  num_features=256, widehead=True, arch_option=0, block_depth=0, activation="lrelu", ...)``; its
  ``net`` in eval mode, ``mean = std = [0.5, 0.5, 0.5]``, ``crop_size = base_size = 640``.
* **Image.** The colour image at ``image_size`` = (240, 320) (OpenScene's ScanNet 2D frames, ``img_dim
  = (320, 240)``, exported with ``cv2.resize(..., INTER_NEAREST)`` in ``openscene``'s
  ``scripts/preprocess/scannet_sensordata.py``; ``resize="nearest"``), ``ToTensor`` then
  ``Normalize(0.5, 0.5)`` (values in [-1, 1]).
* **Evaluator** (scale 1, flip on): resize (bilinear, ``align_corners=True``) so the long side is
  ``base_size`` (240 x 320 -> 480 x 640), pad bottom/right to ``crop_size`` with the value of a black
  pixel (-1), run ``net(x, "")`` on the image and on its mirror, add the mirrored-back output, crop the
  top-left ``image_size`` of the output (LSeg's pixel features come at half the input resolution, so
  this is the image). Feature resolution: ``image_size``, 512 channels, stored as float16.
  (Images whose long side exceeds ``base_size`` are tiled by the evaluator; this adapter refuses that
  and asks for a smaller ``image_size``.)
* **Text.** ``net.clip_pretrained.encode_text(clip.tokenize(prompts))`` with ``"a {class} in a scene"``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import ENCODERS, Encoder, FeatureMap
from .text import PROMPT_TEMPLATE
from .upstream import import_upstream, need_file, resize_rgb

log = logging.getLogger(__name__)

URL = "https://github.com/pengsongyou/lseg_feature_extraction"

#: LSegModule.load_from_checkpoint keyword arguments of fusion_scannet.py (besides the checkpoint/backbone).
LOAD_KWARGS = dict(
    data_path="",
    dataset="ade20k",
    aux=False,
    num_features=256,
    aux_weight=0,
    se_loss=False,
    se_weight=0,
    base_lr=0,
    batch_size=1,
    max_epochs=0,
    ignore_index=255,
    dropout=0.0,
    scale_inv=False,
    augment=False,
    no_batchnorm=False,
    widehead=True,
    widehead_hr=False,
    map_location="cpu",
    arch_option=0,
    block_depth=0,
    activation="lrelu",
)


def lseg_evaluate(net, x, base_size: int = 640, crop_size: int = 640, flip: bool = True):
    """OpenScene's single-scale LSeg evaluation of normalised images.

    Args:
        net: callable ``net(x, "") -> (B, D, h', w')`` pixel features at half the input resolution.
        x: (B, 3, h, w) float images in [-1, 1] with ``max(h, w) <= base_size``.
    Returns:
        (B, D, h, w) features (the sum of the plain and the mirrored pass).
    """
    import torch
    import torch.nn.functional as F

    B, _, h, w = x.shape
    if max(h, w) > base_size:
        raise ConfigError(f"lseg image_size {h}x{w} has a side above base_size {base_size}; use a smaller image_size")
    if h > w:
        height, width = base_size, int(1.0 * w * base_size / h + 0.5)
    else:
        height, width = int(1.0 * h * base_size / w + 0.5), base_size
    cur = F.interpolate(x, (height, width), mode="bilinear", align_corners=True)
    pad = torch.full((B, 3, max(height, crop_size), max(width, crop_size)), -0.5 / 0.5, dtype=x.dtype, device=x.device)
    pad[:, :, :height, :width] = cur
    out = net(pad, "")
    if flip:
        out = out + net(pad.flip(3), "").flip(3)
    return out[:, :, :h, :w]


class LSegEncoder(Encoder):
    """Dense LSeg features (module docstring).

    Args:
        weights: the LSeg checkpoint (``demo_e200.ckpt``).
        backbone: LSeg backbone name.
        image_size: (H, W) the colour image is resized to; also the feature resolution.
        flip: add the mirrored pass (released: on).
        resize: how the colour image reaches ``image_size``: ``nearest`` (OpenScene's export) or ``bilinear``.
    """

    name = "lseg"

    @staticmethod
    def precheck(options: dict) -> None:
        """Before any scene is read: the checkpoint file exists (no model loaded)."""
        need_file(options.get("weights"), "weights (the LSeg checkpoint, e.g. demo_e200.ckpt)", "lseg")

    def __init__(
        self,
        weights: str | Path | None = None,
        backbone: str = "clip_vitl16_384",
        device: str = "auto",
        image_size: tuple[int, int] = (240, 320),
        flip: bool = True,
        template: str = PROMPT_TEMPLATE,
        resize: str = "nearest",
    ) -> None:
        if resize not in ("nearest", "bilinear"):
            raise ConfigError(f"lseg resize must be 'nearest' or 'bilinear', got {resize!r}")
        self.resize = resize
        if "{}" not in template:
            raise ConfigError(f"lseg prompt template must contain '{{}}', got {template!r}")
        self.weights = need_file(weights, "weights (the LSeg checkpoint, e.g. demo_e200.ckpt)", "lseg")
        try:
            h, w = (
                int(v) for v in (image_size.replace("x", ",").split(",") if isinstance(image_size, str) else image_size)
            )
        except (TypeError, ValueError):
            raise ConfigError(f"lseg image_size must be two integers H,W, got {image_size!r}") from None
        self.image_size = (h, w)
        mod = import_upstream("modules.lseg_module", "lseg", URL)
        import torch

        self._torch = torch
        from ..utils.device import pick_device

        self.device = pick_device(device)
        module = mod.LSegModule.load_from_checkpoint(
            checkpoint_path=str(self.weights), backbone=backbone, **LOAD_KWARGS
        )
        self.net = module.net.eval().to(self.device)
        self.backbone, self.template, self.flip = backbone, template, bool(flip)
        self.base_size = self.crop_size = 640

    def cache_key(self) -> str:
        st = self.weights.stat()
        opts = f"i{self.image_size[0]}x{self.image_size[1]}-f{int(self.flip)}-{self.resize}"
        return f"lseg-{self.backbone}-{self.weights.name}-{st.st_size}-{st.st_mtime_ns}-{opts}"

    def encode(self, frame) -> FeatureMap:
        return self.encode_batch([frame])[0]

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        torch = self._torch
        x = torch.cat([resize_rgb(np.asarray(f.color()), self.image_size, torch, self.resize) for f in frames])
        x = (x / 255.0 - 0.5) / 0.5
        with torch.inference_mode():
            feats = lseg_evaluate(self.net, x.to(self.device), self.base_size, self.crop_size, self.flip).float()
        return [FeatureMap(dense=f.permute(1, 2, 0).cpu().numpy().astype(np.float16)) for f in feats]

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        clip = import_upstream("clip", "lseg", "https://github.com/openai/CLIP")
        torch = self._torch
        tokens = clip.tokenize([self.template.format(p) for p in prompts]).to(self.device)
        with torch.inference_mode():
            emb = self.net.clip_pretrained.encode_text(tokens).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy().astype(np.float32)


ENCODERS.register("lseg")(LSegEncoder)
