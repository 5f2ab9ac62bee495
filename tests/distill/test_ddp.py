"""Two gloo processes on CPU give the same student as one process averaging the same scenes."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from geopurify.distill import init_from_env, train

from ._scenes import tiny_config, two_planes


def _scenes():
    return [two_planes(n=7, seed=1, name="a")[0], two_planes(n=6, seed=2, name="b")[0]]


def _config():
    return tiny_config(steps=4, checkpoint_every=2)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    info = init_from_env()
    assert info.distributed and info.rank == rank and info.backend == "gloo"
    try:
        model = train(_scenes(), _config(), out_dir=os.path.join(out, "run"))
        torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_single_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = train(_scenes(), _config(), out_dir=tmp_path / "single").state_dict()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for k, v in single.items():
            torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5, msg=f"rank {rank} {k}")
    # only rank 0 wrote: one checkpoint, one final student, no stray temporary files
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["checkpoint.pt", "student.safetensors", "train_log.json"]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4


def test_init_from_env_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_from_env()
    assert not info.distributed and info.rank == 0 and info.world_size == 1 and info.is_main
