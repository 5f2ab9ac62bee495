"""RGB-D capture readers without a mesh: 7-Scenes, TUM RGB-D and a generic YAML description.

The cloud to label is fused from depth (:func:`geopurify.io.fusion.fuse_depth`) unless the folder
holds a mesh (``<name>.ply`` or a single ``*.ply``). Poses are camera-to-world, OpenCV axes.

7-Scenes (``"7scenes"``)::

    <scene>/ [seq-01/] frame-000000.color.png|jpg  frame-000000.depth.png (uint16 mm, 65535 = invalid)
             frame-000000.pose.txt (4x4 camera-to-world)  [camera-intrinsics.txt (3x3)]

  Default intrinsics fx = fy = 585, cx = 320, cy = 240. Sequences ``seq-*`` are read in order
  (frame ids ``seq-01_000000``).

TUM RGB-D (``"tum"``)::

    <sequence>/ rgb.txt  depth.txt  groundtruth.txt (timestamp tx ty tz qx qy qz qw)  rgb/  depth/

  Each colour image is paired with the nearest depth image and the nearest ground-truth pose within
  0.02 s (frames without both are skipped as ``"no_match"``). Depth is 1/5000 m. Intrinsics: a
  ``intrinsics.txt`` in the folder (``fx fy cx cy`` or 3x3), else the Freiburg camera named in
  the folder (``freiburg1|2|3``), else the ROS default (525, 525, 319.5, 239.5).

Generic (``"generic"``): ``geopurify.yaml`` in the folder, or the YAML path itself::

    color: color/*.jpg            # globs relative to the YAML's folder, matched in natural order
    depth: depth/*.png
    pose: pose/*.txt              # one 4x4 per file, or one trajectory file: 16 or 12 numbers per line
                                  # (row-major 4x4 / 3x4, Replica and KITTI) or TUM "t tx ty tz qx qy qz qw"
    pose_pairing: auto            # order | index (number in the file name = pose line) | timestamp
    pose_tolerance: 0.02          # seconds, for timestamp pairing
    depth_scale: 1000             # depth units per metre (--depth-scale overrides it)
    intrinsics: {fx: 585, fy: 585, cx: 320, cy: 240}   # or a path to a 3x3/4x4 text file
    depth_intrinsics: ...         # optional, defaults to intrinsics
    pose_convention: camera_to_world   # or world_to_camera
    camera: opencv                # or opengl (y up, z backwards: flipped to OpenCV)
    mesh: scene.ply               # optional; else the cloud is fused from depth
    name: my_scene                # optional

  Frame ids (the ``<id>`` of ``features_2d/<id>.npz``) are the colour files' stems. Colour and depth
  pair by order when their globs match as many files, else by stem or by the number in the name.
  Pose forms and pairing rules: :mod:`geopurify.io.poses`.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from .frames import FrameCandidate, assemble_frames, depth_file_loader, native_scale, natural_key
from .fusion import fuse_depth
from .gravity import level_scene
from .images import intrinsics_3x3, read_matrix
from .ply import find_mesh, read_ply
from .poses import PosePairing, associate, name_index, pair_poses, quat_to_pose, read_pose_files
from .registry import READERS, Reader, ReadOptions
from .scene import Scene

log = logging.getLogger(__name__)

SEVEN_SCENES_K = np.array([[585.0, 0, 320.0], [0, 585.0, 240.0], [0, 0, 1]])
TUM_INTRINSICS = {  # fx, fy, cx, cy of the TUM RGB-D cameras (vision.in.tum.de file formats page)
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
    "ros_default": (525.0, 525.0, 319.5, 239.5),
}
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def geometry_for(scene: Scene, mesh: Path | None, options: ReadOptions, z_up: bool = False, **fuse_kwargs) -> None:
    """Fill scene.points/colors/normals from ``mesh`` when given, else fuse them from the frames.

    A fused cloud is levelled (:func:`~.gravity.level_scene`, ``options.level``) unless ``z_up``: the
    layout's world is z up by definition (ScanNet, ``.sens``), whatever its cameras look like."""
    if mesh is not None:
        ply = read_ply(mesh)
        if ply.colors is None:
            raise InputError(f"{mesh}: vertices have no colour (red/green/blue properties)")
        scene.points, scene.colors, scene.faces = ply.points, ply.colors, ply.faces
        scene.normals = ply.vertex_normals()
        scene.meta["mesh"] = str(mesh)
        return
    if not scene.frames:
        raise InputError(f"{scene.root}: no usable frames to build a point cloud from (and no mesh)")
    if options.before_fusion is not None:
        options.before_fusion(scene)
    cloud = fuse_depth(scene.frames, voxel_size=options.fuse_voxel_size, **fuse_kwargs)
    scene.points, scene.colors, scene.normals = cloud
    scene.meta["fused_from_depth"] = {"frames": len(scene.frames), "voxel_size": options.fuse_voxel_size}
    if options.level and not z_up:  # every later stage takes z as up; the cloud's frame is ours to choose here
        level_scene(scene)


def _empty_scene(name: str, root: Path, layout: str) -> Scene:
    z = np.zeros((0, 3), np.float32)
    return Scene(name=name, points=z, colors=z.copy(), root=root, meta={"layout": layout})


# --------------------------------------------------------------------------- 7-Scenes


@READERS.register("7scenes")
class SevenScenesReader(Reader):
    """Microsoft 7-Scenes: a folder of ``frame-XXXXXX.{color,depth,pose}`` files or ``seq-*`` folders."""

    name = "7scenes"

    def detect(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        if next(path.glob("frame-*.pose.txt"), None) is not None:
            return True
        return any(next(s.glob("frame-*.pose.txt"), None) is not None for s in path.glob("seq-*"))

    def read(self, path: Path, options: ReadOptions) -> Scene:
        if not self.detect(path):
            raise InputError(f"{path}: not a 7-Scenes folder (no frame-XXXXXX.pose.txt files)")
        seqs = [path] if next(path.glob("frame-*.pose.txt"), None) else sorted(
            (s for s in path.glob("seq-*") if s.is_dir()), key=lambda p: natural_key(p.name)
        )
        entries: list[tuple[str, Path, Path]] = []  # (frame id, folder, stem)
        for seq in seqs:
            for pose_file in sorted(seq.glob("frame-*.pose.txt"), key=lambda p: natural_key(p.name)):
                stem = pose_file.name[: -len(".pose.txt")]
                num = stem[len("frame-") :]
                fid = num if seq == path else f"{seq.name}_{num}"
                entries.append((fid, seq, seq / stem))
        K = self._intrinsics(path, seqs)
        scale = native_scale(options, 1000.0)
        scene = _empty_scene(path.name, path, "7scenes")
        loader = depth_file_loader(scale, invalid=65535)

        def candidate(i: int) -> FrameCandidate:
            fid, _, stem = entries[i]
            color = next((Path(f"{stem}.color{e}") for e in (".png", ".jpg") if Path(f"{stem}.color{e}").is_file()),
                         Path(f"{stem}.color.png"))
            return FrameCandidate(fid, Path(f"{stem}.pose.txt"), color=color, depth=Path(f"{stem}.depth.png"),
                                  K_color=K, depth_loader=loader)

        scene.frames = assemble_frames(scene, len(entries), options, candidate)
        geometry_for(scene, find_mesh(path), options)
        scene.meta["depth_scale"] = scale
        return scene

    @staticmethod
    def _intrinsics(path: Path, seqs: list[Path]) -> np.ndarray:
        for folder in [path, *seqs]:
            f = folder / "camera-intrinsics.txt"
            if f.is_file():
                try:
                    return intrinsics_3x3(read_matrix(f))
                except (OSError, ValueError) as exc:
                    raise InputError(f"{f}: cannot read intrinsics ({exc})") from None
        log.info("%s: no camera-intrinsics.txt, using the 7-Scenes default (585, 585, 320, 240)", path)
        return SEVEN_SCENES_K.copy()


# --------------------------------------------------------------------------- TUM RGB-D


def read_tum_list(path: Path, columns: int) -> tuple[np.ndarray, list[list[str]]]:
    """A TUM list file: (timestamps (n,) float64, the other columns as strings). '#' lines are comments."""
    stamps, rest = [], []
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) < columns:
            raise InputError(f"{path}:{lineno}: expected {columns} columns, got {len(parts)}")
        try:
            stamps.append(float(parts[0]))
        except ValueError:
            raise InputError(f"{path}:{lineno}: timestamp {parts[0]!r} is not a number") from None
        rest.append(parts[1:columns])
    return np.asarray(stamps, dtype=np.float64), rest


@READERS.register("tum")
class TumReader(Reader):
    """TUM RGB-D benchmark sequence folder (rgb.txt, depth.txt, groundtruth.txt).

    Args:
        camera: one of ``TUM_INTRINSICS`` to force the intrinsics (default: from the folder).
        max_time_diff: association window, seconds.
    """

    name = "tum"

    def __init__(self, camera: str | None = None, max_time_diff: float = 0.02) -> None:
        if camera is not None and camera not in TUM_INTRINSICS:
            raise ConfigError(f"unknown TUM camera {camera!r}; choose one of {', '.join(TUM_INTRINSICS)}")
        self.camera = camera
        self.max_time_diff = max_time_diff

    def detect(self, path: Path) -> bool:
        return path.is_dir() and all((path / f).is_file() for f in ("rgb.txt", "depth.txt", "groundtruth.txt"))

    def read(self, path: Path, options: ReadOptions) -> Scene:
        if not self.detect(path):
            raise InputError(f"{path}: not a TUM RGB-D folder (needs rgb.txt, depth.txt, groundtruth.txt)")
        t_rgb, rgb = read_tum_list(path / "rgb.txt", 2)
        t_dep, dep = read_tum_list(path / "depth.txt", 2)
        t_gt, gt = read_tum_list(path / "groundtruth.txt", 8)
        if len(t_rgb) == 0:
            raise InputError(f"{path / 'rgb.txt'}: lists no images")
        try:
            gt_arr = np.asarray(gt, dtype=np.float64).reshape(-1, 7)
        except ValueError:
            raise InputError(f"{path / 'groundtruth.txt'}: pose values are not all numbers") from None
        di = associate(t_rgb, t_dep, self.max_time_diff)
        pi = associate(t_rgb, t_gt, self.max_time_diff)
        K = self._intrinsics(path)
        scale = native_scale(options, 5000.0)
        scene = _empty_scene(path.name, path, "tum")
        loader = depth_file_loader(scale)

        def candidate(i: int) -> FrameCandidate | str:
            if di[i] < 0 or pi[i] < 0:
                return "no_match"  # counted; one warning below
            return FrameCandidate(f"{t_rgb[i]:.6f}", quat_to_pose(gt_arr[pi[i], :3], gt_arr[pi[i], 3:]),
                                  f"{path / 'groundtruth.txt'} at t={t_gt[pi[i]]:.4f}", color=path / rgb[i][0],
                                  depth=path / dep[di[i]][0], K_color=K, depth_loader=loader)

        scene.frames = assemble_frames(scene, len(t_rgb), options, candidate)
        if scene.skipped_frames.get("no_match"):
            log.warning("%s: %d frames had no depth/pose within %.3f s", path, scene.skipped_frames["no_match"],
                        self.max_time_diff)
        geometry_for(scene, find_mesh(path), options)
        scene.meta["depth_scale"] = scale
        return scene

    def _intrinsics(self, path: Path) -> np.ndarray:
        f = path / "intrinsics.txt"
        if self.camera is None and f.is_file():
            try:
                m = read_matrix(f)
                if m.size == 4:
                    fx, fy, cx, cy = m.ravel()
                    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
                return intrinsics_3x3(m)
            except (OSError, ValueError) as exc:
                raise InputError(f"{f}: cannot read intrinsics ({exc})") from None
        cam = self.camera or next((c for c in ("freiburg1", "freiburg2", "freiburg3") if c in path.name), None)
        cam = cam or "ros_default"
        log.info("%s: using TUM intrinsics %s", path, cam)
        fx, fy, cx, cy = TUM_INTRINSICS[cam]
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)


# --------------------------------------------------------------------------- generic YAML


def _warn_shared_features(cfg_path: Path, colors: list[Path]) -> None:
    """Warn when another capture YAML in the same folder lists other colour files of the same stems:
    both captures read ``<folder>/features_2d/<stem>.npz``, so one would take the other's features."""
    import yaml

    mine = {c.stem: c.resolve() for c in colors}
    for other in sorted(p for p in cfg_path.parent.iterdir()
                        if p.suffix.lower() in (".yaml", ".yml") and p.is_file() and p != cfg_path):
        try:
            spec = yaml.safe_load(other.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("color"), str):
            continue
        theirs = [Path(h) for h in glob.glob(str(cfg_path.parent / spec["color"]))]
        clash = sorted(h.stem for h in theirs if h.stem in mine and h.resolve() != mine[h.stem])
        if clash:
            log.warning("%s and %s share %s: %d of their frames have the same id (e.g. %s) but other colour "
                        "images, so they would read each other's features; give each capture its own folder",
                        cfg_path.name, other.name, cfg_path.parent / "features_2d", len(clash), clash[0])


def _yaml_path(path: Path) -> Path | None:
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return path
    if path.is_dir() and (path / "geopurify.yaml").is_file():
        return path / "geopurify.yaml"
    return None


def _K_from(spec, base: Path, cfg: Path, key: str) -> np.ndarray:
    if isinstance(spec, dict):
        try:
            fx, fy, cx, cy = (float(spec[k]) for k in ("fx", "fy", "cx", "cy"))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{cfg}: '{key}' needs numeric fx, fy, cx, cy") from None
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    if isinstance(spec, list | tuple) and len(spec) == 4:
        fx, fy, cx, cy = (float(x) for x in spec)
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    if isinstance(spec, str):
        f = base / spec
        try:
            return intrinsics_3x3(read_matrix(f))
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: cannot read intrinsics named in {cfg} ({exc})") from None
    raise ConfigError(f"{cfg}: '{key}' must be {{fx, fy, cx, cy}}, [fx, fy, cx, cy] or a file path")


@READERS.register("generic")
class GenericYamlReader(Reader):
    """Any posed RGB-D capture described by a small YAML file (see the module docstring)."""

    name = "generic"
    suffixes = (".yaml", ".yml")
    KEYS = {
        "color", "depth", "pose", "depth_scale", "intrinsics", "depth_intrinsics",
        "pose_convention", "camera", "mesh", "name", "pose_pairing", "pose_tolerance",
    }

    def detect(self, path: Path) -> bool:
        return _yaml_path(path) is not None

    def read(self, path: Path, options: ReadOptions) -> Scene:
        import yaml

        cfg_path = _yaml_path(path)
        if cfg_path is None:
            raise InputError(f"{path}: expected a YAML file or a folder with geopurify.yaml")
        try:
            cfg = yaml.safe_load(cfg_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{cfg_path}: cannot parse YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(cfg, dict):
            raise ConfigError(f"{cfg_path}: expected a mapping of keys (color, depth, pose, intrinsics, ...)")
        unknown = set(cfg) - self.KEYS
        if unknown:
            raise ConfigError(f"{cfg_path}: unknown keys {sorted(unknown)}; allowed: {sorted(self.KEYS)}")
        for key in ("color", "depth", "pose", "intrinsics"):
            if key not in cfg:
                raise ConfigError(f"{cfg_path}: missing required key '{key}'")
        base = cfg_path.parent
        convention = cfg.get("pose_convention", "camera_to_world")
        camera = cfg.get("camera", "opencv")
        if convention not in ("camera_to_world", "world_to_camera"):
            raise ConfigError(f"{cfg_path}: pose_convention must be camera_to_world or world_to_camera")
        if camera not in ("opencv", "opengl"):
            raise ConfigError(f"{cfg_path}: camera must be opencv or opengl")
        pairing = PosePairing(cfg.get("pose_pairing", "auto"), cfg.get("pose_tolerance", PosePairing.tolerance))
        scale = self._scale(cfg, cfg_path, options)
        K = _K_from(cfg["intrinsics"], base, cfg_path, "intrinsics")
        Kd = _K_from(cfg["depth_intrinsics"], base, cfg_path, "depth_intrinsics") if "depth_intrinsics" in cfg else K

        def files(key: str) -> list[Path]:
            hits = sorted(glob.glob(str(base / str(cfg[key]))), key=natural_key)
            return [Path(h) for h in hits if Path(h).is_file()]

        colors, depths, pose_files = files("color"), files("depth"), files("pose")
        if not colors:
            raise InputError(f"{cfg_path}: colour glob {cfg['color']!r} matches no file")
        if not depths:
            raise InputError(f"{cfg_path}: depth glob {cfg['depth']!r} matches no file")
        if not pose_files:
            raise InputError(f"{cfg_path}: pose glob {cfg['pose']!r} matches no file")
        track = read_pose_files(pose_files)
        paired = pair_poses([c.stem for c in colors], track, pairing, str(cfg_path))
        depth_of = pair_depth(colors, depths, str(cfg_path))
        # a folder's geopurify.yaml names the scene after the folder; any other YAML after itself, so two
        # captures described side by side (a.yaml, b.yaml) are not both called after their folder
        default_name = base.name if cfg_path.name == "geopurify.yaml" else cfg_path.stem
        scene = _empty_scene(str(cfg.get("name") or default_name), base, "generic")
        loader = depth_file_loader(scale)

        def candidate(i: int) -> FrameCandidate | str:
            j = int(paired.pose[i])
            if j < 0:
                return "no_pose"  # counted; one warning below
            if depth_of[i] is None:
                log.warning("skipping frame %s: no depth image pairs with %s", colors[i].stem, colors[i])
                return "missing_depth"
            pose = track.poses[j]
            if convention == "world_to_camera" and np.isfinite(pose).all() and abs(np.linalg.det(pose)) > 1e-12:
                pose = np.linalg.inv(pose)
            if camera == "opengl":
                pose = pose @ OPENGL_TO_OPENCV
            return FrameCandidate(colors[i].stem, pose, track.sources[j], color=colors[i], depth=depth_of[i],
                                  K_color=K, K_depth=Kd, depth_loader=loader)

        scene.frames = assemble_frames(scene, len(colors), options, candidate)
        _warn_shared_features(cfg_path, colors)
        if scene.skipped_frames.get("no_pose"):
            log.warning("%s: %d frames have no pose (pairing %s over %d poses)", cfg_path,
                        scene.skipped_frames["no_pose"], paired.mode, len(track))
        mesh = base / str(cfg["mesh"]) if cfg.get("mesh") else None
        if mesh is not None and not mesh.is_file():
            raise InputError(f"{cfg_path}: mesh {mesh} not found")
        geometry_for(scene, mesh, options)
        scene.meta.update(depth_scale=scale, config=str(cfg_path), pose_form=track.form, pose_pairing=paired.mode,
                          frames_found=len(colors), poses_found=len(track))
        return scene

    @staticmethod
    def _scale(cfg: dict, cfg_path: Path, options: ReadOptions) -> float:
        """--depth-scale when given, else the YAML's depth_scale, else 1000 (millimetres)."""
        try:
            own = float(cfg["depth_scale"]) if "depth_scale" in cfg else None
        except (TypeError, ValueError):
            raise ConfigError(f"{cfg_path}: depth_scale must be a number") from None
        if own is not None and not own > 0:
            raise ConfigError(f"{cfg_path}: depth_scale must be positive")
        if options.depth_scale is not None:
            if own is not None and own != options.depth_scale:
                log.warning("%s: --depth-scale %g overrides the YAML's depth_scale %g", cfg_path,
                            options.depth_scale, own)
            return float(options.depth_scale)
        return own if own is not None else 1000.0


def pair_depth(colors: list[Path], depths: list[Path], where: str) -> list[Path | None]:
    """The depth image of each colour image: by order when the globs match as many files, else by the
    file stem, else by the number in the name; None where none pairs."""
    if len(colors) == len(depths):
        return list(depths)
    by_stem = {d.stem: d for d in depths}
    if any(c.stem in by_stem for c in colors):
        return [by_stem.get(c.stem) for c in colors]
    by_num: dict[int | None, Path] = {}
    for d in depths:
        by_num.setdefault(name_index(d.stem), d)
    if None in by_num or len(by_num) != len(depths):
        raise InputError(
            f"{where}: {len(colors)} colour images and {len(depths)} depth images, and their names do not pair "
            "them (same stem or same number)"
        )
    return [by_num.get(name_index(c.stem)) for c in colors]
