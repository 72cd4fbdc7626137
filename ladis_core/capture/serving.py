"""The inference capture (PREDICT mode): one step per request, safe under concurrent
request threads, uploaded in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ladis_core.capture.hooks import _smdebug
from ladis_core.capture.staging import CaptureSummary, _StagedCapture
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

    :meth:`record` / :meth:`predict` are thread-safe: forward pass and step are taken
    under one lock, so concurrent requests each get their own step; forward passes made
    on the model by other code are not recorded. Finished steps are uploaded by a
    background thread every ``upload_interval_s`` seconds (0: only on :meth:`flush`),
    and on :meth:`close`. One process per trial: two endpoints must not append to the
    same ``out``.

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
    ) -> None:
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
        self.hook.ladis_gated = True  # only forward passes made by record() are steps
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

    def record(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Run ``batch`` (float32 (k, C, H, W) on the model's device) through the model
        as one PREDICT step; returns the logits (k, classes) and the step number."""
        _, mode_keys, _ = _smdebug()
        with self._lock:
            if self.closed:
                raise CaptureClosedError("the capture is closed; no more requests are recorded")
            self.hook.ladis_thread = threading.get_ident()
            try:
                with torch.no_grad():
                    logits = self.model(batch)  # type: ignore[misc]
            except BaseException:
                self._discard_step()
                raise
            finally:
                self.hook.ladis_thread = None
            # write this step's files now rather than at the next request
            self.hook._close_writers()
            step = int(self.hook.mode_steps[mode_keys.PREDICT])
            self.last_step = step
            self.requests += 1
        return logits, step

    def _discard_step(self) -> None:
        """Drop the step of a failed forward pass (some layers written, no output), so
        no reader ever meets it; its number stays unused."""
        from smdebug.core.locations import IndexFileLocationUtils, TensorFileLocation

        hook = self.hook
        with self.publisher.lock:  # not while the uploader looks at the staging folder
            hook._close_writers()
            step, worker = int(hook.step), hook.worker
            index = IndexFileLocationUtils.get_index_key_for_step(str(self.staging), step, worker)
            event = TensorFileLocation(step_num=step, worker_name=worker).get_file_location(
                trial_dir=str(self.staging)
            )
            for path in (index, event):
                Path(path).unlink(missing_ok=True)
        log.warning("a request failed inside the model; its capture step %d was dropped", step)

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """The logits (k, classes) of ``batch`` (float32 (k, C, H, W)); one PREDICT step,
        whose number is then in :attr:`last_step` (read it under your own lock if
        requests run concurrently, or use :meth:`record`)."""
        return self.record(batch)[0]

    def health(self) -> dict[str, Any]:
        """How publishing is doing: steps published in this session and the last upload
        error (``None`` once an upload succeeds again)."""
        return {"steps_published": self.publisher.steps, "error": self.upload_error}

    def flush(self, *, progress: ProgressCallback | None = None) -> int:
        """Upload every finished step now; returns how many were uploaded."""
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
