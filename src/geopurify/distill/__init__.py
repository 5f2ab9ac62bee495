"""Label-free distillation: contrastive sampling from a 3D teacher, InfoNCE, training loop, DDP."""

from .config import TrainConfig, TrainScene
from .ddp import DistInfo, init_from_env
from .prepare import build_train_scene
from .sampler import ContrastiveSample, ContrastiveTable, info_nce, sample_contrastive
from .train import lr_at, step_scenes, train

__all__ = [
    "TrainConfig",
    "TrainScene",
    "DistInfo",
    "init_from_env",
    "build_train_scene",
    "ContrastiveSample",
    "ContrastiveTable",
    "info_nce",
    "sample_contrastive",
    "lr_at",
    "step_scenes",
    "train",
]
