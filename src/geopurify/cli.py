"""``geopurify`` command line. Thin: parse into config dataclasses, call :mod:`geopurify.api`.

Exit codes: 0 success, 1 unexpected error (a bug; traceback with --debug), 2 bad input data,
3 bad configuration / missing dependency or weights, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .config import LiftOptions, ReadConfig, SegmentConfig, TrainRunConfig
from .errors import ConfigError, GeoPurifyError

log = logging.getLogger("geopurify")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so bad arguments map to exit code 3."""

    def error(self, message: str):  # noqa: D401
        raise ConfigError(f"{self.prog}: {message}")


def _pos_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return v


def _nonneg_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _pos_float(text: str) -> float:
    v = float(text)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def _port(text: str) -> int:
    v = int(text)
    if not 0 < v < 65536:
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {text}")
    return v


# argparse names the type in its messages ("invalid positive int value: 'x'")
_pos_int.__name__, _nonneg_int.__name__, _pos_float.__name__, _port.__name__ = (
    "positive int", "non-negative int", "positive float", "port")


def _kv(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        for cast in (int, float):
            try:
                v = cast(v)
                break
            except ValueError:
                pass
        out[k.replace("-", "_")] = v
    return out


def _add_read(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reading")
    g.add_argument("--layout", default="auto", help="reader name (default: detect)")
    g.add_argument("--frame-skip", type=_pos_int, default=1, help="keep every n-th frame (paper: 20 on ScanNet)")
    g.add_argument("--max-frames", type=_pos_int, default=None, help="keep at most this many frames")
    g.add_argument("--depth-scale", type=_pos_float, default=None,
                   help="depth units per metre (default: the layout's own: 1000 = mm; TUM 5000; Matterport 4000)")
    g.add_argument("--voxel-fuse", type=_pos_float, default=0.02, dest="fuse_voxel_size",
                   help="voxel size (m) of the cloud fused from depth when there is no mesh")
    g.add_argument("--labels-tsv", default=None, help="ScanNet's scannetv2-labels.combined.tsv (ScanNet200 GT)")
    g.add_argument("--reader-opt", action="append", metavar="KEY=VALUE", help="reader option, e.g. camera=fr2")


def _add_lift(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("2D features and lifting")
    g.add_argument("--encoder", default="auto", help="2D encoder: auto|precomputed|clip|xdecoder|lseg|<plugin>")
    g.add_argument("--weights", default=None, help="local weights for the encoder (file or folder)")
    g.add_argument("--encoder-opt", action="append", metavar="KEY=VALUE", help="extra encoder option")
    g.add_argument("--fusion", choices=["consensus", "mean"], default="consensus",
                   help="consensus: paper's top-views fusion; mean: OpenScene's plain mean")
    g.add_argument("--top-views", type=_pos_int, default=3, help="views kept by consensus fusion")
    g.add_argument("--text", default=None, help="text embeddings .npz (names, embeddings)")
    g.add_argument("--classes", nargs="+", default=None, help="class names for the encoder's text tower")


def _read_cfg(a) -> ReadConfig:
    return ReadConfig(layout=a.layout, frame_skip=a.frame_skip, max_frames=a.max_frames, depth_scale=a.depth_scale,
                      fuse_voxel_size=a.fuse_voxel_size, labels_tsv=a.labels_tsv, reader_options=_kv(a.reader_opt))


def _lift_cfg(a) -> LiftOptions:
    opts = _kv(a.encoder_opt)
    if a.weights:
        opts["weights"] = a.weights
    return LiftOptions(encoder=a.encoder, encoder_options=opts, fusion=a.fusion, top_views=a.top_views,
                       text=a.text, classes=a.classes)


def _add_instance_options(p: argparse.ArgumentParser) -> None:
    from .instances.config import GROUPINGS, InstanceConfig

    d = InstanceConfig()
    p.add_argument("--grouping", choices=GROUPINGS, default=d.grouping,
                   help="features: superpoints merged where features agree; geometry: the geometry-only baseline")
    p.add_argument("--voxel-size", type=_pos_float, default=d.voxel_size, help="grouping voxel size (m)")
    p.add_argument("--merge-cosine", type=float, default=d.merge_cosine,
                   help="superpoints of one class merge at this mean-feature cosine or more")
    p.add_argument("--min-points", type=_pos_int, default=d.min_points, help="smallest instance, in points")
    p.add_argument("--stuff", nargs="+", default=d.stuff, help="classes that are never objects")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="geopurify", description="Open-vocabulary 3D segmentation with geometry-guided purification.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("train", help="label-free distillation of the student")
    t.add_argument("scenes", nargs="+", help="scene folders or files")
    t.add_argument("--out", required=True, help="output folder for the student")
    t.add_argument("--teacher", default="geometric", help="geometric (default)|precomputed|sonata|<plugin>")
    t.add_argument("--teacher-opt", action="append", metavar="KEY=VALUE", help="teacher option, e.g. path=t.npy")
    t.add_argument("--steps", type=_pos_int, default=None, help="training steps")
    t.add_argument("--width", type=_pos_int, default=None, help="student width")
    t.add_argument("--lr", type=_pos_float, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--voxel-size", type=_pos_float, default=0.02)
    t.add_argument("--device", default="auto")
    t.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    _add_lift(t)
    _add_read(t)

    s = sub.add_parser("segment", help="label a scene (purified with --student, raw with --no-purify)")
    s.add_argument("scene", nargs="?", help="scene folder or file")
    s.add_argument("--scenes", default=None, help="a text file of scene paths (one per line): batch mode")
    s.add_argument("--out", required=True, help="output folder (batch mode: one subfolder per scene)")
    s.add_argument("--student", default=None, help="trained student (folder or .safetensors)")
    s.add_argument("--no-purify", action="store_true", help="fusion only, no purification")
    s.add_argument("--voxel-size", type=_pos_float, default=0.02)
    s.add_argument("-k", "--k", type=_pos_int, default=96, help="neighbours per voxel (K)")
    s.add_argument("-T", "--steps", type=_nonneg_int, default=18, help="pooling iterations (T)")
    s.add_argument("--sharpen", type=_pos_float, default=20.0, help="softmax sharpening of cosine affinities")
    s.add_argument("--knn", choices=["kdtree", "stencil"], default="kdtree",
                   help="neighbour search: kdtree (exact, default) or stencil (integer grid offsets, as released)")
    s.add_argument("--no-features", action="store_true", help="skip features.npy (pools class logits only)")
    s.add_argument("--device", default="auto")
    s.add_argument("--overwrite", action="store_true", help="redo complete outputs in batch mode")
    s.add_argument("--memory-limit", default=None, help="refuse scenes estimated above this (e.g. 4G)")
    _add_lift(s)
    _add_read(s)

    from .encoders.encode import EncodeConfig

    en = sub.add_parser("encode", help="run a 2D encoder over a scene's frames into features_2d/ (resumable)")
    en.add_argument("scene", help="scene folder or file")
    en.add_argument("--encoder", required=True, help="clip|xdecoder|lseg|<plugin>")
    en.add_argument("--weights", default=None, help="local weights for the encoder (file or folder)")
    en.add_argument("--encoder-opt", action="append", metavar="KEY=VALUE", help="extra encoder option")
    en.add_argument("--out", default=None, help="output folder (default SCENE/features_2d)")
    en.add_argument("--device", default=EncodeConfig.device, help="auto|cpu|cuda|cuda:N")
    en.add_argument("--batch-size", type=_pos_int, default=EncodeConfig.batch_size, help="frames per model call")
    en.add_argument("--classes", nargs="+", default=None, help="also write text_embeddings.npz for these classes")
    en.add_argument("--overwrite", action="store_true", help="replace features written by another encoder")
    _add_read(en)

    i = sub.add_parser("inspect", help="read a scene without lifting and check it (frames, cameras, poses, features)")
    i.add_argument("scene", help="scene folder or file")
    i.add_argument("--voxel-size", type=_pos_float, default=0.02, help="voxel size (m) for the voxel count")
    i.add_argument("--encoder", default="auto", help="the 2D encoder segment would use (feature files for auto)")
    i.add_argument("--json", default=None, help="also write the report as JSON here")
    _add_read(i)

    e = sub.add_parser("eval", help="score outputs against ground truth")
    e.add_argument("out", help="a segment output folder, or a folder of them")
    e.add_argument("--gt", required=True, help="the scene (or a folder of scenes) with GT labels")
    e.add_argument("--protocol", choices=["paper", "openscene"], default="paper",
                   help="paper: 19 classes, otherfurniture ignored; openscene: all 20 with 'other'")
    e.add_argument("--label-set", default="scannet20")
    e.add_argument("--json", default=None, help="JSON output path (default OUT/eval.json)")
    e.add_argument("--instances", action="store_true",
                   help="instance AP/AP50/AP25 of OUT/instances.json against the GT instances instead")
    _add_read(e)

    q = sub.add_parser("query", help="per-point similarity of a segment output to text phrases")
    q.add_argument("out", help="segment output folder (with features.npy)")
    q.add_argument("phrases", nargs="+")
    q.add_argument("--text", default=None, help="text embeddings .npz that holds the phrases")
    q.add_argument("--encoder", default=None, help="encode phrases with this encoder's text tower")
    q.add_argument("--weights", default=None)
    g = q.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None, help="mask: points with similarity >= this")
    g.add_argument("--top", type=_pos_int, default=None, help="mask: the N most similar points")
    q.add_argument("--objects", action="store_true",
                   help="rank the instances of instances.json (run `geopurify instances OUT` first)")

    ins = sub.add_parser("instances", help="object proposals of a segment output: instances.json + instances.ply")
    ins.add_argument("out", help="segment output folder")
    _add_instance_options(ins)

    r = sub.add_parser("render", help="PNG pictures of a segment output")
    r.add_argument("out")
    r.add_argument("--gt", default=None, help="scene with GT labels, shown beside raw and purified")
    r.add_argument("--view", choices=["top", "persp", "both"], default="both")
    r.add_argument("--color", choices=["labels", "rgb"], default="labels",
                   help="labels (default; render_<view>.png) or the points' RGB (render_rgb_<view>.png)")

    v = sub.add_parser("view", help="interactive web viewer (localhost)")
    v.add_argument("out")
    v.add_argument("--port", type=_port, default=8080)
    v.add_argument("--host", default="127.0.0.1")

    se = sub.add_parser("select", help="pick the paper's data-efficient training subset")
    se.add_argument("root", help="dataset root: a folder of scene folders with GT labels")
    se.add_argument("--n", type=_pos_int, default=20)
    se.add_argument("--gamma", type=float, default=1.0)
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--label-set", default="scannet20")
    se.add_argument("--out", default="selection", help="output folder (selection.txt, scores.json)")

    sy = sub.add_parser("synth", help="synthetic rooms, or posed views of a labelled scan, in ScanNet export layout")
    sy.add_argument("out", help="output folder (with --from-scan: the scene folder to write)")
    sy.add_argument("--from-scan", default=None, metavar="SCAN",
                    help="render posed RGB-D views and simulated VLM masks of this labelled scan instead")
    sy.add_argument("--n", type=_pos_int, default=1, help="number of scenes")
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--points", type=_pos_int, default=None, help="target points per scene")
    sy.add_argument("--frames", type=_pos_int, default=None)

    d = sub.add_parser("demo", help="synthetic scenes -> train -> segment raw and purified -> eval")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--steps", type=_pos_int, default=None, help="training steps")
    return p


def _setup_logging(a) -> None:
    level = logging.DEBUG if a.verbose else logging.WARNING if a.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        parser = build_parser()
        a = parser.parse_args(argv)
        _setup_logging(a)
        if not a.command:
            parser.print_help()
            return 3
        return _run(a) or 0
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except GeoPurifyError as exc:
        if debug:
            raise
        print(f"geopurify: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("geopurify: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        print("geopurify: error: out of memory; try --no-features, a larger --voxel-size or fewer frames",
              file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            raise
        print(f"geopurify: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
              file=sys.stderr)
        return 1


def _run(a) -> int:
    if a.command == "segment" and a.no_purify == bool(a.student):
        if not a.no_purify:
            raise ConfigError("segment: pass --student PATH to purify, or --no-purify for fusion only")
        raise ConfigError("segment: --student and --no-purify exclude each other")
    from . import api

    if a.command == "train":
        cfg = TrainRunConfig(teacher=a.teacher, teacher_options=_kv(a.teacher_opt), voxel_size=a.voxel_size,
                             steps=a.steps, width=a.width, lr=a.lr, seed=a.seed, device=a.device,
                             lift=_lift_cfg(a), read=_read_cfg(a))
        api.train(a.scenes, a.out, cfg, resume=not a.no_resume)
        return 0
    if a.command == "segment":
        cfg = SegmentConfig(purify=not a.no_purify, student=a.student, voxel_size=a.voxel_size, k=a.k,
                            steps=a.steps, sharpen=a.sharpen, knn=a.knn, save_features=not a.no_features,
                            device=a.device, overwrite=a.overwrite, memory_limit=a.memory_limit, lift=_lift_cfg(a),
                            read=_read_cfg(a))
        if a.scenes:
            scenes = [ln.strip() for ln in Path(a.scenes).read_text().splitlines() if ln.strip()] \
                if Path(a.scenes).is_file() else None
            if scenes is None:
                from .errors import InputError

                raise InputError(f"{a.scenes}: scene list not found")
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
            status = api.segment_many(scenes, a.out, cfg, rank=rank, world_size=world)
            failed = [s for s, v in status.items() if v.startswith("failed")]
            log.info("rank %d: %d done, %d skipped, %d failed", rank,
                     sum(v == "done" for v in status.values()), sum(v == "skipped" for v in status.values()),
                     len(failed))
            return 2 if failed else 0
        if not a.scene:
            raise ConfigError("segment: give a SCENE or --scenes LIST")
        api.segment(a.scene, a.out, cfg)
        return 0
    if a.command == "inspect":
        rep = api.inspect(a.scene, _read_cfg(a), voxel_size=a.voxel_size, encoder=a.encoder)
        print("\n".join(rep.lines()))
        if a.json:
            from .checks import write_report

            write_report(rep, Path(a.json))
        return 0
    if a.command == "encode":
        from .encoders.encode import EncodeConfig

        opts = {**_kv(a.encoder_opt), **({"weights": a.weights} if a.weights else {})}
        res = api.encode(a.scene, EncodeConfig(encoder=a.encoder, encoder_options=opts, out=a.out, device=a.device,
                                               batch_size=a.batch_size, classes=a.classes, overwrite=a.overwrite),
                         read=_read_cfg(a))
        print(f"{res.out_dir}: {res.written} frames encoded, {res.reused} already there, "
              f"{sum(res.failed.values())} skipped, {res.seconds:.1f} s")
        return 0
    if a.command == "eval" and a.instances:
        from .eval.instance import format_instance_table

        res = api.evaluate_instances(a.out, a.gt, label_set=a.label_set, read=_read_cfg(a),
                                     json_path=a.json or Path(a.out) / "eval_instances.json")
        print(format_instance_table(res))
        return 0
    if a.command == "eval":
        from .eval import format_table

        json_path = a.json or Path(a.out) / "eval.json"
        res = api.evaluate(a.out, a.gt, protocol=a.protocol, label_set=a.label_set, read=_read_cfg(a),
                           json_path=json_path)
        print(format_table(res.scores))
        return 0
    if a.command == "query":
        res = api.query(a.out, a.phrases, text=a.text, encoder=a.encoder, weights=a.weights,
                        threshold=a.threshold, top=a.top, objects=a.objects)
        for ph, ranked in res.objects.items():
            print(f'"{ph}": ' + (", ".join(f"#{m.instance.id} {m.instance.name} {m.score:.3f}" for m in ranked[:5])
                                 or "no instances"))  # fmt: skip
        return 0
    if a.command == "instances":
        from .instances.config import InstanceConfig

        cfg = InstanceConfig(grouping=a.grouping, voxel_size=a.voxel_size, merge_cosine=a.merge_cosine,
                             min_points=a.min_points, stuff=list(a.stuff))
        found = api.instances(a.out, cfg)
        print(f"{len(found)} instances -> {Path(a.out) / 'instances.json'}")
        return 0
    if a.command == "render":
        api.render(a.out, gt=a.gt, view=a.view, color=a.color)
        return 0
    if a.command == "view":
        api.view(a.out, port=a.port, host=a.host)
        return 0
    if a.command == "select":
        api.select(a.root, a.out, n=a.n, gamma=a.gamma, seed=a.seed, label_set=a.label_set)
        return 0
    if a.command == "synth":
        api.synth(a.out, n=a.n, seed=a.seed, points=a.points, frames=a.frames, from_scan=a.from_scan)
        return 0
    if a.command == "demo":
        from .demo import run_demo

        run_demo(a.out, steps=a.steps)
        return 0
    raise ConfigError(f"unknown command {a.command!r}")


if __name__ == "__main__":
    sys.exit(main())
