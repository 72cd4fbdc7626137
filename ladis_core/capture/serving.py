"""The inference capture (PREDICT mode): one step per request, safe under concurrent
request threads, written and uploaded in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ladis_core.capture.penultimate import _logits_of
from ladis_core.capture.staging import CaptureSummary, _StagedCapture
from ladis_core.capture.tap import LayerTap, copy_off
from ladis_core.capture.writer import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_STEPS,
    QUEUE_POLICIES,
    PendingStep,
    StepWriter,
)
from ladis_core.errors import CaptureClosedError, CaptureConflictError, InputError
from ladis_core.progress import ProgressCallback
from ladis_core.trials.meta import Preprocessing

log = logging.getLogger(__name__)


def _as_tensor(batch: Any, device: torch.device) -> torch.Tensor:
    if isinstance(batch, tuple | list):
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4:
        raise InputError(
            f"a batch must be a tensor of shape (k, C, H, W), got {getattr(batch, 'shape', type(batch))}"
        )
    return batch.to(device=device, dtype=torch.float32)


class ServingCapture(_StagedCapture):
    """Inference capture: every request is one PREDICT step, appended to the trial at
    ``out`` (after its newest step, so a restarted endpoint goes on where it stopped).

    **Off the request path.** :meth:`record` runs the forward pass with plain PyTorch
    hooks that copy the saved tensors (:mod:`~ladis_core.capture.tap`) and queues the
    step; a writer thread serialises it into the smdebug trial format in a local staging
    folder (:mod:`~ladis_core.capture.writer`), and an upload thread publishes finished
    steps every ``upload_interval_s`` seconds (0: only on :meth:`flush`) and on
    :meth:`close`. A request never waits on serialisation or on S3; during an S3 outage
    steps wait in the staging folder and are published once S3 is back.

    **A full queue** (``max_queue_steps`` steps or ``max_queue_bytes`` of tensors
    waiting to be written) follows ``queue_policy``: ``"drop_oldest"`` (default; the
    endpoint never waits, drops are counted and logged) or ``"block"`` (back-pressure:
    the request waits for room, counted). :meth:`health` carries the counts (``/ping``,
    ``/metrics``).

    :meth:`record` / :meth:`predict` are thread-safe: each request's tensors are
    collected on its own thread and numbered as one step; forward passes made on the
    model by other code are not recorded. One process per trial: two endpoints must
    not append to the same ``out``. smdebug is not used here (it stays the
    training-time capture, :class:`~ladis_core.capture.EvalCapture`); the trial is the
    same format, read by smdebug's own ``create_trial``.

    The penultimate layer is found by a dry forward pass of an input of ``input_shape``
    (C, H, W; guessed when ``None``), or named with ``penultimate`` (a module name), and
    recorded in the trial's ``ladis.json``; pass the reference's choice to be sure both
    trials hold the same layer.
    """

    def __init__(
        self,
        model: nn.Module,
        out: str,
        *,
        layers: Sequence[str] = (),
        include_inputs: bool = True,
        upload_interval_s: float = 2.0,
        penultimate: str | None = None,
        input_shape: Sequence[int] | None = None,
        preprocessing: Preprocessing | None = None,
        class_names: Sequence[str] = (),
        queue_policy: str = "drop_oldest",
        max_queue_steps: int = DEFAULT_MAX_STEPS,
        max_queue_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if queue_policy not in QUEUE_POLICIES:
            raise InputError(
                f"queue_policy={queue_policy!r} is not one of {', '.join(QUEUE_POLICIES)}"
            )
        self._queue_settings = (queue_policy, int(max_queue_steps), int(max_queue_bytes))
        super().__init__(
            model,
            out,
            mode="PREDICT",
            layers=layers,
            save_every=1,
            include_inputs=include_inputs,
            append=True,
            penultimate=penultimate,
            input_shape=input_shape,
            preprocessing=preprocessing,
            class_names=class_names,
        )
        model.eval()
        self._lock = threading.Lock()
        self.last_step: int | None = None
        self.requests = 0
        self._stop = threading.Event()
        self._uploader: threading.Thread | None = None
        self.upload_error: str | None = None
        if upload_interval_s and upload_interval_s > 0:
            self._uploader = threading.Thread(
                target=self._upload_loop,
                args=(float(upload_interval_s),),
                name="ladis-capture-upload",
                daemon=True,
            )
            self._uploader.start()
        atexit.register(self._close_at_exit)

    def _open_writer(
        self, *, include_regex: Sequence[str], save_every: int, start: tuple[int, int] | None
    ) -> None:
        assert self.plan is not None and self.model is not None
        policy, max_steps, max_bytes = self._queue_settings
        self.tap = LayerTap(self.model, self.plan)
        self.writer = StepWriter(
            self.staging,
            tensor_names=self.plan.tensor_names,
            mode=self.mode,
            policy=policy,
            max_steps=max_steps,
            max_bytes=max_bytes,
        )
        self._next = (0, 0)  # (global step, PREDICT step) of the next request
        if start is not None:
            self._continue_from(*start)

    def _continue_from(self, global_step: int, mode_step: int) -> None:
        self._next = (global_step + 1, mode_step + 1)

    def _finish_steps(self) -> None:
        self.writer.sync()

    def wait_until_staged(self, timeout: float | None = None) -> bool:
        """Wait until every recorded step is a finished step in the local staging folder
        (``False`` on timeout). A step is safe from a killed process once staged: the
        next capture into the trial publishes it. Steps still queued in memory (written
        within milliseconds, normally) are lost with the process."""
        return self.writer.sync(timeout)

    def _stop_writer(self) -> None:
        self.tap.remove()
        self.writer.close()

    def record(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Run ``batch`` (float32 (k, C, H, W) on the model's device) through the model
        as one PREDICT step; returns the logits (k, classes) and the step number. A
        forward pass that raises records nothing and uses no step number."""
        if self.closed:
            raise CaptureClosedError("the capture is closed; no more requests are recorded")
        assert self.plan is not None
        with self.tap.collect() as kept, torch.no_grad():
            logits = self.model(batch)  # type: ignore[misc]
        tensors = self.tap.settle(kept)
        if tensors is not None:
            if self.plan.input is not None:
                tensors[self.plan.input] = copy_off(batch)
            tensors[self.plan.output] = copy_off(_logits_of(logits, self.model._get_name()))
        wall_time = time.time()
        with self._lock:  # numbering and queueing in one order
            if self.closed:
                raise CaptureClosedError("the capture is closed; no more requests are recorded")
            step, mode_step = self._next
            if tensors is None:
                self.writer.drop(mode_step, "the model changed a saved tensor in place")
            else:
                self.writer.put(PendingStep(step, mode_step, wall_time, tensors))
            self._next = (step + 1, mode_step + 1)
            self.last_step = mode_step
            self.requests += 1
        return logits, mode_step

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """The logits (k, classes) of ``batch`` (float32 (k, C, H, W)); one PREDICT step,
        whose number is then in :attr:`last_step` (read it under your own lock if
        requests run concurrently, or use :meth:`record`)."""
        return self.record(batch)[0]

    def health(self) -> dict[str, Any]:
        """How capture is doing: steps ``recorded`` by requests, ``written`` to the
        staging folder, ``dropped`` by a full queue (``queue_policy`` drop_oldest),
        ``failed`` writes given up at close, ``queue_waits`` / ``queue_wait_s`` under
        back-pressure, ``queue_steps`` waiting now, ``steps_published`` in this session,
        and ``error``: the last upload or write error (``None`` once both work again)."""
        counts = self.writer.counts()
        return {
            "steps_recorded": counts.queued,
            "steps_written": counts.written,
            "steps_dropped": counts.dropped,
            "steps_failed": counts.failed,
            "queue_policy": counts.policy,
            "queue_waits": counts.waits,
            "queue_wait_s": counts.wait_s,
            "queue_steps": counts.queue_steps,
            "steps_published": self.publisher.steps,
            "error": self.upload_error or counts.write_error,
        }

    def flush(self, *, progress: ProgressCallback | None = None) -> int:
        """Write every recorded step and upload them now; returns how many were uploaded."""
        self.writer.sync()
        return self._publish(progress=progress)

    def _publish(self, *, progress: ProgressCallback | None = None) -> int:
        """Publish, keeping :attr:`upload_error` (shown by the server's ``/ping``) current."""
        try:
            published = self.publisher.publish(progress=progress)
        except Exception as exc:
            self.upload_error = str(exc)
            raise
        self.upload_error = None
        return published

    def close(self, *, progress: ProgressCallback | None = None) -> CaptureSummary:
        """Stop recording, upload what is left and detach from the model (idempotent)."""
        self._stop.set()
        if self._uploader is not None and self._uploader is not threading.current_thread():
            self._uploader.join(timeout=60)
        with self._lock:
            try:
                summary = super().close(progress=progress)
            except CaptureConflictError:
                atexit.unregister(self._close_at_exit)  # nothing to retry at exit
                raise
        atexit.unregister(self._close_at_exit)
        return summary

    def lifespan(self, app: Any) -> contextlib.AbstractAsyncContextManager[None]:
        """An ASGI lifespan (``FastAPI(lifespan=capture.lifespan)``, Starlette alike) that
        closes the capture, publishing its last steps, when the app shuts down."""

        @contextlib.asynccontextmanager
        async def span() -> Any:
            try:
                yield
            finally:
                self.close()

        return span()

    def _upload_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._publish()
            except CaptureConflictError as exc:  # retrying cannot help: stop publishing
                log.error("%s", exc)
                return
            except Exception as exc:  # noqa: BLE001 - keep serving; the next round retries
                log.warning("capture upload to %s failed (will retry): %s", self.uri, exc)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on
            log.error("capture to %s could not be closed at exit: %s", self.uri, exc)

    def __enter__(self) -> ServingCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
