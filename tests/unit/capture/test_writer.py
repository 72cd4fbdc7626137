"""The capture's background writer: steps become finished step files in the staging
folder; a full queue drops the oldest steps or holds the request back, as chosen, and
says so; a failing disk is retried and reported."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch

from ladis_core.capture.tap import CopiedTensor
from ladis_core.capture.writer import PendingStep, StepWriter
from ladis_core.errors import InputError
from ladis_core.trials import load_trial
from tests.support.waiting import wait_until

NAMES = ("Net_input_0", "Net_output_0")


class _HeldCopy:
    """A copy that has not landed yet (the role a CUDA event plays): the writer waits on
    it, which keeps its queue filling while the test holds it."""

    def __init__(self) -> None:
        self.landed = threading.Event()

    def synchronize(self) -> None:
        self.landed.wait(30)


def _step(number: int, ready: object = None) -> PendingStep:
    tensors = {
        "Net_input_0": CopiedTensor(torch.full((1, 1, 2, 2), float(number)), ready),
        "Net_output_0": CopiedTensor(torch.tensor([[float(number), 0.0]])),
    }
    return PendingStep(number, number, 1796196823.0 + number, tensors)


def test_steps_become_finished_step_files_that_readers_read(tmp_path):
    writer = StepWriter(tmp_path, tensor_names=NAMES, mode="PREDICT")
    for number in range(5):
        writer.put(_step(number))
    writer.close()
    counts = writer.counts()
    assert (counts.queued, counts.written, counts.dropped, counts.queue_steps) == (5, 5, 0, 0)
    assert (tmp_path / "training_job_end.ts").is_file()
    assert not list(tmp_path.rglob(".*.tmp"))
    collections = json.loads(next(tmp_path.glob("collections/*/*.json")).read_text())
    assert collections["collections"]["default"]["tensor_names"] == sorted(NAMES)
    data = load_trial(str(tmp_path), mode="PREDICT", layers=["Net_output_0"], include_inputs=True)
    assert data.steps.tolist() == [0, 1, 2, 3, 4]
    assert data.inputs[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_full_queue_drops_the_oldest_steps_and_counts_them(tmp_path):
    writer = StepWriter(tmp_path, tensor_names=NAMES, mode="PREDICT", max_steps=3)
    held = _HeldCopy()
    writer.put(_step(0, held))  # taken by the writer, which waits for it to land
    wait_until(lambda: writer.counts().queue_steps == 0)
    for number in range(1, 7):
        writer.put(_step(number))  # never waits
    counts = writer.counts()
    assert (counts.queued, counts.dropped, counts.queue_steps, counts.waits) == (7, 3, 3, 0)
    held.landed.set()
    writer.close()
    assert writer.counts().written == 4
    written = load_trial(str(tmp_path), mode="PREDICT", layers=["Net_output_0"]).steps.tolist()
    assert written == [0, 4, 5, 6]  # the oldest queued steps (1, 2, 3) were dropped


def test_back_pressure_holds_the_request_until_there_is_room(tmp_path):
    writer = StepWriter(tmp_path, tensor_names=NAMES, mode="PREDICT", policy="block", max_steps=2)
    held = _HeldCopy()
    writer.put(_step(0, held))
    wait_until(lambda: writer.counts().queue_steps == 0)
    writer.put(_step(1))
    writer.put(_step(2))
    blocked = threading.Thread(target=writer.put, args=(_step(3),))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive() and writer.counts().waits == 1  # waiting for room
    held.landed.set()
    blocked.join(10)
    assert not blocked.is_alive()
    writer.close()
    counts = writer.counts()
    assert (counts.written, counts.dropped, counts.waits) == (4, 0, 1) and counts.wait_s > 0
    assert load_trial(str(tmp_path), mode="PREDICT", layers=["Net_output_0"]).steps.tolist() == [
        0,
        1,
        2,
        3,
    ]


def test_a_byte_bound_counts_too_and_one_large_step_always_fits(tmp_path):
    step_bytes = _step(0).nbytes
    writer = StepWriter(tmp_path, tensor_names=NAMES, mode="PREDICT", max_bytes=step_bytes // 2)
    held = _HeldCopy()
    writer.put(_step(0, held))
    wait_until(lambda: writer.counts().queue_steps == 0)
    writer.put(_step(1))  # alone in the queue: fits although larger than the bound
    writer.put(_step(2))  # does not fit beside step 1: step 1 is dropped
    assert (writer.counts().dropped, writer.counts().queue_steps) == (1, 1)
    held.landed.set()
    writer.close()


def test_a_failing_disk_is_retried_reported_and_nothing_is_lost(tmp_path):
    staging = tmp_path / "trial"
    writer = StepWriter(staging, tensor_names=NAMES, mode="PREDICT")
    blocker = staging / "events"
    blocker.write_bytes(b"")  # a file where the events folder goes: every write fails
    writer.put(_step(0))
    wait_until(lambda: writer.counts().write_error is not None)
    assert "cannot write step 0" in writer.counts().write_error
    assert writer.counts().written == 0
    blocker.unlink()  # the disk recovers
    wait_until(lambda: writer.counts().written == 1)
    assert writer.counts().write_error is None
    writer.close()
    assert load_trial(str(staging), mode="PREDICT", layers=["Net_output_0"]).steps.tolist() == [0]


def test_bad_settings_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="queue policy 'newest' is not one of drop_oldest, block"):
        StepWriter(tmp_path, tensor_names=NAMES, mode="PREDICT", policy="newest")
    with pytest.raises(InputError, match="queue bounds must be positive"):
        StepWriter(tmp_path, tensor_names=NAMES, mode="PREDICT", max_steps=0)
