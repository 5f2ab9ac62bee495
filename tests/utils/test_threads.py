"""The CPU thread policy of heavy commands."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from geopurify.utils.device import configure_threads  # noqa: E402


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_explicit_and_environment_requests_win(monkeypatch, restore_threads):
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("GEOPURIFY_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert configure_threads() == 1


def test_busy_machine_gets_fewer_threads(monkeypatch, restore_threads):
    monkeypatch.delenv("GEOPURIFY_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert configure_threads() == 1  # 4 CPUs - 2.6 busy -> round(1.4) = 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert configure_threads() == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert configure_threads() == 1


def test_user_omp_setting_is_left_alone(monkeypatch, restore_threads):
    monkeypatch.delenv("GEOPURIFY_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(1)
    assert configure_threads() == 1
