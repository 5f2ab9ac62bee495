"""`torchrun ... geopurify train` through the CLI: one model across ranks, the single-process result, one writer.

Two gloo processes started by torchrun itself (``python -m torch.distributed.run``), on three tiny
synthetic rooms, so the ranks' shares are uneven (rank 0: rooms 0 and 2, rank 1: room 1). The
reference is one process over the same three rooms. ``_torchrun_cli.py`` is the CLI with spies at the
border: the files each rank renamed into place, the scenes it prepared, the weights it ended with.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import geopurify
from geopurify import api, load
from geopurify.cli import main

HERE = Path(__file__).resolve().parent
SRC = Path(geopurify.__file__).resolve().parents[1]
ENTRY = HERE / "_torchrun_cli.py"
# 3 steps: all inside the 5-step warm-up, so a resumed run follows the same learning-rate schedule
ARGS = ["--steps", "3", "--width", "8", "--device", "cpu"]
TIMEOUT = 180  # a hang (a rank missing from a collective) fails instead of blocking the suite


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("rooms")
    return [str(p) for p in api.synth(root, n=3, seed=5, points=1000, frames=3)]


@pytest.fixture(scope="module")
def single(rooms, tmp_path_factory) -> Path:
    """One process, the same rooms and options: the reference."""
    out = tmp_path_factory.mktemp("single")
    assert main(["-q", "train", *rooms, "--out", str(out), *ARGS]) == 0
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(torchrun_args: list[str], cli_args: list[str], dump: Path) -> subprocess.Popen:
    dump.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", GEOPURIFY_TEST_DUMP=str(dump))
    cmd = [sys.executable, "-m", "torch.distributed.run", *torchrun_args, str(ENTRY), "-q", "train", *cli_args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(*procs: subprocess.Popen) -> None:
    """Wait for every launcher; on a hang stop them all (SIGTERM: torchrun stops its workers) and fail."""
    deadline = time.monotonic() + TIMEOUT
    outs = []
    try:
        for proc in procs:
            outs.append(proc.communicate(timeout=max(deadline - time.monotonic(), 1))[0])
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT} s")
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:]


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _check_one_model(dump: Path, single: Path, out: Path) -> None:
    """Both ranks end with the same weights, those of the single process; rank 0's student is that model."""
    w0 = torch.load(dump / "weights-rank0.pt", weights_only=True)
    w1 = torch.load(dump / "weights-rank1.pt", weights_only=True)
    ref = load(single).state_dict()
    student = load(out).state_dict()
    assert set(w0) == set(w1) == set(ref)
    for k in ref:
        assert torch.equal(w0[k], w1[k]), f"ranks disagree on {k}"
        # the ranks sum the three rooms' gradients in another order than one process: float tolerance
        torch.testing.assert_close(w0[k], ref[k], rtol=1e-4, atol=1e-5, msg=f"{k}: DDP vs single process")
        assert torch.equal(student[k], w0[k])
    log, ref_log = (json.loads((d / "train_log.json").read_text()) for d in (out, single))
    assert log["world_size"] == 2 and ref_log["world_size"] == 1
    assert log["losses"] == pytest.approx(ref_log["losses"], rel=1e-5)  # the combined batch's mean, not a rank's
    assert [s["name"] for s in log["scenes"]] == [s["name"] for s in ref_log["scenes"]]
    assert json.loads((out / "run.json").read_text())["world_size"] == 2


def test_torchrun_two_ranks_train_one_model(rooms, single, tmp_path):
    out, dump = tmp_path / "out", tmp_path / "dump"
    _wait(_launch(["--standalone", "--nproc_per_node", "2"], [*rooms, "--out", str(out), *ARGS], dump))
    _check_one_model(dump, single, out)
    names = [Path(r).name for r in rooms]
    # disjoint shares: each room prepared (read, lifted, taught) by exactly one rank
    assert _lines(dump / "prepared-rank0.txt") == [names[0], names[2]]
    assert _lines(dump / "prepared-rank1.txt") == [names[1]]
    # one writer: rank 1 renamed nothing into place; rank 0 wrote each output once
    assert _lines(dump / "writes-rank1.txt") == []
    written = sorted(Path(p).name for p in _lines(dump / "writes-rank0.txt"))
    assert written == ["checkpoint.pt", "run.json", "student.safetensors", "train_log.json"]
    assert sorted(p.name for p in out.iterdir()) == written  # no stray temporary files


def test_two_nodes_resume_a_single_process_checkpoint(rooms, single, tmp_path):
    """`--nnodes 2`: two torchrun launches on localhost (node_rank 0 and 1, static rendezvous).

    They resume, at step 1, from the checkpoint of a single-process run, and node 1's --out is another
    (empty) folder, as on machines without a shared disk: rank 0 hands the checkpoint over.
    """
    out, out1, dump = tmp_path / "out", tmp_path / "node1", tmp_path / "dump"
    half = [a if a != "3" else "1" for a in ARGS]
    assert main(["-q", "train", *rooms, "--out", str(out), *half]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 1
    port = str(_free_port())
    common = ["--nnodes", "2", "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port]
    _wait(
        _launch([*common, "--node_rank", "0"], [*rooms, "--out", str(out), *ARGS], dump),
        _launch([*common, "--node_rank", "1"], [*rooms, "--out", str(out1), *ARGS], dump),
    )
    _check_one_model(dump, single, out)
    log = json.loads((out / "train_log.json").read_text())
    assert log["resumed_from"] == 1 and len(log["losses"]) == 3
    assert _lines(dump / "writes-rank1.txt") == [] and not out1.exists()
