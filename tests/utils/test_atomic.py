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
