"""distill.ddp on the CPU without a process group: env parsing, backend and device choice, shards, errors.

The real multi-process runs are in test_torchrun.py; CUDA is mocked at the border here (torch.cuda and
torch.distributed calls), so that NCCL and ``cuda:<LOCAL_RANK>`` are checked on a machine without a GPU.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from geopurify.distill import ddp, init_from_env
from geopurify.errors import ConfigError, InputError
from geopurify.utils.device import pick_device

from ._scenes import tiny_config, two_planes

train_mod = importlib.import_module("geopurify.distill.train")


@pytest.fixture
def no_torchrun_env(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Two CUDA devices and a process group that records how it was started (nothing is started)."""
    calls: dict = {"initialised": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.__setitem__("set_device", torch.device(d)))

    def init_process_group(backend, rank, world_size, timeout):
        calls.update(initialised=True, backend=backend, rank=rank, world_size=world_size)

    monkeypatch.setattr(ddp.dist, "init_process_group", init_process_group)
    monkeypatch.setattr(ddp.dist, "is_initialized", lambda: calls["initialised"])
    monkeypatch.setattr(ddp.dist, "get_rank", lambda: calls["rank"])
    monkeypatch.setattr(ddp.dist, "get_world_size", lambda: calls["world_size"])
    monkeypatch.setattr(ddp.dist, "get_backend", lambda: calls["backend"])
    return calls


def test_single_process_is_rank_0_of_1(no_torchrun_env):
    info = init_from_env("cpu")
    assert not info.distributed and info.rank == 0 and info.world_size == 1 and info.is_main
    assert info.backend is None and info.device == torch.device("cpu")
    with ddp.process_group("cpu") as info:
        assert not info.distributed
        assert ddp.shard(5, info) == [0, 1, 2, 3, 4]
        assert ddp.all_gather({"a": 1}, info) == [{"a": 1}]
        assert ddp.on_main(lambda: 7, info) == 7


def test_nccl_and_the_local_gpu_when_cuda_is_present(monkeypatch, fake_cuda):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device("auto").type == "cuda"  # --device auto keeps choosing CUDA when present
    info = init_from_env("auto")
    assert fake_cuda["backend"] == "nccl" and fake_cuda["rank"] == 3 and fake_cuda["world_size"] == 4
    assert fake_cuda["set_device"] == torch.device("cuda", 1)
    assert info.device == torch.device("cuda", 1) and info.rank == 3 and info.local_rank == 1
    assert info.distributed and not info.is_main and info.backend == "nccl"


def test_gloo_when_the_run_asks_for_the_cpu(monkeypatch, fake_cuda):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    info = init_from_env("cpu")
    assert fake_cuda["backend"] == "gloo" and info.device == torch.device("cpu") and "set_device" not in fake_cuda


def test_bad_torchrun_environment_is_a_config_error(monkeypatch, fake_cuda):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ConfigError, match="RANK is not set"):
        init_from_env("cpu")
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="RANK='x' is not an integer"):
        init_from_env("cpu")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "2")  # two GPUs on this host: local ranks 0 and 1
    with pytest.raises(ConfigError, match="LOCAL_RANK 2 but this host has 2 CUDA"):
        init_from_env("auto")
    assert not fake_cuda["initialised"]  # refused before any process group


def test_shards_are_disjoint_and_cover_everything():
    for world in (1, 2, 3, 5):
        parts = [ddp.shard(7, ddp.DistInfo(rank=r, world_size=world)) for r in range(world)]
        assert sorted(i for p in parts for i in p) == list(range(7))
        for r, p in enumerate(parts):
            assert all(ddp.owns(i, ddp.DistInfo(rank=r, world_size=world)) for i in p)


def test_map_shard_raises_the_error_of_a_scene(no_torchrun_env):
    info = init_from_env("cpu")

    def prepare(x):
        if x == "bad":
            raise InputError("bad: no frames")
        return x.upper()

    assert ddp.map_shard(["a", "b"], prepare, info) == ["A", "B"]
    with pytest.raises(InputError, match="bad: no frames"):
        ddp.map_shard(["a", "bad"], prepare, info)


def test_training_tensors_go_to_the_chosen_device(monkeypatch):
    """Scene tensors are placed on the device train picks (``meta``: shapes only, no GPU needed)."""
    scene, _ = two_planes(n=4)
    monkeypatch.setattr(train_mod, "build_kernel_map", lambda coords: ("kmap", coords.device))
    st = train_mod._SceneTensors(scene, torch.device("meta"), tiny_config(steps=1))
    assert st.coords.device.type == st.inputs.device.type == st.teacher.device.type == "meta"
    assert st.kmap == ("kmap", torch.device("meta"))
    assert st.coords.shape == (len(scene.coords), 3) and st.inputs.shape == np.asarray(scene.inputs).shape


def test_train_builds_the_student_on_the_rank_device(monkeypatch, no_torchrun_env):
    """train asks ddp.rank_device(config.device, local_rank) and puts the model and the scenes there."""
    asked, seen = [], []
    real = train_mod.AffinityNet.to

    def rank_device(name, local):
        asked.append((name, local))
        return torch.device("meta")

    def to(self, device, *args, **kwargs):
        seen.append(torch.device(device))
        return real(self, "cpu")

    monkeypatch.setattr(ddp, "rank_device", rank_device)
    monkeypatch.setattr(train_mod, "_SceneTensors", _Stop)
    monkeypatch.setattr(train_mod.AffinityNet, "to", to)
    with pytest.raises(_Stopped) as stop:
        train_mod.train([two_planes(n=4)[0]], tiny_config(steps=1, device="auto"))
    assert asked == [("auto", 0)]
    assert seen == [torch.device("meta")] and stop.value.args[0] == torch.device("meta")


class _Stopped(Exception):
    pass


class _Stop:
    def __init__(self, scene, device, config):
        raise _Stopped(device)
