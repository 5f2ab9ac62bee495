"""``geopurify`` command line. Thin: parse into config dataclasses, call :mod:`geopurify.api`, say what was written.

Exit codes: 0 success, 1 unexpected error (a bug; traceback with --debug), 2 bad input data,
3 bad configuration / missing dependency or weights, 130 interrupted (SIGINT, Ctrl-C), 143 terminated
(SIGTERM); either way the file being written is removed and an output folder is left complete or incomplete.

Adding a subcommand: write its config dataclass in the stage (fields with defaults, an ``Attributes:``
docstring, validation in ``__post_init__``) and its function in :mod:`geopurify.api`, then append a
:class:`Command` to :data:`COMMANDS` below: ``config=`` turns every field into an option (help and
default from the dataclass), which ``run`` builds into the validated instance with
``build_config(cls, a)``; ``args=`` adds positionals and the few options that are not config fields
(paths, mode switches); ``run`` calls the API with the config and prints one line saying what it wrote.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, GeoPurifyError, InputError
from .utils.interrupt import Terminated, terminate_as_interrupt

log = logging.getLogger("geopurify")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so bad arguments map to exit code 3."""

    def error(self, message: str):  # noqa: D401
        sub = self.prog.removeprefix("geopurify").strip()
        raise ConfigError(f"{sub}: {message}" if sub else message)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the example's line breaks and shows defaults of hand-written options."""


def _kv(items: list[str] | None, what: str = "option") -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (numbers cast)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{what}: expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        out[k.strip().replace("-", "_")] = v
    return out


# --------------------------------------------------------------------------- options from dataclasses
def field_docs(cls: type) -> dict[str, str]:
    """Help text per field from the ``Attributes:`` sections of ``cls`` and its bases ("a, b: text" too)."""
    docs: dict[str, str] = {}
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__") or ""
        m = re.search(r"^\s*Attributes:\s*\n(.*?)(?:\n\s*\n|\Z)", doc, re.S | re.M)
        if not m:
            continue
        current: list[str] = []
        for line in m.group(1).splitlines():
            hit = re.match(r"^\s{4,8}([\w, ]+):\s+(.*)$", line)
            if hit and all(n.strip() in known for n in hit.group(1).split(",")):
                current = [n.strip() for n in hit.group(1).split(",")]
                for n in current:
                    docs[n] = hit.group(2).strip()
            elif current and line.strip():
                for n in current:
                    docs[n] += " " + line.strip()
    return {k: v.replace("%", "%%").replace("``", "") for k, v in docs.items()}


_SIMPLE = {"int": int, "float": float, "str": str}


def _field_kind(f: dataclasses.Field) -> str | None:
    t = str(f.type).replace("Optional[", "").replace(" | None", "").replace("None | ", "").strip()
    if t == "bool":
        return "bool"
    if t in _SIMPLE:
        return t
    if t.startswith("dict"):
        return "dict"
    if t.startswith(("list[str]", "tuple[str")):
        return "list"
    return None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_options(p: argparse.ArgumentParser, cls: type, cmd: Command, prefix: str = "",
                       group: Any = None) -> None:
    """One option per field of ``cls`` (recursing into its sections); values land in ``cfg__<path>``."""
    from .config import sections

    subs = sections(cls)
    docs = field_docs(cls)
    group = group or p
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        if path in cmd.hide or not f.init:
            continue
        if f.name in subs:
            title = cmd.groups.get(path, path)
            add_config_options(p, subs[f.name], cmd, path + ".", p.add_argument_group(title))
            continue
        kind = _field_kind(f)
        if kind is None:
            continue
        default = _default(f)
        help_ = cmd.helps.get(path) or docs.get(f.name) or f.name.replace("_", " ")
        flags = cmd.flags.get(path)
        if kind == "bool":
            flags = flags or ((f"--no-{f.name.replace('_', '-')}",) if default else (f"--{f.name.replace('_', '-')}",))
            kw: dict[str, Any] = {"action": "store_const", "const": not default}
            help_ = help_ if path in cmd.helps else f"{'turn off' if default else 'turn on'}: {help_}"
        else:
            flags = flags or (f"--{f.name.replace('_', '-')}",)
            kw = {}
            if kind == "dict":
                kw.update(action="append", metavar="KEY=VALUE")
            elif kind == "list":
                kw.update(nargs="+", metavar=re.sub("(ES|S)$", "", f.name.upper()))
            else:
                kw.update(type=_SIMPLE[kind], metavar=f.name.upper())
                if path in cmd.choices:
                    kw["choices"] = cmd.choices[path]()
                    kw.pop("metavar")
                    help_ += f" (one of: {', '.join(map(str, kw['choices']))})"
            if default not in (None, {}, []):
                help_ += f" (default: {default})"
        flags = tuple(fl for fl in flags if fl not in p._option_string_actions) or (
            f"--{prefix.rstrip('.').replace('.', '-')}-{f.name.replace('_', '-')}",)
        dest = ("cfgkv__" if kind == "dict" else "cfg__") + path.replace(".", "__")
        group.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, help=help_, **kw)


def config_values(a: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line, as a nested dict."""
    out: dict[str, Any] = {}
    for key, value in vars(a).items():
        kv = key.startswith("cfgkv__")
        if not (kv or key.startswith("cfg__")):
            continue
        *parents, leaf = key.split("__", 1)[1].split("__")
        d = out
        for part in parents:
            d = d.setdefault(part, {})
        d[leaf] = _kv(value, leaf) if kv else value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``over``; nested dicts (sections, option dicts) are merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(cls: type, a: argparse.Namespace, base: dict[str, Any] | None = None,
                 section: str | None = None) -> Any:
    """The validated config: ``base`` (e.g. a run.json's config) updated with what the command line gave.

    ``section``: build one of the command's ``extra`` sections (e.g. ``"read"``) instead of its config.
    """
    from .config import from_dict

    values = config_values(a)
    if section is not None:
        values = values.get(section, {})
    else:
        values = {k: v for k, v in values.items() if k not in getattr(a, "_extra", ())}
    return from_dict(cls, _merge(base or {}, values))


# --------------------------------------------------------------------------- commands
@dataclass
class Command:
    """One subcommand. See the module docstring for how to add one."""

    name: str
    help: str
    example: str
    run: Callable[[argparse.Namespace], int | None]
    args: Callable[[argparse.ArgumentParser], None] | None = None
    config: type | None = None
    #: field path -> option strings where ``--field-name`` is not wanted (e.g. ``"pool.k": ("-k", "--k")``)
    flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    choices: dict[str, Callable[[], list]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    hide: tuple[str, ...] = ()
    #: more config sections offered beside ``config`` (name -> dataclass), built with
    #: ``build_config(cls, a, section=name)``; e.g. ``{"read": ReadOptions}``
    extra: dict[str, type] = field(default_factory=dict)


def _layouts() -> list[str]:
    from .io import READERS

    return ["auto", *READERS.names()]


def _fusions() -> list[str]:
    from .lifting.config import FUSIONS

    return list(FUSIONS)


_READ_FLAGS = {"fuse_voxel_size": ("--voxel-fuse",), "reader_options": ("--reader-opt",)}
_LIFT_FLAGS = {"encoder_options": ("--encoder-opt",), "temperature": ("--consensus-temperature",),
               "batch_size": ("--frame-batch",)}
_GROUPS = {"read": "reading", "lift": "2D features and lifting", "pool": "purification (pooling)",
           "train": "distillation"}


def _sections_flags(*names: str) -> dict[str, tuple[str, ...]]:
    out = {}
    if "read" in names:
        out.update({f"read.{k}": v for k, v in _READ_FLAGS.items()})
    if "lift" in names:
        out.update({f"lift.{k}": v for k, v in _LIFT_FLAGS.items()})
    return out


def _knn_methods() -> list[str]:
    from .pooling.config import KNN_METHODS

    return list(KNN_METHODS)


_SECTION_CHOICES = {"read.layout": _layouts, "lift.fusion": _fusions, "pool.knn": _knn_methods}
_SECTION_HELPS = {"read.layout": "reader name; auto detects it", "read.reader_options":
                  "reader option, e.g. camera=freiburg2 (TUM); unknown keys are refused"}


def _classes_took_scene(classes: list[str] | None) -> None:
    if classes and Path(classes[-1]).exists():
        raise ConfigError(
            f"no SCENE given: --classes took {classes[-1]!r} as a class name; put SCENE before --classes, "
            "or end the class list with --"
        )


def _config_file_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", default=None, metavar="RUN_JSON",
                   help=f"rerun a run: load the config (and {what}) from its run.json; options given here override it")


def _weights(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, help="local weights of the 2D encoder (file or folder)")


def _with_weights(cfg, weights: str | None):
    if weights:
        cfg.lift.encoder_options["weights"] = weights
    return cfg


# segment ------------------------------------------------------------------
def _segment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", nargs="?", help="scene folder or file")
    p.add_argument("--scenes", default=None, metavar="LIST",
                   help="a text file of scene paths (one per line): batch mode")
    p.add_argument("--out", default=None, help="output folder (batch mode: one subfolder per scene); "
                   "default with --config: the run.json's folder")
    _weights(p)
    _config_file_args(p, "the scene")


def _scene_list(path: str) -> list[str]:
    """The scene paths of a ``--scenes`` text file: one per line, blank lines and ``#`` comments skipped."""
    lst = Path(path)
    if not lst.is_file():
        raise InputError(f"{path}: scene list not found")
    scenes = [ln.strip() for ln in lst.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not scenes:
        raise InputError(f"{path}: the scene list names no scene (one path per line)")
    return scenes


def _rerun(a: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """What ``--config RUN_JSON`` gives: the run's config (the base the options override), its run.json,
    and ``--out`` (default: the run's folder). Without ``--config``: ``{}``, ``{}``, ``--out``."""
    from .config import load_config_dict
    from .outputs import read_run

    if not a.config:
        return {}, {}, a.out
    folder = Path(a.config).parent if Path(a.config).is_file() else Path(a.config)
    return load_config_dict(a.config, a._command.name), read_run(folder) or {}, a.out or str(folder)


def _segment_run(a: argparse.Namespace) -> int:
    from . import api
    from .config import SegmentConfig

    base, run, out = _rerun(a)
    scene = a.scene or (run.get("scene") if not a.scenes else None)
    if "cfg__student" in a and "purify" not in config_values(a):
        base = {**base, "purify": True}
    if config_values(a).get("purify") is False:
        base = {**base, "student": None}
    cfg = _with_weights(build_config(SegmentConfig, a, base), a.weights)
    if not out:
        raise ConfigError("segment: pass --out FOLDER")
    if a.scenes:
        if a.scene:  # it would be ignored
            raise ConfigError(f"segment: give a SCENE or --scenes LIST, not both ({a.scene} and {a.scenes})")
        scenes = _scene_list(a.scenes)
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        status = api.segment_many(scenes, out, cfg, rank=rank, world_size=world)
        failed = {s: v for s, v in status.items() if v.startswith("failed")}
        for s, v in failed.items():
            print(f"rank {rank}: {s}: {v}", file=sys.stderr)
        print(f"rank {rank}: {sum(v == 'done' for v in status.values())} done, "
              f"{sum(v == 'skipped' for v in status.values())} skipped (complete, same scene and config), "
              f"{len(failed)} failed -> {out}")
        return 2 if failed else 0
    if not scene:
        _classes_took_scene(cfg.lift.classes)
        raise ConfigError("segment: give a SCENE or --scenes LIST")
    res = api.segment(scene, out, cfg)
    files = sorted(p.name for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
    print(f"segment: {len(res.labels)} points, {len(res.names)} classes -> {out}/ ({', '.join(files)})")
    return 0


def _segment_cmd() -> Command:
    from .config import SegmentConfig

    return Command(
        "segment", "label a scene (purified with --student, fusion only with --no-purify)",
        "geopurify segment scans/scene0011_00 --student student --out out/scene0011_00\n"
        "  geopurify segment scans/scene0011_00 --no-purify --out out/raw\n"
        "  geopurify segment --config out/scene0011_00/run.json      # rerun a run",
        _segment_run, _segment_args, SegmentConfig,
        flags={"purify": ("--no-purify",), "save_features": ("--no-features",), "pool.k": ("-k", "--k"),
               "pool.steps": ("-T", "--steps"), **_sections_flags("read", "lift")},
        helps={"purify": "fusion only, no purification", "save_features":
               "skip features.npy (pools only the C class logits: the same labels)", **_SECTION_HELPS},
        choices=_SECTION_CHOICES, groups=_GROUPS,
    )


# train --------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenes", nargs="*", help="scene folders or files")
    p.add_argument("--scenes", dest="scene_list", default=None, metavar="LIST",
                   help="a text file of scene paths (one per line), instead of or besides SCENE ...")
    p.add_argument("--out", default=None, help="output folder for the student (student.safetensors, run.json)")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    _weights(p)
    _config_file_args(p, "the scenes")


def _train_run(a: argparse.Namespace) -> int:
    from . import api
    from .config import TrainRunConfig

    base, run, out = _rerun(a)
    given = list(a.scenes) + (_scene_list(a.scene_list) if a.scene_list else [])
    scenes = given or list(run.get("scenes") or [])
    cfg = _with_weights(build_config(TrainRunConfig, a, base), a.weights)
    if not scenes:
        _classes_took_scene(cfg.lift.classes)
        raise ConfigError("train: give at least one SCENE")
    if not out:
        raise ConfigError("train: pass --out FOLDER")
    api.train(scenes, out, cfg, resume=not a.no_resume)
    print(f"train: {len(scenes)} scene(s) -> {Path(out) / 'student.safetensors'} (and run.json)")
    return 0


def _train_cmd() -> Command:
    from .config import TrainRunConfig

    return Command(
        "train", "label-free distillation of the student",
        "geopurify train scans/scene0000_00 scans/scene0001_00 --out student --steps 200",
        _train_run, _train_args, TrainRunConfig,
        flags={"teacher_options": ("--teacher-opt",), **_sections_flags("read", "lift"),
               **{f"train.{k}": (f"--{k.replace('_', '-')}",) for k in ("steps", "lr", "seed", "device", "width")}},
        helps={"teacher": "3D teacher: geometric (default, weight-free), precomputed, sonata or a plugin",
               **_SECTION_HELPS},
        choices=_SECTION_CHOICES, groups=_GROUPS,
    )


# eval / query / instances / render / view / select / synth / demo ----------
def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="a segment output folder, or a folder of them")
    p.add_argument("--gt", required=True, help="the scene (or a folder of scenes) with GT labels")
    p.add_argument("--json", default=None, help="JSON output path (default: OUT/eval.json; with --instances "
                   "OUT/eval_instances.json)")
    p.add_argument("--instances", action="store_true",
                   help="instance AP/AP50/AP25 of OUT/instances.json against the GT instances instead")


def _eval_run(a: argparse.Namespace) -> int:
    from . import api
    from .eval import format_table
    from .eval.config import EvalConfig
    from .outputs import EVAL_FILE, EVAL_INSTANCES_FILE

    cfg = build_config(EvalConfig, a)
    if a.instances:
        from .eval.instance import format_instance_table

        path = a.json or Path(a.out) / EVAL_INSTANCES_FILE
        sc = api.evaluate_instances(a.out, a.gt, cfg, json_path=path)
        print(format_instance_table(sc))
        print(f"eval: instance scores -> {path}")
        return 0
    res = api.evaluate(a.out, a.gt, cfg, json_path=a.json or Path(a.out) / EVAL_FILE)
    print(format_table(res.scores))
    print(f"eval: {len(res.scenes)} scene(s) scored -> {res.json_path}")
    return 0


def _protocols() -> list[str]:
    from .eval import PROTOCOLS

    return list(PROTOCOLS)


def _eval_cmd() -> Command:
    from .eval.config import EvalConfig

    return Command(
        "eval", "score outputs against ground truth", "geopurify eval out/scene0011_00 --gt scans/scene0011_00",
        _eval_run, _eval_args, EvalConfig, flags=_sections_flags("read"), helps=_SECTION_HELPS,
        choices={"protocol": _protocols, **_SECTION_CHOICES}, groups=_GROUPS,
    )


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="segment output folder (with features.npy)")
    p.add_argument("phrases", nargs="+", help="text phrases, e.g. 'a red office chair'")


def _query_run(a: argparse.Namespace) -> int:
    from . import api
    from .segment.config import QueryConfig

    cfg = build_config(QueryConfig, a)
    res = api.query(a.out, a.phrases, cfg)
    for ph, ranked in res.objects.items():
        print(f'"{ph}": ' + (", ".join(f"#{m.instance.id} {m.instance.name} {m.score:.3f}" for m in ranked[:5])
                             or "no instances") + f" -> {res.files[ph][0]}")  # fmt: skip
    if cfg.objects:
        return 0
    for ph in res.phrases:
        sel = ""
        if ph in res.masks:
            rule = f"top {cfg.top}" if cfg.top is not None else f"similarity >= {cfg.threshold}"
            sel = f"{len(res.masks[ph])} of {res.scores.shape[0]} points selected ({rule}); "
        print(f"query {ph!r}: {sel}wrote {', '.join(str(p) for p in res.files[ph])}")
    return 0


def _query_cmd() -> Command:
    from .segment.config import QueryConfig

    return Command("query", "per-point similarity of a segment output to text phrases",
                   "geopurify query out/scene0011_00 sofa 'a whiteboard' --top 500", _query_run, _query_args,
                   QueryConfig)


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene folder or file")
    p.add_argument("--json", default=None, help="also write the report as JSON here")


def _inspect_run(a: argparse.Namespace) -> int:
    from . import api
    from .config import InspectConfig
    from .outputs import check_out_file

    cfg = build_config(InspectConfig, a)
    if a.json:
        check_out_file(a.json, "--json")
    rep = api.inspect(a.scene, cfg)
    print("\n".join(rep.lines()))
    if a.json:
        rep.write(a.json)
        print(f"inspect: report -> {a.json}")
    if rep.refused:  # reported as usual, then the bad-input exit segment/train would give
        raise InputError(rep.refused)
    return 0


def _inspect_cmd() -> Command:
    from .config import InspectConfig

    return Command(
        "inspect", "read a scene without lifting and check it (frames, cameras, poses, features); exit 2 "
        "when segment would refuse it",
        "geopurify inspect scans/scene0011_00 --frame-skip 20", _inspect_run, _inspect_args, InspectConfig,
        flags={"k": ("-k", "--k"), **_sections_flags("read")}, helps=_SECTION_HELPS, choices=_SECTION_CHOICES,
        groups=_GROUPS,
    )


def _encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("scene", help="scene folder or file")
    p.add_argument("--weights", default=None, help="local weights for the encoder (file or folder)")


def _encode_run(a: argparse.Namespace) -> int:
    from . import api
    from .encoders.encode import EncodeConfig
    from .io import ReadOptions

    read = build_config(ReadOptions, a, section="read")
    a_cfg = build_config(EncodeConfig, a)
    if a.weights:
        a_cfg.encoder_options["weights"] = a.weights
    res = api.encode(a.scene, a_cfg, read=read)
    print(f"encode: {res.written} frames encoded, {res.reused} already there, "
          f"{sum(res.failed.values())} skipped, {res.seconds:.1f} s -> {res.out_dir}")
    return 0


def _encode_cmd() -> Command:
    from .encoders.encode import EncodeConfig

    return Command(
        "encode", "run a 2D encoder over a scene's frames into features_2d/ (resumable)",
        "geopurify encode scans/scene0011_00 --encoder clip --weights clip-vit-b16 --classes chair table",
        _encode_run, _encode_args, EncodeConfig,
        flags={"encoder_options": ("--encoder-opt",), **_sections_flags("read")},
        helps={"encoder": "2D encoder: clip, xdecoder, lseg or a plugin", **_SECTION_HELPS},
        choices=_SECTION_CHOICES, groups=_GROUPS, extra={"read": _read_options()},
    )


def _instances_run(a: argparse.Namespace) -> int:
    from . import api
    from .instances.config import InstanceConfig
    from .outputs import INSTANCES_FILE, INSTANCES_PLY

    found = api.instances(a.out, build_config(InstanceConfig, a))
    print(f"instances: {len(found)} instances -> {Path(a.out) / INSTANCES_FILE}, {Path(a.out) / INSTANCES_PLY}")
    return 0


def _instances_cmd() -> Command:
    from .instances.config import GROUPINGS, InstanceConfig

    return Command(
        "instances", "object proposals of a segment output: instances.json + instances.ply",
        "geopurify instances out/scene0011_00 --grouping features", _instances_run, _out_arg,
        InstanceConfig, choices={"grouping": lambda: list(GROUPINGS)},
    )


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="segment output folder")


def _render_args(p: argparse.ArgumentParser) -> None:
    _out_arg(p)
    p.add_argument("--gt", default=None, help="scene with GT labels, shown beside raw and purified")


def _render_run(a: argparse.Namespace) -> int:
    from . import api
    from .viz.config import RenderConfig

    paths = api.render(a.out, gt=a.gt, config=build_config(RenderConfig, a))
    print(f"render: wrote {', '.join(map(str, paths))}")
    return 0


def _render_cmd() -> Command:
    from .viz.config import COLORS, VIEWS, RenderConfig

    return Command("render", "PNG pictures of a segment output",
                   "geopurify render out/scene0011_00 --gt scans/scene0011_00", _render_run, _render_args,
                   RenderConfig, choices={"view": lambda: list(VIEWS), "color": lambda: list(COLORS)})


def _view_run(a: argparse.Namespace) -> int:
    from . import api
    from .viz.config import ViewConfig

    # the line is printed once the server listens: viser takes the next port when --port is taken
    viewer = api.view(a.out, build_config(ViewConfig, a), block=False)
    try:
        print(f"view: serving {a.out} on {viewer.url} (Ctrl-C to stop)", flush=True)
        viewer.wait()
    except KeyboardInterrupt as exc:  # Ctrl-C just after the line, before wait() had taken Ctrl-C over
        viewer.stop()  # (wait() stopped the server already when it raised SIGTERM on)
        if isinstance(exc, Terminated):  # SIGTERM: exit 143, as every command
            raise
    return 0


def _view_cmd() -> Command:
    from .viz.config import ViewConfig

    return Command("view", "interactive web viewer (localhost)", "geopurify view out/scene0011_00 --port 8080",
                   _view_run, _out_arg, ViewConfig)


def _select_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="dataset root: a folder of scene folders with GT labels")
    p.add_argument("--out", default="selection", help="output folder (selection.txt, scores.json)")


def _select_run(a: argparse.Namespace) -> int:
    from . import api
    from .eval.config import SelectConfig

    sel = api.select(a.root, a.out, build_config(SelectConfig, a))
    n = len(sel.chosen)
    print(f"select: {n} scene{'' if n == 1 else 's'} -> {Path(a.out) / 'selection.txt'}, {Path(a.out) / 'scores.json'}")
    return 0


def _select_cmd() -> Command:
    from .eval.config import SelectConfig

    return Command("select", "pick the paper's data-efficient training subset", "geopurify select scans --n 20",
                   _select_run, _select_args, SelectConfig)


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="output folder (one scene folder per room; with --from-scan: the scene folder)")


def _synth_run(a: argparse.Namespace) -> int:
    from . import api
    from .synthetic.config import SynthConfig

    paths = api.synth(a.out, build_config(SynthConfig, a))
    print(f"synth: {len(paths)} scene(s) -> {', '.join(map(str, paths))}")
    return 0


def _synth_cmd() -> Command:
    from .synthetic.config import SynthConfig

    return Command("synth", "write synthetic rooms in ScanNet export layout", "geopurify synth rooms --n 3",
                   _synth_run, _synth_args, SynthConfig, flags={"from_scan": ("--from-scan",)})


def _demo_args(p: argparse.ArgumentParser) -> None:
    from .distill.config import TrainConfig

    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--steps", type=int, default=TrainConfig.steps, help="training steps, as `geopurify train`'s")


def _demo_run(a: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(a.out, steps=a.steps)
    print(f"demo: wrote {a.out}/")
    return 0


def _read_options() -> type:
    from .io import ReadOptions

    return ReadOptions


def commands() -> list[Command]:
    """Every subcommand, in ``--help`` order."""
    return [
        _train_cmd(),
        _segment_cmd(),
        _inspect_cmd(),
        _encode_cmd(),
        _eval_cmd(),
        _query_cmd(),
        _instances_cmd(),
        _render_cmd(),
        _view_cmd(),
        _select_cmd(),
        _synth_cmd(),
        Command("demo", "synthetic scenes -> train -> segment raw and purified -> eval",
                "geopurify demo --out demo_out", _demo_run, _demo_args),
    ]


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    p = _Parser(prog="geopurify", formatter_class=_Formatter,
                description="Open-vocabulary 3D segmentation with geometry-guided purification.",
                epilog="example:\n  geopurify segment scans/scene0011_00 --student student --out out/scene0011_00")
    p.add_argument("--version", action="version", version=f"geopurify {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for cmd in commands():
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, formatter_class=_Formatter,
                            epilog=f"example:\n  {cmd.example}")
        if cmd.args:
            cmd.args(sp)
        if cmd.config:
            add_config_options(sp, cmd.config, cmd)
        for name, cls in cmd.extra.items():
            add_config_options(sp, cls, cmd, name + ".", sp.add_argument_group(cmd.groups.get(name, name)))
        sp.set_defaults(_command=cmd, _extra=tuple(cmd.extra))
    return p


def _setup_logging(a) -> None:
    from .utils.progress import BarSafeHandler, set_quiet

    set_quiet(a.quiet)  # -q: warnings and errors only, no progress bars either
    level = logging.DEBUG if a.verbose else logging.WARNING if a.quiet else logging.INFO
    handler = BarSafeHandler(sys.stderr)  # log lines around the progress bars, never onto one
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # other libraries say only warnings (torch logs INFO lines at exit, for one), unless -v
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("geopurify").setLevel(level)


#: what to try after an out-of-memory error, by command (only options that command has)
_MEMORY_HINTS = {
    "segment": "--no-features, a larger --voxel-size or fewer frames (--frame-skip, --max-frames)",
    "train": "a smaller --crop, a larger --voxel-size or fewer frames (--frame-skip)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    command = None
    try:
        parser = build_parser()
        a = parser.parse_args(argv)
        command = a.command
        _setup_logging(a)
        if not a.command:
            parser.print_help()
            return 3
        with terminate_as_interrupt():  # SIGTERM unwinds as Ctrl-C does: no temporary file left behind
            return a._command.run(a) or 0
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except GeoPurifyError as exc:
        if debug:
            raise
        print(f"geopurify: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            print("geopurify: terminated (SIGTERM)", file=sys.stderr)
            return 143
        print("geopurify: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        hint = _MEMORY_HINTS.get(command, "a larger --voxel-size or fewer frames, where the command has them")
        print(f"geopurify: error: out of memory; try {hint}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        print(f"geopurify: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
