"""Label-free distillation of the Student Affinity Network from a frozen 3D teacher."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, InputError, load_reason, needs_pickle, pickle_refusal
from ..student import AffinityNet, StudentConfig, build_kernel_map
from ..student import save as save_student
from ..student.checkpoint import TRAIN_CHECKPOINT
from ..student.sparse_conv import KernelMap
from ..utils.atomic import atomic_path, write_json
from ..utils.interrupt import deferred_interrupt
from ..utils.progress import bar_disable
from . import ddp
from .config import TrainConfig, TrainScene
from .sampler import (
    ContrastiveSample,
    ContrastiveTable,
    LocalTargets,
    crop_sites,
    info_nce,
    local_affinity_loss,
    local_targets,
    sample_contrastive,
)

log = logging.getLogger(__name__)

CHECKPOINT_NAME = TRAIN_CHECKPOINT  # the name student.load recognises as an unfinished run
#: TrainConfig fields a resumed run may change: how long it runs and how it reports, not what it learns
#: (a longer ``steps`` continues the run; the cosine schedule is then that of the new length)
_RESUMABLE_KEYS = ("steps", "checkpoint_every", "log_every", "device")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up, then cosine decay from ``lr`` towards 0."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(config.steps - config.warmup, 1)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * (step - config.warmup) / span))


def step_scenes(step: int, num_scenes: int, config: TrainConfig) -> list[int]:
    """Global scene indices of ``step``: all scenes, or ``scenes_per_step`` drawn from (seed, step).

    The same on every rank and in a single process, whatever the world size: under DDP each rank
    computes the ones it owns (:func:`geopurify.distill.ddp.owns`).
    """
    k = num_scenes if config.scenes_per_step <= 0 else min(config.scenes_per_step, num_scenes)
    if k == num_scenes:
        return list(range(num_scenes))
    return np.random.default_rng([config.seed, step]).choice(num_scenes, size=k, replace=False).tolist()


def _sample_generator(config: TrainConfig, step: int, scene_index: int) -> torch.Generator:
    # a seed per (run, step, scene): ranks, resumed runs and single-process runs draw the same anchors
    return torch.Generator().manual_seed(int(config.seed) * 1_000_003 + step * 7919 + scene_index)


@dataclass
class _Batch:
    """One scene's share of a step: sites (coords (S, 3), inputs (S, C), their kernel map) and the sample."""

    coords: torch.Tensor
    inputs: torch.Tensor
    kmap: KernelMap
    sample: ContrastiveSample
    local: LocalTargets | None = None  # with TrainConfig.local_weight > 0


class _SceneTensors:
    """Device tensors and the kernel map of one scene, built on first use."""

    def __init__(self, scene: TrainScene, device: torch.device, config: TrainConfig) -> None:
        self.scene = scene
        self.config = config
        self.coords = torch.as_tensor(np.asarray(scene.coords, dtype=np.int64), device=device)
        self.inputs = torch.as_tensor(np.asarray(scene.inputs, dtype=np.float32), device=device)
        self.teacher = torch.as_tensor(np.asarray(scene.teacher, dtype=np.float32), device=device)
        # anchors spread over the teacher's segments (CPU: draw_anchors samples there)
        spread = config.anchor_spread == "superpoint"
        self.segments = torch.as_tensor(np.asarray(scene.segments, dtype=np.int64)) if spread else None
        self.table: ContrastiveTable | None = None
        # the per-voxel table costs one pass over V anchors; worth it once the run samples more than that
        # (not with crops: there each step's candidates are the crop's voxels)
        self.crop = config.crop if scene.num_voxels > config.crop_above else 0.0
        # a cropped scene builds each crop's kernel map in batch(); the whole scene's would go unused
        self.kmap = build_kernel_map(self.coords) if self.crop <= 0 else None
        if self.crop <= 0 and config.steps * min(config.anchors, scene.num_voxels) > 2 * scene.num_voxels:
            c = config
            self.table = ContrastiveTable.build(
                self.teacher, scene.centers, c.macro_negatives, c.micro_negatives, c.micro_pool,
                local_positives=c.local_positives,
            )

    def batch(self, generator: torch.Generator) -> _Batch:
        """The step's sites of this scene (all of them, or a random crop) and their contrastive sample."""
        if self.crop <= 0:
            sample = self.sample(generator)
            return _Batch(self.coords, self.inputs, self.kmap, sample, self._local(self.teacher, self.scene.centers,
                                                                                  sample))  # fmt: skip
        sel = crop_sites(self.scene.centers, self.crop, generator)
        sel_t = torch.from_numpy(sel).to(self.coords.device)
        coords = self.coords[sel_t]
        segments = self.segments[torch.from_numpy(sel)] if self.segments is not None else None
        sample = self._draw(self.teacher[sel_t], self.scene.centers[sel], generator, segments)
        local = self._local(self.teacher[sel_t], self.scene.centers[sel], sample)
        return _Batch(coords, self.inputs[sel_t], build_kernel_map(coords), sample, local)

    def _local(self, teacher: torch.Tensor, centers: np.ndarray, sample: ContrastiveSample) -> LocalTargets | None:
        if self.config.local_weight <= 0:
            return None
        return local_targets(teacher, centers, sample.anchors, self.config.micro_pool)

    def sample(self, generator: torch.Generator):
        c = self.config
        if self.table is not None:
            return self.table.sample(c.anchors, generator, self.segments)
        return self._draw(self.teacher, self.scene.centers, generator, self.segments)

    def _draw(self, teacher: torch.Tensor, centers: np.ndarray, generator: torch.Generator,
              segments: torch.Tensor | None = None):  # fmt: skip
        """A contrastive sample of these sites at the config's counts (no precomputed table)."""
        c = self.config
        return sample_contrastive(teacher, centers, c.anchors, c.macro_negatives, c.micro_negatives, c.micro_pool,
                                  generator=generator, local_positives=c.local_positives,
                                  segments=segments)  # fmt: skip


def _read_checkpoint(path: Path) -> dict:
    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError) as exc:
        if needs_pickle(exc):
            raise ConfigError(f"{path}: refused, the checkpoint is not plain weights ({pickle_refusal(exc)})") from None
        raise InputError(f"{path}: unreadable checkpoint ({load_reason(exc)})") from None
    if not isinstance(ck, dict) or not {"step", "model", "optimizer", "config"} <= set(ck):
        raise InputError(f"{path}: not a geopurify training checkpoint (needs step, model, optimizer, config)")
    return ck


_RESTART = "use another --out, or --no-resume (resume=False) to restart"


def _load_checkpoint(path: Path, student_cfg: StudentConfig, config: TrainConfig, context: dict) -> dict:
    """The checkpoint at ``path`` when this run may continue it: same student, same training settings
    (but :data:`_RESUMABLE_KEYS`), same ``context`` (scenes and the data settings), step within ``steps``."""
    ck = _read_checkpoint(path)
    if ck["config"] != dataclasses.asdict(student_cfg):
        raise ConfigError(
            f"{path}: checkpoint student config {ck['config']} differs from this run's "
            f"{dataclasses.asdict(student_cfg)}; {_RESTART}"
        )
    _check_settings(path, ck, config, context)
    return ck


def check_resume(out_dir: str | os.PathLike | None, config: TrainConfig, context: dict | None = None,
                 resume: bool = True) -> None:
    """The resume check of :func:`train` that needs no scene, run before the scenes are prepared: a
    checkpoint in ``out_dir`` of other training settings or ``context`` (the keys given; the scene names
    are compared by :func:`train` once the scenes are read), or past ``config.steps``, is refused.

    Raises:
        ConfigError: as :func:`train` would, naming what differs.
        InputError: an unreadable checkpoint.
    """
    path = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
    if path is None or not resume or not path.exists():
        return
    _check_settings(path, _read_checkpoint(path), config, dict(context or {}))


def _check_settings(path: Path, ck: dict, config: TrainConfig, context: dict) -> None:
    restart = _RESTART
    # a checkpoint of other settings or scenes would be "resumed" into a student that run.json then
    # describes wrongly (a finished one trains 0 more steps), so it is refused, naming what differs
    old, now = {**ck.get("train_config", {}), **ck.get("context", {})}, {**dataclasses.asdict(config), **context}
    diff = [k for k in now if k not in _RESUMABLE_KEYS and k in old and old[k] != now[k]]
    if diff:
        shown = "; ".join(f"{k}: {_short(old[k])} then, {_short(now[k])} now" for k in diff)
        raise ConfigError(f"{path}: checkpoint was trained with different settings ({shown}); {restart}")
    if int(ck["step"]) > config.steps:
        raise ConfigError(f"{path}: checkpoint is at step {int(ck['step'])}, past this run's steps={config.steps}; "
                          f"pass --steps {int(ck['step'])} or more, or {restart.split(', or ')[1]}")


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _save_checkpoint(
    path: Path, model: AffinityNet, opt: torch.optim.Optimizer, step: int, config: TrainConfig, losses: list[float],
    context: dict | None = None,
) -> None:
    state = {
        "context": dict(context or {}),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "config": dataclasses.asdict(model.config),
        "train_config": dataclasses.asdict(config),
        "losses": [float(x) for x in losses],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    log.info("checkpoint at step %d -> %s", step, path)


def _local_scenes(scenes: Sequence[TrainScene | None], info: ddp.DistInfo) -> dict[int, TrainScene]:
    """This rank's scenes by global index; checks (collectively) that every rank has its share."""
    error = None
    if not scenes:
        error = InputError("train: no scenes given")
    else:
        missing = [i for i in ddp.shard(len(scenes), info) if scenes[i] is None]
        if missing:
            error = InputError(f"train: scene {missing[0]} of this rank's share was not prepared")
    ddp.raise_if_any(error, info)
    return {i: scenes[i] for i in ddp.shard(len(scenes), info)}


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    # a zero gradient rather than None for unused parameters: a rank without a scene in a step (and one
    # process) then gives AdamW the same inputs as every other rank
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return [p.grad for p in model.parameters()]


def train(
    scenes: Sequence[TrainScene | None],
    config: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    context: dict | None = None,
) -> AffinityNet:
    """Distil a student from ``scenes`` (no labels).

    Each step draws the step's scenes (:func:`step_scenes`); per scene it samples anchors, positives and
    negatives from the teacher with a generator seeded by (seed, step, scene index)
    (:func:`sample_contrastive`), and the loss is the mean of InfoNCE over the step's scenes; AdamW with
    warm-up + cosine schedule.

    Under torch.distributed (:func:`ddp.process_group`), ``scenes`` is the global list in which only this
    rank's share (:func:`ddp.shard`: scenes ``rank, rank + W, ...``) must be present, the others may be
    ``None``. Each rank computes the losses of its scenes of the step, divided by the step's global scene
    count, and one all-reduce sums gradients and loss: every rank then takes the same AdamW step, the one
    a single process takes over the combined batch (to float summation order). Rank 0 reads the checkpoint
    and hands it to the others, and alone writes.

    With ``out_dir``: atomic ``checkpoint.pt`` (model, optimizer, step; ``weights_only`` loadable) every
    ``checkpoint_every`` steps, resumed from when ``resume``; the final ``student.safetensors`` and
    ``train_log.json``. A checkpoint is resumed only by a run of the same scenes (by name, in order), the
    same settings but ``steps`` / ``checkpoint_every`` / ``log_every`` / ``device``, and the same
    ``context`` (JSON-able settings the scenes were prepared with: teacher, lifting, reading); else
    ConfigError. Returns the trained student, on the CPU, in eval mode (on every rank).
    """
    config = config or TrainConfig()
    info = ddp.current()
    local = _local_scenes(scenes, info)
    in_dims = set().union(*ddp.all_gather({int(np.asarray(s.inputs).shape[1]) for s in local.values()}, info))
    if len(in_dims) != 1:
        raise InputError(f"train: scenes have different input widths {sorted(in_dims)}")
    if config.anchor_spread == "superpoint":
        bare = [s.name for s in local.values() if s.segments is None]
        # collective, so the other ranks stop too instead of waiting in the next gather
        ddp.raise_if_any(ConfigError(
            f"train: anchor_spread=superpoint needs the teacher's segments, and scene {bare[0]} has none "
            "(use the geometric teacher's combined, superpoint or semantic variant)"
        ) if bare else None, info)  # fmt: skip
    meta = ddp.gather_dict({i: {"name": s.name, "voxels": s.num_voxels} for i, s in local.items()}, info)
    context = {**(context or {}), "scenes": [meta[i]["name"] for i in sorted(meta)]}
    device = ddp.rank_device(config.device, info.local_rank)
    student_cfg = StudentConfig(in_dim=in_dims.pop(), width=config.width, out_dim=config.out_dim, blocks=config.blocks)
    torch.manual_seed(config.seed)
    model = AffinityNet(student_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    out = Path(out_dir) if out_dir is not None else None
    ck_path = out / CHECKPOINT_NAME if out is not None else None

    def read_checkpoint() -> dict | None:
        if ck_path is None or not resume or not ck_path.exists():
            return None
        return _load_checkpoint(ck_path, student_cfg, config, context)

    ck = ddp.on_main(read_checkpoint, info)  # the other ranks need not see rank 0's disk
    start, losses = 0, []
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, losses = int(ck["step"]), list(ck.get("losses", []))
        log.info("resuming from %s at step %d", ck_path, start)
    else:
        ddp.broadcast_(list(model.state_dict().values()), info)  # one start even if ranks' RNGs differ

    cache: dict[int, _SceneTensors] = {}
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(
        range(start, config.steps),
        desc="distil",
        disable=bar_disable() if info.is_main else True,
        initial=start,
        total=config.steps,
    )
    done = saved = start  # steps taken, and the step of the last checkpoint written
    try:
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config)
            batch = step_scenes(step, len(scenes), config)
            opt.zero_grad(set_to_none=True)
            step_loss = torch.zeros(1, device=device)
            for si in batch:
                if si not in local:
                    continue
                if si not in cache:
                    cache[si] = _SceneTensors(local[si], device, config)
                st = cache[si]
                b = st.batch(_sample_generator(config, step, si))
                emb = model(b.coords, b.inputs, b.kmap)
                w = config.local_weight
                loss = info_nce(emb, b.sample, config.temperature) * (1.0 - w) if w < 1 else 0.0
                if b.local is not None:
                    loss = loss + w * local_affinity_loss(emb, b.sample.anchors, b.local, config.local_sharpen)
                loss = loss / len(batch)
                loss.backward()
                step_loss += loss.detach()
            ddp.all_reduce_sum_([*_grads(model), step_loss], info)  # sums over ranks = the combined batch's mean
            with deferred_interrupt():  # a Ctrl-C lands between steps: the model and AdamW agree on `done`
                opt.step()
                losses.append(float(step_loss))
                if not math.isfinite(losses[-1]):  # the same all-reduced loss on every rank: all stop together
                    raise ConfigError(
                        f"training diverged at step {step + 1}: the loss is {losses[-1]}; lower --lr (now "
                        f"{config.lr:g}). Nothing was saved at or after this step"
                    )
                done = step + 1
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if info.is_main and (step % max(config.log_every, 1) == 0 or step == config.steps - 1):
                log.info(
                    "step %d/%d loss %.4f lr %.2e (%.2f s/step)",
                    step + 1,
                    config.steps,
                    losses[-1],
                    lr_at(step, config),
                    (time.perf_counter() - t0) / (step + 1 - start),
                )
            if (
                ck_path is not None
                and info.is_main
                and config.checkpoint_every > 0
                and (step + 1) % config.checkpoint_every == 0
            ):
                _save_checkpoint(ck_path, model, opt, step + 1, config, losses, context)
                saved = step + 1
    except KeyboardInterrupt:
        # Ctrl-C: the steps taken since the last checkpoint are kept, so the same command resumes here
        if ck_path is not None and info.is_main and done > saved:
            _save_checkpoint(ck_path, model, opt, done, config, losses, context)
            # under --no-resume the same command would ignore this checkpoint and start again at step 0
            how = "rerun the same command to resume" if resume else "rerun it without --no-resume to resume"
            log.warning("interrupted after step %d of %d: checkpoint -> %s; %s", done, config.steps, ck_path, how)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    if out is not None and info.is_main:
        periodic = config.checkpoint_every > 0 and config.steps % config.checkpoint_every == 0
        if start < config.steps and not periodic:  # the loop already wrote the last step otherwise
            _save_checkpoint(ck_path, model, opt, config.steps, config, losses, context)
        save_student(model, out / "student.safetensors")
        write_json(
            out / "train_log.json",
            {
                "train_config": dataclasses.asdict(config),
                "student_config": dataclasses.asdict(student_cfg),
                "losses": losses,
                "resumed_from": start,
                "seconds": seconds,
                "world_size": info.world_size,
                "scenes": [meta[i] for i in sorted(meta)],
            },
        )
    ddp.barrier(info)  # the files exist for every rank once train returns
    log.info("distilled %d steps in %.1f s", config.steps - start, seconds)
    return model.cpu()
