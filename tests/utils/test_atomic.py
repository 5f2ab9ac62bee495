import json

import numpy as np
import pytest

from geopurify.utils.atomic import atomic_open, write_json, write_npy


def test_atomic_open_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "labels.txt"
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_replace_keeps_old_until_done(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(ValueError):
        with atomic_open(target) as f:
            f.write("{broken")
            raise ValueError
    assert json.loads(target.read_text()) == {"v": 1}
    write_json(target, {"v": np.int64(2), "arr": np.arange(2)})
    assert json.loads(target.read_text()) == {"v": 2, "arr": [0, 1]}


def test_write_npy_roundtrip(tmp_path):
    a = np.arange(6, dtype=np.float16).reshape(2, 3)
    write_npy(tmp_path / "f.npy", a)
    b = np.load(tmp_path / "f.npy")
    assert b.dtype == np.float16 and (a == b).all()


def test_outputs_get_the_usual_mode_even_when_the_writer_replaces_the_temporary_file(tmp_path):
    import os

    from geopurify.utils.atomic import atomic_path

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.unlink()  # like safetensors' save_file: a new file where the temporary one was
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
            os.write(fd, b"data")
            os.close(fd)
    finally:
        os.umask(umask)
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   OSError("211776 requested and 112576 written"),  # numpy's short write
                                   RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 2")])
def test_a_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path, error):
    from geopurify.errors import DiskFullError

    target = tmp_path / "features.npy"
    with pytest.raises(DiskFullError, match="features.npy: no space left on the device") as e:
        with atomic_open(target, "wb") as f:
            f.write(b"half")
            raise error
    assert e.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="killed"):  # other failures pass through as they are
        with atomic_open(target) as f:
            raise RuntimeError("killed")


def test_segment_on_a_full_disk_exits_2_with_one_line_and_no_run_json(tmp_path, capsys, monkeypatch):
    from _fixtures import write_tiny_scannet
    from geopurify.cli import main

    scene = write_tiny_scannet(tmp_path)

    def full(*a, **k):
        raise OSError("211776 requested and 112576 written")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "o"
    assert main(["segment", str(scene), "--no-purify", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "Traceback" not in err and "internal error" not in err
    assert not (out / "run.json").exists() and not list(out.glob(".*.tmp"))
