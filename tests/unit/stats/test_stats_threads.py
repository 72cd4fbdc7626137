"""The temporary one-thread policy restores the caller's torch thread setting."""

from __future__ import annotations

import pytest
import torch

from ladis_core.stats import _threads
from tests.support.threads import torch_threads

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    with torch_threads(2):
        yield


def test_small_work_runs_on_one_thread_and_restores(two_threads, monkeypatch):
    monkeypatch.setattr(_threads, "machine_is_busy", lambda: False)
    with _threads.threads_for(1e3, CPU):
        assert torch.get_num_threads() == 1
        with _threads.threads_for(1e3, CPU):  # nested
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_large_work_keeps_the_setting_unless_busy(two_threads, monkeypatch):
    monkeypatch.setattr(_threads, "machine_is_busy", lambda: False)
    with _threads.threads_for(1e12, CPU):
        assert torch.get_num_threads() == 2
    monkeypatch.setattr(_threads, "machine_is_busy", lambda: True)
    with _threads.threads_for(1e12, CPU):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_setting_is_restored_after_an_error(two_threads):
    with pytest.raises(RuntimeError), _threads.threads_for(1e3, CPU):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_gpu_work_is_left_alone(two_threads):
    with _threads.threads_for(1e3, torch.device("cuda")):
        assert torch.get_num_threads() == 2
