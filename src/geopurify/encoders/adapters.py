"""Adapters for 2D VLMs the user installs from source: X-Decoder (per-mask) and LSeg (dense).

Neither project is on PyPI; both are imported lazily from the user's checkout on ``PYTHONPATH``.
The adapters target these upstream interfaces (as used by OpenScene and GeoPurify's feature export):

* **X-Decoder** -- ``microsoft/X-Decoder`` branch ``main`` (v2.0 layout, 2023)::

      from utils.arguments import load_opt_from_config_files
      from xdecoder import build_model
      from xdecoder.BaseModel import BaseModel
      opt = load_opt_from_config_files([config_yaml])
      model = BaseModel(opt, build_model(opt)).from_pretrained(checkpoint).eval()
      net = model.model                                   # the XDecoder meta-architecture
      feats = net.backbone((images - net.pixel_mean) / net.pixel_std)   # images (B, 3, H, W) 0..255
      out = net.sem_seg_head(feats)                       # dict with
      out["pred_masks"]     # (B, Q, h, w) mask logits
      out["pred_captions"]  # (B, Q, D) per-query embeddings in the language space
      lang = net.sem_seg_head.predictor.lang_encoder
      lang.get_text_embeddings(names, is_eval=True); lang.default_text_embeddings   # (C, D)

  Each pixel takes the query with the highest mask probability if it exceeds ``mask_threshold``
  (else -1), giving ``segments`` (h, w) + ``embeddings`` (Q, D).

* **LSeg** -- ``isl-org/lang-seg`` with OpenScene's feature-export change
  (``pengsongyou/lseg_feature_extraction``), whose ``LSegNet.forward(x, labelset="")`` returns pixel
  features (B, D, h, w) instead of logits::

      from modules.lseg_module import LSegModule
      module = LSegModule.load_from_checkpoint(checkpoint_path=ckpt, backbone="clip_vitl16_384", ...)
      net = module.net
      feats = net(images_normalised, "")                 # (B, 512, h, w), images in [-1, 1]
      import clip; net.clip_pretrained.encode_text(clip.tokenize(prompts))   # (C, 512)

These signatures were written from the projects' public demos and were not run against real
checkpoints here; the tests exercise them with fake modules exposing exactly these calls.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingDependencyError
from ..utils.device import pick_device
from .base import ENCODERS, Encoder, FeatureMap

log = logging.getLogger(__name__)


def _import(module: str, package: str, url: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {package} encoder needs the '{package}' package (not on PyPI): clone {url} and put it on "
            f"PYTHONPATH ({exc.name or module} could not be imported)"
        ) from exc


def _images(frames: list, torch):
    """(B, 3, H, W) float tensor in 0..255 from frames of one size; raises ConfigError otherwise."""
    imgs = [np.asarray(f.color()) for f in frames]
    if len({im.shape for im in imgs}) > 1:
        raise ConfigError("frames of one batch must share the colour size; use batch_size=1")
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()


def _need_file(path, what: str, encoder: str) -> Path:
    if path is None or not Path(path).expanduser().is_file():
        raise ConfigError(f"the {encoder} encoder needs {what}: pass {what.split()[0]}=PATH (got {path})")
    return Path(path).expanduser()


class XDecoderEncoder(Encoder):
    """Per-mask X-Decoder features -> ``segments`` + ``embeddings`` (see module docstring)."""

    name = "xdecoder"

    def __init__(
        self,
        config: str | Path | None = None,
        weights: str | Path | None = None,
        device: str = "auto",
        mask_threshold: float = 0.5,
        template: str = "a {} in a scene",
    ) -> None:
        args = _import("utils.arguments", "xdecoder", "https://github.com/microsoft/X-Decoder")
        xdecoder = _import("xdecoder", "xdecoder", "https://github.com/microsoft/X-Decoder")
        base = _import("xdecoder.BaseModel", "xdecoder", "https://github.com/microsoft/X-Decoder")
        import torch

        self._torch = torch
        self.config = _need_file(config, "config (the X-Decoder YAML)", "xdecoder")
        self.weights = _need_file(weights, "weights (the X-Decoder checkpoint)", "xdecoder")
        self.device = pick_device(device)
        opt = args.load_opt_from_config_files([str(self.config)])
        model = base.BaseModel(opt, xdecoder.build_model(opt)).from_pretrained(str(self.weights))
        self.net = model.eval().to(self.device).model
        self.mask_threshold, self.template = float(mask_threshold), template

    def cache_key(self) -> str:
        st = self.weights.stat()
        return f"xdecoder-{self.weights.name}-{st.st_size}-{st.st_mtime_ns}-t{self.mask_threshold}"

    def encode(self, frame) -> FeatureMap:
        return self.encode_batch([frame])[0]

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        torch = self._torch
        x = _images(frames, torch).to(self.device)
        with torch.inference_mode():
            out = self.net.sem_seg_head(self.net.backbone((x - self.net.pixel_mean) / self.net.pixel_std))
            prob = out["pred_masks"].float().sigmoid()  # (B, Q, h, w)
            emb = torch.nn.functional.normalize(out["pred_captions"].float(), dim=-1)  # (B, Q, D)
        result = []
        for b in range(len(frames)):
            best, seg = prob[b].max(dim=0)
            seg = torch.where(best >= self.mask_threshold, seg, torch.full_like(seg, -1))
            result.append(FeatureMap(segments=seg.cpu().numpy().astype(np.int32), embeddings=emb[b].cpu().numpy()))
        return result

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        lang = self.net.sem_seg_head.predictor.lang_encoder
        with self._torch.inference_mode():
            lang.get_text_embeddings([self.template.format(p) for p in prompts], is_eval=True)
            emb = self._torch.nn.functional.normalize(lang.default_text_embeddings.float(), dim=-1)
        return emb.cpu().numpy().astype(np.float32)


class LSegEncoder(Encoder):
    """Dense LSeg pixel features (see module docstring)."""

    name = "lseg"

    def __init__(
        self,
        weights: str | Path | None = None,
        backbone: str = "clip_vitl16_384",
        device: str = "auto",
        template: str = "{}",
    ) -> None:
        mod = _import("modules.lseg_module", "lseg", "https://github.com/pengsongyou/lseg_feature_extraction")
        import torch

        self._torch = torch
        self.weights = _need_file(weights, "weights (the LSeg checkpoint, e.g. demo_e200.ckpt)", "lseg")
        self.device = pick_device(device)
        module = mod.LSegModule.load_from_checkpoint(
            checkpoint_path=str(self.weights),
            data_path="",
            dataset="ade20k",
            backbone=backbone,
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
        self.net = module.net.eval().to(self.device)
        self.backbone, self.template = backbone, template

    def cache_key(self) -> str:
        st = self.weights.stat()
        return f"lseg-{self.backbone}-{self.weights.name}-{st.st_size}-{st.st_mtime_ns}"

    def encode(self, frame) -> FeatureMap:
        return self.encode_batch([frame])[0]

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        torch = self._torch
        x = (_images(frames, torch) / 255.0 - 0.5) / 0.5  # LSeg normalises with mean = std = 0.5
        with torch.inference_mode():
            feats = self.net(x.to(self.device), "")  # (B, D, h, w)
            feats = torch.nn.functional.normalize(feats.float(), dim=1)
        return [FeatureMap(dense=f.permute(1, 2, 0).cpu().numpy().astype(np.float16)) for f in feats]

    def encode_text(self, prompts: list[str]) -> np.ndarray:
        clip = _import("clip", "lseg", "https://github.com/openai/CLIP")
        torch = self._torch
        tokens = clip.tokenize([self.template.format(p) for p in prompts]).to(self.device)
        with torch.inference_mode():
            emb = self.net.clip_pretrained.encode_text(tokens).float()
        return torch.nn.functional.normalize(emb, dim=-1).cpu().numpy().astype(np.float32)


@ENCODERS.register("xdecoder")
def _build_xdecoder(scene=None, **options) -> Encoder:
    return XDecoderEncoder(**options)


@ENCODERS.register("lseg")
def _build_lseg(scene=None, **options) -> Encoder:
    return LSegEncoder(**options)
