"""The ``clip`` encoder: dense CLIP features (MaskCLIP / ClearCLIP style) with Hugging Face transformers.

CLIP's last vision block mixes every patch with the class token through query-key attention, which
washes out local semantics. Following MaskCLIP (Zhou et al., 2022) and ClearCLIP (Lan et al., 2024) the
last block is replaced: ``attention="value"`` keeps only the value path (``out_proj(v_proj(x))``),
``attention="self_self"`` uses query-query attention; with ``residual=False, ffn=False`` (ClearCLIP)
the block's residual and MLP are dropped. The patch tokens then go through ``post_layernorm`` and
``visual_projection``, the space of the text embeddings. Images are resized (short side
``short_side``), tiled by windows of the model's input size with stride ``stride``, overlapping
windows averaged on the patch grid, and the grid upsampled bilinearly to 1/``output_stride`` of
the colour image.

Upstream followed: not a port of one file. The model is Hugging Face transformers' ``CLIPModel``
(``transformers/models/clip/modeling_clip.py``; run here with transformers 5.24.0): the first blocks are
its ``CLIPEncoderLayer`` maths, only the last block is changed, as MaskCLIP (``chongzhou96/MaskCLIP``) and
ClearCLIP (``mc-lan/ClearCLIP`` at ``ad68a40``, ``clearclip_segmentor.py``: sliding windows over a resized
image, "a {} ..." prompts) describe. Per-mask mode (``masks=``) crops are embedded by the unmodified
vision tower, i.e. ``CLIPModel.get_image_features`` of the crop preprocessed as ``CLIPImageProcessor``
does with ``do_center_crop=False`` (tested equal).

Weights are never downloaded: ``weights`` is a local folder with ``config.json`` and
``model.safetensors`` (plus tokenizer files), or a Hugging Face cache folder holding
``models--<org>--<name>/snapshots/<rev>/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from pathlib import Path

import numpy as np

from ..errors import ConfigError, load_reason, missing_dependency, needs_pickle, pickle_refusal
from .base import ENCODERS, Encoder, FeatureMap

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "a {} in a scene"
# A short ensemble in the spirit of CLIP's ImageNet prompts, phrased for indoor scans.
ENSEMBLE_TEMPLATES = (
    "a {} in a scene",
    "a photo of a {}.",
    "a photo of the {} in a room.",
    "there is a {} in the scene.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a {} in an indoor scene.",
    "a blurry photo of a {}.",
)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

WEIGHTS_HELP = (
    "pass --weights PATH: a local folder with config.json, model.safetensors and the tokenizer files "
    "(e.g. `hf download openai/clip-vit-base-patch16 --local-dir PATH`; huggingface_hub < 0.34: "
    "`huggingface-cli download`), or a Hugging Face "
    "cache folder containing models--openai--clip-vit-base-patch16 (nothing is downloaded)"
)


def resolve_weights(weights: str | Path | None, model: str | None = None) -> Path:
    """The folder holding ``config.json`` for ``weights`` (local folder or HF cache folder).

    Raises ConfigError saying what to pass when nothing usable is there.
    """
    if weights is None:
        raise ConfigError(f"the clip encoder needs local weights: {WEIGHTS_HELP}")
    root = Path(weights).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"clip weights folder {root} {what}: {WEIGHTS_HELP}")
    if (root / "config.json").is_file():
        folder = root
    else:
        pattern = f"models--{model.replace('/', '--')}" if model else "models--*"
        cands = sorted(root.glob(f"{pattern}/snapshots/*/config.json")) + sorted(root.glob("snapshots/*/config.json"))
        repos = sorted({c.parent.parent.parent for c in cands})
        if not cands:
            raise ConfigError(f"no config.json in {root} nor a Hugging Face cache model under it: {WEIGHTS_HELP}")
        if len(repos) > 1:
            names = ", ".join(r.name for r in repos)
            raise ConfigError(f"{root} holds several models ({names}): choose one with model=ORG/NAME")
        ref = repos[0] / "refs" / "main"
        wanted = ref.read_text().strip() if ref.is_file() else None
        folder = next((c.parent for c in cands if c.parent.name == wanted), cands[-1].parent)
    if not any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
        raise ConfigError(f"{folder} has config.json but no model.safetensors: {WEIGHTS_HELP}")
    if not ((folder / "tokenizer.json").is_file() or all((folder / n).is_file() for n in ("vocab.json", "merges.txt"))):
        # transformers would build a tokenizer of two special tokens: every class name the same prompt
        raise ConfigError(f"{folder} has no tokenizer files (tokenizer.json, or vocab.json and merges.txt): "
                          f"{WEIGHTS_HELP}")
    return folder


class ClipEncoder(Encoder):
    """Dense CLIP features; see the module docstring.

    Args:
        weights: local folder (see :func:`resolve_weights`).
        model: ``org/name`` to pick a model inside a Hugging Face cache folder.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        attention: ``"value"`` (MaskCLIP) or ``"self_self"`` (ClearCLIP q-q attention) in the last block.
        residual, ffn: keep the last block's residual connection / MLP (both off as in ClearCLIP).
        short_side: resize the image's short side to this (default: twice the model input size).
        stride: window stride in pixels (default: half the input size, a multiple of the patch).
        output_stride: the feature map has 1/output_stride of the colour resolution.
        batch_size: windows per forward pass.
        prompt_ensemble: average text embeddings over :data:`ENSEMBLE_TEMPLATES`.
        template: the single prompt template otherwise.
        masks: ``"none"`` (dense output) or a source of class-agnostic segments, ``"felzenszwalb"``,
            ``"slic"`` (superpixels, pip extra ``masks``) or ``"folder"`` (``mask_dir``: e.g. SAM masks); see
            :mod:`geopurify.encoders.masks`. Then the output is per-mask: ``segments`` + ``embeddings``.
        mask_feature: each mask's embedding: ``"pooled"`` (the unit mean of the dense features over the
            mask) or ``"crop"`` (CLIP's own image embedding of the mask's box crop, grown by ``crop_pad``,
            resized to the input size (bicubic) as CLIP's image processor does without centre crop:
            OpenMask3D / ConceptFusion style).
        mask_short_side, n_segments: superpixel image size and SLIC's target count.
    """

    name = "clip"

    def __init__(
        self,
        weights: str | Path | None = None,
        model: str | None = None,
        device: str = "auto",
        attention: str = "value",
        residual: bool = False,
        ffn: bool = False,
        short_side: int | None = None,
        stride: int | None = None,
        output_stride: int = 4,
        batch_size: int = 8,
        prompt_ensemble: bool = False,
        template: str = DEFAULT_TEMPLATE,
        masks: str = "none",
        mask_dir: str | Path | None = None,
        mask_feature: str = "pooled",
        mask_short_side: int = 240,
        n_segments: int = 150,
        crop_pad: float = 0.1,
    ) -> None:
        from .masks import SOURCES

        if masks not in ("none", *SOURCES):
            raise ConfigError(f"clip masks must be none, {', '.join(SOURCES)}; got {masks!r}")
        if mask_feature not in ("pooled", "crop"):
            raise ConfigError(f"clip mask_feature must be 'pooled' or 'crop', got {mask_feature!r}")
        if masks == "folder" and (mask_dir is None or not Path(mask_dir).expanduser().is_dir()):
            raise ConfigError(f"clip masks=folder needs mask_dir=FOLDER of per-frame mask files (got {mask_dir})")
        if masks in ("felzenszwalb", "slic"):
            try:
                import skimage.segmentation  # noqa: F401
            except ImportError as exc:
                raise missing_dependency("scikit-image", "masks", f"clip masks={masks}") from exc
        self.masks, self.mask_feature = masks, mask_feature
        self.mask_dir = Path(mask_dir).expanduser() if mask_dir is not None else None
        self.mask_short_side, self.n_segments, self.crop_pad = int(mask_short_side), int(n_segments), float(crop_pad)
        if attention not in ("value", "self_self"):
            raise ConfigError(f"clip attention must be 'value' or 'self_self', got {attention!r}")
        if "{}" not in template:
            raise ConfigError(f"clip prompt template must contain '{{}}', got {template!r}")
        self.folder = resolve_weights(weights, model)
        try:
            import torch
            from transformers import AutoTokenizer, CLIPModel
        except ImportError as exc:
            raise missing_dependency("transformers", "clip", "the clip encoder") from exc
        self._torch = torch
        from ..utils.device import pick_device

        self.device = pick_device(device)
        from safetensors import SafetensorError

        try:
            model, info = CLIPModel.from_pretrained(self.folder, local_files_only=True, output_loading_info=True)
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        except (pickle.UnpicklingError, OSError, ValueError, RuntimeError, EOFError, SafetensorError) as exc:
            if needs_pickle(exc):
                raise ConfigError(f"{self.folder}: refused, pytorch_model.bin is not plain weights "
                                  f"({pickle_refusal(exc)})") from None
            raise ConfigError(f"cannot load CLIP from {self.folder}: {load_reason(exc, 300)}; {WEIGHTS_HELP}") from None
        missing = list(info.get("missing_keys") or []) + [str(k) for k in info.get("mismatched_keys") or []]
        if missing:  # transformers initialises them at random: features of an untrained model
            raise ConfigError(f"{self.folder}: the weights file lacks {len(missing)} of CLIP's tensors for its "
                              f"config.json (e.g. {missing[0]}): not this CLIP model's weights; {WEIGHTS_HELP}")
        self.model = model.eval().to(self.device)
        vc = self.model.config.vision_config
        self.input_size, self.patch = int(vc.image_size), int(vc.patch_size)
        self.short_side = int(short_side or 2 * self.input_size)
        stride = int(stride or self.input_size // 2)
        self.stride = max(self.patch, stride // self.patch * self.patch)
        self.output_stride = int(output_stride)
        self.batch_size = int(batch_size)
        self.attention, self.residual, self.ffn = attention, residual, ffn
        self.templates = ENSEMBLE_TEMPLATES if prompt_ensemble else (template,)
        mean, std = CLIP_MEAN, CLIP_STD
        pre = self.folder / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text())
            mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    # ---- key -----------------------------------------------------------------------------------
    def cache_key(self) -> str:
        h = hashlib.sha1((self.folder / "config.json").read_bytes())
        for n in ("model.safetensors", "pytorch_model.bin"):
            p = self.folder / n
            if p.is_file():
                st = p.stat()
                h.update(f"{n}:{st.st_size}:{st.st_mtime_ns}".encode())
        opts = (
            f"{self.attention}-r{int(self.residual)}-f{int(self.ffn)}"
            f"-s{self.short_side}-{self.stride}-o{self.output_stride}"
        )
        if self.masks != "none":
            opts += f"-m{self.masks}-{self.mask_feature}-{self.mask_short_side}-{self.n_segments}-p{self.crop_pad}"
            if self.mask_dir is not None:
                opts += f"-{self.mask_dir.resolve()}@{self.mask_dir.stat().st_mtime_ns}"
        return f"clip-{h.hexdigest()[:12]}-{opts}"

    # ---- vision --------------------------------------------------------------------------------
    def _attend(self, attn, x, queries_from_keys: bool):
        """Multi-head attention of ``attn`` (a CLIPAttention) on (B, L, E) ``x``."""
        F = self._torch.nn.functional
        B, L, E = x.shape
        H = attn.num_heads

        def heads(t):
            return t.view(B, L, H, E // H).transpose(1, 2)

        q = heads(attn.q_proj(x))
        k = heads(attn.k_proj(x)) if queries_from_keys else q
        out = F.scaled_dot_product_attention(q, k, heads(attn.v_proj(x)))
        return attn.out_proj(out.transpose(1, 2).reshape(B, L, E))

    def _block(self, layer, h):
        """A standard pre-norm CLIP encoder block (same maths as transformers' CLIPEncoderLayer)."""
        h = h + self._attend(layer.self_attn, layer.layer_norm1(h), True)
        return h + layer.mlp(layer.layer_norm2(h))

    def _last_block(self, layer, h):
        """The modified last block: value path or q-q attention, optional residual / MLP."""
        y = layer.layer_norm1(h)
        if self.attention == "value":
            a = layer.self_attn.out_proj(layer.self_attn.v_proj(y))
        else:
            a = self._attend(layer.self_attn, y, False)
        out = h + a if self.residual else a
        if self.ffn:
            out = out + layer.mlp(layer.layer_norm2(out))
        return out

    def _forward_windows(self, x):
        """(B, 3, S, S) normalised windows -> (B, g, g, D) unit patch features (g = S / patch)."""
        vm = self.model.vision_model
        h = vm.pre_layrnorm(vm.embeddings(x))
        layers = vm.encoder.layers
        for layer in layers[:-1]:
            h = self._block(layer, h)
        tokens = vm.post_layernorm(self._last_block(layers[-1], h)[:, 1:])
        feats = self.model.visual_projection(tokens)
        g = self.input_size // self.patch
        feats = self._torch.nn.functional.normalize(feats, dim=-1)
        return feats.view(x.shape[0], g, g, -1)

    def _windows(self, hw: tuple[int, int]) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """Resized size (multiples of the patch, >= input size) and window top-left corners."""
        H, W = hw
        s = self.short_side / min(H, W)
        p, S = self.patch, self.input_size
        Hr = max(S, int(round(H * s / p)) * p)
        Wr = max(S, int(round(W * s / p)) * p)

        def starts(n: int) -> list[int]:
            pos = list(range(0, n - S + 1, self.stride))
            if pos[-1] != n - S:
                pos.append(n - S)
            return pos

        return (Hr, Wr), [(y, x) for y in starts(Hr) for x in starts(Wr)]

    def encode(self, frame) -> FeatureMap:
        return self.encode_batch([frame])[0]

    def encode_batch(self, frames: list) -> list[FeatureMap]:
        """Dense maps, or per-mask maps when ``masks`` is set (see the class docstring)."""
        if self.masks == "none":
            return self._dense(frames)
        return [self._per_mask(f) for f in frames]

    def _segments(self, frame, img: np.ndarray) -> np.ndarray:
        from .masks import read_mask_file, superpixels

        if self.masks == "folder":
            seg = read_mask_file(self.mask_dir, frame.frame_id)
            if seg.shape[0] * img.shape[1] != seg.shape[1] * img.shape[0]:
                log.warning("frame %s: masks %s and image %s differ in aspect", frame.frame_id, seg.shape,
                            img.shape[:2])
        else:
            seg = superpixels(img, self.masks, short_side=self.mask_short_side, n_segments=self.n_segments)
        fg = seg >= 0
        out = np.full(seg.shape, -1, np.int32)
        if fg.any():
            _, inv = np.unique(seg[fg], return_inverse=True)  # ids of non-empty masks only, 0..S-1
            out[fg] = inv.ravel()
        return out

    def _per_mask(self, frame) -> FeatureMap:
        from .masks import mask_boxes, pooled_features

        img = np.asarray(frame.color())
        seg = self._segments(frame, img)
        if self.mask_feature == "pooled":
            emb = pooled_features(self._dense([frame])[0].dense, seg)
        else:
            emb = self.crop_embeddings(img, mask_boxes(seg, img.shape[:2], self.crop_pad))
        return FeatureMap(segments=seg, embeddings=emb)

    def crop_embeddings(self, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(S, D) float32 unit CLIP image embeddings of the (y0, x0, y1, x1) box crops of an (H, W, 3) image.

        Each crop is resized to the model's input size with PIL's bicubic filter, scaled to 0..1 and
        normalised with the model's mean/std, then goes through the unmodified vision tower (class token,
        ``post_layernorm``, ``visual_projection``): CLIP's own image embedding of the crop.
        """
        from PIL import Image

        torch = self._torch
        S = self.input_size
        crops = []
        for y0, x0, y1, x1 in boxes:
            crop = Image.fromarray(np.ascontiguousarray(img[y0:y1, x0:x1, :3])).resize((S, S), Image.BICUBIC)
            crops.append(torch.from_numpy(np.asarray(crop, np.float32) / 255.0).permute(2, 0, 1))
        if not crops:
            return np.zeros((0, int(self.model.config.projection_dim)), np.float32)
        x = (torch.stack(crops) - self.mean) / self.std
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                pooled = self.model.vision_model(pixel_values=x[i : i + self.batch_size].to(self.device)).pooler_output
                outs.append(torch.nn.functional.normalize(self.model.visual_projection(pooled).float(), dim=-1).cpu())
        return torch.cat(outs).numpy().astype(np.float32)

    def _dense(self, frames: list) -> list[FeatureMap]:
        """Dense (ceil(H/output_stride), ceil(W/output_stride), D) float16 unit features per frame."""
        torch = self._torch
        F = torch.nn.functional
        S, p = self.input_size, self.patch
        crops, owners, layouts = [], [], []
        for fi, frame in enumerate(frames):
            img = np.asarray(frame.color())
            t = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float() / 255.0
            size, corners = self._windows(img.shape[:2])
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
            t = (t - self.mean) / self.std
            layouts.append((img.shape[:2], size, corners))
            for y, x in corners:
                crops.append(t[:, :, y : y + S, x : x + S])
                owners.append(fi)
        with torch.inference_mode():
            outs = [
                self._forward_windows(torch.cat(crops[i : i + self.batch_size]).to(self.device)).float().cpu()
                for i in range(0, len(crops), self.batch_size)
            ]
        win = torch.cat(outs)
        result, w0 = [], 0
        for (H, W), (Hr, Wr), corners in layouts:
            g = S // p
            D = win.shape[-1]
            acc = torch.zeros(Hr // p, Wr // p, D)
            cnt = torch.zeros(Hr // p, Wr // p, 1)
            for j, (y, x) in enumerate(corners):
                acc[y // p : y // p + g, x // p : x // p + g] += win[w0 + j]
                cnt[y // p : y // p + g, x // p : x // p + g] += 1
            w0 += len(corners)
            grid = (acc / cnt).permute(2, 0, 1)[None]
            out_hw = (-(-H // self.output_stride), -(-W // self.output_stride))
            dense = F.interpolate(grid, size=out_hw, mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
            dense = F.normalize(dense, dim=-1)
            result.append(FeatureMap(dense=dense.numpy().astype(np.float16)))
        return result

    # ---- text ----------------------------------------------------------------------------------
    def encode_text(self, prompts: list[str]) -> np.ndarray:
        """(C, D) float32 unit embeddings of class names, averaged over the prompt templates."""
        torch = self._torch
        texts = [t.format(name) for name in prompts for t in self.templates]
        max_len = int(self.model.config.text_config.max_position_embeddings)
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.inference_mode():
            out = self.model.text_model(
                input_ids=tok["input_ids"].to(self.device), attention_mask=tok["attention_mask"].to(self.device)
            )
            emb = self.model.text_projection(out.pooler_output).float().cpu()
        emb = torch.nn.functional.normalize(emb, dim=-1).view(len(prompts), len(self.templates), -1).mean(1)
        return torch.nn.functional.normalize(emb, dim=-1).numpy().astype(np.float32)


@ENCODERS.register("clip")
def _build_clip(scene=None, **options) -> Encoder:
    return ClipEncoder(**options)


def _precheck_clip(options: dict) -> None:
    """Before any scene is read: the weights folder resolves (no model loaded)."""
    resolve_weights(options.get("weights"), options.get("model"))


_build_clip.precheck = _precheck_clip  # type: ignore[attr-defined]
