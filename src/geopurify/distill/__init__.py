"""Label-free distillation: contrastive sampling from a 3D teacher, InfoNCE, training loop, DDP."""

from __future__ import annotations

from ..utils.lazy import lazy_exports

_WHERE = {
    "TrainConfig": "config",
    "TrainScene": "config",
    "DistInfo": "ddp",
    "init_from_env": "ddp",
    "build_train_scene": "prepare",
    "student_voxel_inputs": "prepare",
    "voxel_inputs": "prepare",
    "ContrastiveSample": "sampler",
    "ContrastiveTable": "sampler",
    "info_nce": "sampler",
    "sample_contrastive": "sampler",
    "check_resume": "train",
    "lr_at": "train",
    "step_scenes": "train",
    "train": "train",
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
