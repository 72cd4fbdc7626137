"""The serving capture's native writer against smdebug as the oracle, and off the request
path: every tensor of every classifier family, read with smdebug's own ``create_trial``,
is bit for bit what the model computed; steps recorded while the real S3 server is down
are published once it is back."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import psutil
import pytest
import torch

from ladis_core import capture, trials
from ladis_core.capture.tap import LayerTap
from tests.support.architectures import ARCHITECTURES, seeded
from tests.support.trials import tiny_model
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

#: requests of different batch sizes
BATCHES = (1, 3, 2)


def _layers(model: torch.nn.Module, head: str) -> list[str]:
    """Every top-level child but the head (ResNet's bn1 is followed by an in-place ReLU:
    what is saved must be the value before it)."""
    return [name for name, _ in model.named_children() if name != head.split(".")[0]]


def _computed(model, names, images) -> dict[str, np.ndarray]:
    """The plan's tensors as the model computes them, by hooks written here (each value
    copied at once: later in-place operations must not change it)."""
    modules = dict(model.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = []
    top = model._get_name()
    for name in names:
        if name.startswith(f"{top}_"):
            continue
        module_name, side = name.rsplit("_", 2)[0], name.rsplit("_", 2)[1]

        def keep(value, name=name):
            tensor = value[0] if isinstance(value, tuple) else value
            seen.setdefault(name, tensor.detach().clone().numpy())

        if side == "output":
            handles.append(
                modules[module_name].register_forward_hook(lambda _m, _i, o, k=keep: k(o))
            )
        else:
            handles.append(
                modules[module_name].register_forward_pre_hook(lambda _m, i, k=keep: k(i))
            )
    try:
        with torch.no_grad():
            seen[f"{top}_output_0"] = model(images).numpy()
    finally:
        for handle in handles:
            handle.remove()
    seen[f"{top}_input_0"] = images.numpy()
    return seen


@pytest.mark.parametrize(
    ("name", "make", "tensor", "head", "width"), ARCHITECTURES, ids=[a[0] for a in ARCHITECTURES]
)
def test_smdebug_reads_every_tensor_bit_for_bit(name, make, tensor, head, width, tmp_path):
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    model = seeded(make)
    out = str(tmp_path / "inference")
    generator = torch.Generator().manual_seed(4)
    requests = [torch.rand((k, 3, 32, 32), generator=generator) for k in BATCHES]
    with capture.ServingCapture(
        model, out, layers=_layers(model, head), input_shape=(3, 32, 32), upload_interval_s=0
    ) as cap:
        names = cap.tensor_names
        for number, images in enumerate(requests):
            assert cap.record(images)[1] == number
    assert tensor in names and len(names) >= 3

    theirs = create_trial(out)
    assert sorted(theirs.tensor_names()) == sorted(names)
    for step, images in enumerate(requests):
        expected = _computed(model, names, images)
        for saved in names:
            value = theirs.tensor(saved).value(step, mode=ModeKeys.PREDICT)
            assert value.dtype == expected[saved].dtype and value.shape == expected[saved].shape
            assert value.tobytes() == expected[saved].tobytes(), (saved, step)
    ours = trials.load_trial(out, mode="PREDICT", include_inputs=True)  # no layer named
    assert list(ours.layers) == [tensor] and ours.layers[tensor].shape == (sum(BATCHES), width)
    assert ours.steps.tolist() == [0, 1, 1, 1, 2, 2]


def test_the_hooks_see_only_the_capture_and_leave_with_it(tmp_path):
    model = seeded(ARCHITECTURES[0][1])
    images = torch.rand((2, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    cap = capture.ServingCapture(
        model, str(tmp_path / "t"), layers=["layer1"], input_shape=(3, 32, 32), upload_interval_s=0
    )
    with torch.no_grad():
        model(images)  # a forward pass of other code: not a step
    cap.record(images)
    summary = cap.close()
    assert (summary.steps, summary.first_step, summary.last_step) == (1, 0, 0)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert isinstance(cap.tap, LayerTap)


def _kill(server) -> None:
    pid = server.status().pid
    assert pid is not None
    process = psutil.Process(pid)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_steps_recorded_during_an_s3_outage_are_published_afterwards(own_s3_server, tmp_path):
    uri = "s3://ladis/trials/outage/inference"
    model = tiny_model()
    values = [0.01 * (i + 1) for i in range(20)]
    cap = capture.ServingCapture(model, uri, include_inputs=True, upload_interval_s=0.2)
    try:
        for value in values[:5]:
            cap.record(torch.full((1, 3, 2, 2), value))
        wait_until(lambda: cap.health()["steps_published"] == 5, timeout_s=60)
        _kill(own_s3_server)
        for value in values[5:15]:  # requests go on; nothing waits for the store
            cap.record(torch.full((1, 3, 2, 2), value))
        assert cap.wait_until_staged(timeout=30)
        wait_until(lambda: cap.health()["error"] is not None, timeout_s=60)
        health = cap.health()
        assert (health["steps_recorded"], health["steps_written"], health["steps_published"]) == (
            15,
            15,
            5,
        )
        own_s3_server.start(timeout_s=60)
        for value in values[15:]:
            cap.record(torch.full((1, 3, 2, 2), value))
        wait_until(lambda: cap.health()["steps_published"] == 20, timeout_s=120)
        assert cap.health()["error"] is None and cap.health()["steps_dropped"] == 0
    finally:
        if not own_s3_server.status().running:
            own_s3_server.start(timeout_s=60)
        cap.close()
    data = trials.load_trial(uri, mode="PREDICT", include_inputs=True, cache_dir=tmp_path / "c")
    assert data.steps.tolist() == list(range(20))
    assert np.allclose(data.inputs[:, 0, 0, 0], values, atol=1e-7)


def test_a_full_queue_follows_the_chosen_policy_and_says_so(tmp_path, monkeypatch):
    """A writer slower than the requests (its files go to a folder that fails while the
    test holds it) fills the queue: drop_oldest counts drops, block counts waits."""
    model = tiny_model()
    for policy in ("drop_oldest", "block"):
        cap = capture.ServingCapture(
            model,
            str(tmp_path / policy),
            include_inputs=True,
            upload_interval_s=0,
            queue_policy=policy,
            max_queue_steps=2,
        )
        blocker = cap.staging / "events"
        blocker.write_bytes(b"")  # every write fails and is retried: the queue fills
        cap.record(torch.full((1, 3, 2, 2), 0.0))
        wait_until(lambda c=cap: c.health()["queue_steps"] == 0, timeout_s=10)  # in hand
        cap.record(torch.full((1, 3, 2, 2), 1.0))
        cap.record(torch.full((1, 3, 2, 2), 2.0))
        if policy == "drop_oldest":
            for i in range(3, 6):  # none of these waits: the oldest queued steps go
                cap.record(torch.full((1, 3, 2, 2), float(i)))
            health = cap.health()
            assert (health["steps_dropped"], health["queue_waits"]) == (3, 0)
            blocker.unlink()
        else:
            threading.Timer(0.5, blocker.unlink).start()
            cap.record(torch.full((1, 3, 2, 2), 3.0))  # waits until the disk recovers
            health = cap.health()
            assert (health["queue_waits"], health["steps_dropped"]) == (1, 0)
            assert health["queue_wait_s"] > 0
        summary = cap.close()
        kept = trials.load_trial(str(tmp_path / policy), mode="PREDICT").steps.tolist()
        assert summary.steps == len(kept)
        assert kept == ([0, 1, 2, 3] if policy == "block" else [0, 4, 5])
