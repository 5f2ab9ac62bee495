"""ScanNet v2 raw ``<scene>.sens`` streams, read directly (no export step).

Layout of the binary file (little-endian, ScanNet's SensorData format, version 4)::

    uint32 version (=4) | uint64 n + n bytes sensor name
    float32[16] intrinsic_color, extrinsic_color, intrinsic_depth, extrinsic_depth
    int32 color_compression (2 = jpeg, 1 = png, 0 = raw) | int32 depth_compression (1 = zlib_ushort, 0 = raw)
    uint32 color_width, color_height, depth_width, depth_height | float32 depth_shift | uint64 num_frames
    per frame: float32[16] camera_to_world | uint64 timestamp_color, timestamp_depth
               uint64 color_bytes, depth_bytes | color bytes | depth bytes

The file is indexed once (frame offsets, one small read per frame) and each frame decodes lazily
with a seek. Path to read: the ``.sens`` file or the scene folder holding ``<scene>.sens``. Siblings:

* ``<scene>_vh_clean_2.ply`` -> the points (else a cloud is fused from depth),
* ``<scene>_vh_clean_2.labels.ply`` -> NYU40 labels (``label_set = "nyu40"``),
* ``<scene>.aggregation.json`` + ``<scene>_vh_clean_2.0.010000.segs.json`` + a
  ``scannetv2-labels.combined.tsv`` (reader argument ``labels_tsv``, ``options.labels_tsv`` when
  ReadOptions has it, or found next to the scene or in its parent folders) -> raw ScanNet category
  ids per vertex (the ScanNet200 ids, 0 = unannotated) in ``scene.meta["scannet200_raw"]``, an
  (N,) int64 array.

Frames with non-finite poses (ScanNet writes -inf for lost tracking) are dropped at read time.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FrameError, InputError
from .frames import FrameCandidate, assemble_frames, depth_intrinsics
from .registry import READERS, Reader, ReadOptions
from .rgbd import geometry_for
from .scannet import find_labels, read_gt_labels
from .scene import Frame, Scene

log = logging.getLogger(__name__)

_COLOR_TYPES = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
_DEPTH_TYPES = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_FRAME_HEADER = struct.Struct("<16fQQQQ")


@dataclass
class SensHeader:
    """The .sens header. Matrices are (4, 4) float64; sizes are (H, W)."""

    version: int
    sensor_name: str
    intrinsic_color: np.ndarray
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: str
    depth_compression: str
    color_size: tuple[int, int]
    depth_size: tuple[int, int]
    depth_shift: float
    num_frames: int


@dataclass
class SensIndex:
    """Where each frame lives: poses (F, 4, 4) float64, color/depth offsets and sizes (F,) int64."""

    header: SensHeader
    poses: np.ndarray
    color_offset: np.ndarray
    color_bytes: np.ndarray
    depth_offset: np.ndarray
    depth_bytes: np.ndarray


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise InputError(f"{path}: file is truncated while reading {what}")
    return b


def index_sens(path: Path) -> SensIndex:
    """Parse the header and walk the frame table (seeking over the image payloads)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", _read_exact(f, 4, path, "the version"))
        if version != 4:
            raise InputError(f"{path}: .sens version {version}, only version 4 is supported")
        (nlen,) = struct.unpack("<Q", _read_exact(f, 8, path, "the sensor name"))
        if nlen > 4096:
            raise InputError(f"{path}: corrupt header (sensor name length {nlen})")
        name = _read_exact(f, nlen, path, "the sensor name").decode("utf-8", errors="replace")
        mats = np.frombuffer(_read_exact(f, 256, path, "the calibration"), "<f4").reshape(4, 4, 4)
        ctype, dtype_ = struct.unpack("<ii", _read_exact(f, 8, path, "the compression types"))
        cw, ch, dw, dh = struct.unpack("<IIII", _read_exact(f, 16, path, "the image sizes"))
        (shift,) = struct.unpack("<f", _read_exact(f, 4, path, "the depth shift"))
        (nframes,) = struct.unpack("<Q", _read_exact(f, 8, path, "the frame count"))
        header = SensHeader(
            version, name, *(m.astype(np.float64) for m in mats), _COLOR_TYPES.get(ctype, f"type {ctype}"),
            _DEPTH_TYPES.get(dtype_, f"type {dtype_}"), (ch, cw), (dh, dw), float(shift), int(nframes),
        )
        if nframes > size // _FRAME_HEADER.size:
            raise InputError(f"{path}: corrupt header (claims {nframes} frames in {size} bytes)")
        poses = np.zeros((nframes, 4, 4))
        co, cb, do, db = (np.zeros(nframes, np.int64) for _ in range(4))
        for i in range(nframes):
            rec = f.read(_FRAME_HEADER.size)
            if len(rec) != _FRAME_HEADER.size:
                raise InputError(f"{path}: truncated at frame {i} of {nframes} (frame header)")
            vals = _FRAME_HEADER.unpack(rec)
            poses[i] = np.asarray(vals[:16], dtype=np.float64).reshape(4, 4)
            cb[i], db[i] = vals[18], vals[19]
            co[i] = f.tell()
            do[i] = co[i] + cb[i]
            if do[i] + db[i] > size:
                raise InputError(f"{path}: truncated at frame {i} of {nframes} (image data past end of file)")
            f.seek(int(do[i] + db[i]))
    return SensIndex(header, poses, co, cb, do, db)


class _SensFrameLoader:
    """Decodes one frame's colour or depth on demand (picklable: holds only paths and numbers)."""

    def __init__(self, path: Path, header: SensHeader, offset: int, nbytes: int, kind: str, fid: str) -> None:
        self.path, self.header, self.offset, self.nbytes, self.kind, self.fid = path, header, offset, nbytes, kind, fid

    def _bytes(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.nbytes)
        if len(data) != self.nbytes:
            raise FrameError(f"{self.path}: frame {self.fid} {self.kind} data truncated", reason=f"bad_{self.kind}")
        return data

    def __call__(self) -> np.ndarray:
        return self.color() if self.kind == "color" else self.depth()

    def color(self) -> np.ndarray:
        h, w = self.header.color_size
        data = self._bytes()
        comp = self.header.color_compression
        where = f"{self.path}: frame {self.fid} colour"
        if comp == "raw":
            if len(data) != h * w * 3:
                raise FrameError(f"{where} has {len(data)} bytes, expected {h * w * 3}", reason="bad_color")
            return np.frombuffer(data, np.uint8).reshape(h, w, 3).copy()
        if comp not in ("jpeg", "png"):
            raise FrameError(f"{where}: unsupported compression {comp}", reason="bad_color")
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                arr = np.asarray(im.convert("RGB"))
        except Exception as exc:
            raise FrameError(f"{where} cannot be decoded ({exc})", reason="bad_color") from None
        if arr.shape[:2] != (h, w):
            raise FrameError(f"{where} is {arr.shape[1]}x{arr.shape[0]}, header says {w}x{h}", reason="bad_color")
        return arr

    def depth(self) -> np.ndarray:
        h, w = self.header.depth_size
        data = self._bytes()
        comp = self.header.depth_compression
        where = f"{self.path}: frame {self.fid} depth"
        if comp == "zlib_ushort":
            try:
                data = zlib.decompress(data)
            except zlib.error as exc:
                raise FrameError(f"{where} cannot be decompressed ({exc})", reason="bad_depth") from None
        elif comp != "raw_ushort":
            raise FrameError(f"{where}: unsupported compression {comp}", reason="bad_depth")
        if len(data) != h * w * 2:
            raise FrameError(f"{where} has {len(data)} bytes, expected {h * w * 2} ({w}x{h} uint16)",
                             reason="bad_depth")
        return np.frombuffer(data, "<u2").reshape(h, w).astype(np.float32) / np.float32(self.header.depth_shift)


def read_label_tsv(path: Path) -> dict[str, int]:
    """``scannetv2-labels.combined.tsv`` -> {raw_category: id}."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if not rows or "raw_category" not in rows[0] or "id" not in rows[0]:
        raise InputError(f"{path}: not a ScanNet label table (needs columns 'id' and 'raw_category')")
    return {r["raw_category"]: int(r["id"]) for r in rows if r.get("id", "").strip().isdigit()}


def scannet200_raw_labels(aggregation: Path, segs: Path, name_to_id: dict[str, int], n: int) -> np.ndarray:
    """(N,) int64 per-vertex raw ScanNet category id from the instance aggregation; 0 = unannotated."""
    try:
        seg_idx = np.asarray(json.loads(segs.read_text())["segIndices"], dtype=np.int64)
        groups = json.loads(aggregation.read_text())["segGroups"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{aggregation.parent}: cannot read segmentation JSON ({exc})") from None
    if len(seg_idx) != n:
        raise InputError(f"{segs}: {len(seg_idx)} segment ids for a mesh of {n} vertices")
    seg_to_id: dict[int, int] = {}
    unknown = set()
    for g in groups:
        cid = name_to_id.get(g.get("label", ""), 0)
        if cid == 0:
            unknown.add(g.get("label", ""))
        seg_to_id.update((int(s), cid) for s in g.get("segments", []))
    uniq, inv = np.unique(seg_idx, return_inverse=True)
    seg_label = np.array([seg_to_id.get(int(s), 0) for s in uniq], dtype=np.int64)
    if unknown:
        log.warning("%s: categories not in the label table, left unannotated: %s", aggregation, sorted(unknown))
    return seg_label[inv]


@READERS.register("sens")
class SensReader(Reader):
    """ScanNet ``.sens`` reader. Args: labels_tsv: path of ``scannetv2-labels.combined.tsv``."""

    name = "sens"
    suffixes = (".sens",)

    def __init__(self, labels_tsv: str | Path | None = None) -> None:
        self.labels_tsv = Path(labels_tsv) if labels_tsv else None

    @staticmethod
    def _sens_path(path: Path) -> Path | None:
        if path.is_file() and path.suffix == ".sens":
            return path
        if path.is_dir() and (path / f"{path.name}.sens").is_file():
            return path / f"{path.name}.sens"
        return None

    def detect(self, path: Path) -> bool:
        return self._sens_path(path) is not None

    def read(self, path: Path, options: ReadOptions) -> Scene:
        sens = self._sens_path(path)
        if sens is None:
            raise InputError(f"{path}: no .sens file (expected <scene>.sens or a folder holding it)")
        folder, name = sens.parent, sens.stem
        idx = index_sens(sens)
        h = idx.header
        if options.depth_scale is not None:  # an explicit option wins over the file's depth_shift
            h = dataclasses.replace(h, depth_shift=float(options.depth_scale))
        K_color, K_depth = h.intrinsic_color[:3, :3].copy(), h.intrinsic_depth[:3, :3].copy()
        K_depth = depth_intrinsics(K_color, K_depth, h.color_size, h.depth_size, str(sens))
        z = np.zeros((0, 3), np.float32)
        scene = Scene(name=name, points=z, colors=z.copy(), root=folder)

        def candidate(i: int) -> FrameCandidate:
            fid = str(i)

            def build(pose: np.ndarray) -> Frame:
                return Frame(
                    frame_id=fid, K_color=K_color, K_depth=K_depth, camera_to_world=pose,
                    color_size=h.color_size, depth_size=h.depth_size,
                    load_color=_SensFrameLoader(sens, h, int(idx.color_offset[i]), int(idx.color_bytes[i]), "color",
                                                fid),
                    load_depth=_SensFrameLoader(sens, h, int(idx.depth_offset[i]), int(idx.depth_bytes[i]), "depth",
                                                fid),
                    source=f"{sens}#{i}",
                )

            return FrameCandidate(fid, idx.poses[i], f"{sens} frame {i}", build=build)

        scene.frames = assemble_frames(scene, h.num_frames, options, candidate)
        if scene.skipped_frames.get("bad_pose"):
            log.warning("%s: dropped %d frames with invalid poses", sens, scene.skipped_frames["bad_pose"])
        mesh = folder / f"{name}_vh_clean_2.ply"
        geometry_for(scene, mesh if mesh.is_file() else None, options, z_up=True)
        if mesh.is_file():
            labels = find_labels(folder)
            if labels is not None:
                scene.labels, scene.label_set = read_gt_labels(labels, scene.num_points), "nyu40"
            self._scannet200(scene, folder, name, options)
        scene.meta.update(layout="sens", sens=str(sens), sensor=h.sensor_name, depth_shift=h.depth_shift,
                          frames_in_file=h.num_frames)
        return scene

    def _scannet200(self, scene: Scene, folder: Path, name: str, options: ReadOptions) -> None:
        agg = folder / f"{name}.aggregation.json"
        segs = folder / f"{name}_vh_clean_2.0.010000.segs.json"
        if not (agg.is_file() and segs.is_file()):
            return
        tsv = self.labels_tsv or getattr(options, "labels_tsv", None)
        if tsv is None:
            for d in (folder, *list(folder.parents)[:3]):
                if (d / "scannetv2-labels.combined.tsv").is_file():
                    tsv = d / "scannetv2-labels.combined.tsv"
                    break
        if tsv is None:
            log.warning("%s: aggregation found but no scannetv2-labels.combined.tsv; ScanNet200 labels skipped",
                        folder)
            return
        scene.meta["scannet200_raw"] = scannet200_raw_labels(agg, segs, read_label_tsv(Path(tsv)), scene.num_points)
