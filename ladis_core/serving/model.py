"""The served model: a classifier behind a lock, with its capture, answering
:class:`Prediction` objects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ladis_core.errors import EndpointClosedError

if TYPE_CHECKING:  # only for annotations: importing this module must stay light
    import numpy as np
    import torch

    from ladis_core.model.imported import ImportedSpec
    from ladis_core.model.spec import ModelSpec

from ladis_core.serving.codec import conform_images

log = logging.getLogger("ladis.serving")


CAPTURE_URI_ENV = "LADIS_CAPTURE_URI"


CAPTURE_LAYERS_ENV = "LADIS_CAPTURE_LAYERS"


#: what a full capture queue does when no one said: ``drop_oldest`` or ``block``
CAPTURE_QUEUE_ENV = "LADIS_CAPTURE_QUEUE"


DEVICE_ENV = "LADIS_DEVICE"


@dataclass(frozen=True)
class Prediction:
    """The model's answer to one request (one capture step).

    ``probabilities``: float32 ndarray of shape (N, num_classes) (softmax of the logits);
    ``predicted_class``: int64 ndarray of shape (N,); ``class_names``: the spec's names
    (may be empty); ``step``: the capture step that recorded the request, or ``None``.
    """

    probabilities: np.ndarray
    predicted_class: np.ndarray
    class_names: tuple[str, ...]
    step: int | None

    def __len__(self) -> int:
        return int(self.predicted_class.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer: ``{"predictions": [...], "step": int | None}``."""
        predictions = []
        for row, cls in zip(self.probabilities, self.predicted_class, strict=True):
            cls = int(cls)
            name = self.class_names[cls] if cls < len(self.class_names) else None
            predictions.append(
                {
                    "predicted_class": cls,
                    "class_name": name,
                    "probabilities": [float(p) for p in row],
                }
            )
        return {"predictions": predictions, "step": self.step}


class RequestCapture(Protocol):
    """What the endpoint needs of a capture (e.g. :class:`ladis_core.capture.ServingCapture`)."""

    def record(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Run ``batch`` (float32 (N, C, H, W) on the model's device) through the model,
        recording it as one PREDICT step; the logits and that step's number."""
        ...

    def flush(self) -> int:
        """Publish what was recorded; how many steps were published."""
        ...

    def close(self) -> object:
        """Publish the rest and stop; raises (and can be retried) if publishing fails."""
        ...

    def health(self) -> dict[str, Any]:
        """``{"steps_published": int, "error": str | None}`` for ``/ping``, and the
        queue's counts where the capture has them (``steps_recorded``, ``steps_dropped``,
        ...: see :meth:`ladis_core.capture.ServingCapture.health`)."""
        ...


class ServedModel:
    """A loaded model, ready to answer requests, optionally recording each one.

    ``predict`` runs one request at a time (a lock around the forward pass), so with
    capture on, every request is recorded exactly once as its own PREDICT step and the
    step returned is that request's.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: ModelSpec | ImportedSpec,
        *,
        device: str = "cpu",
        capture: RequestCapture | None = None,
        capture_uri: str | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.device = device
        self.capture = capture
        self.capture_uri = capture_uri
        self._lock = threading.Lock()
        self._closed = False
        self._requests = 0

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        capture_uri: str | None = None,
        layers: Sequence[str] = (),
        queue_policy: str | None = None,
    ) -> ServedModel:
        """Load ``model_dir`` (``model.pt`` + ``model.json``) on ``device`` and, when
        ``capture_uri`` is given, attach the PREDICT-mode capture writing there (a full
        capture queue follows ``queue_policy``, see :func:`_open_capture`)."""
        from ladis_core.model.spec import load_model

        model, spec = load_model(model_dir, device=device)
        capture = (
            _open_capture(
                model,
                capture_uri,
                layers=layers,
                input_shape=spec.input_shape,
                queue_policy=queue_policy,
            )
            if capture_uri
            else None
        )
        return cls(model, spec, device=device, capture=capture, capture_uri=capture_uri)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def requests(self) -> int:
        """Requests answered so far."""
        return self._requests

    def predict(self, images: np.ndarray) -> Prediction:
        """Classify ``images`` (float32 (N, C, H, W) in [0, 1], any size and 1/3/4
        channels) as one request: one forward pass, one capture step."""
        import torch

        batch = conform_images(images, self.spec.input_shape)
        tensor = torch.from_numpy(batch).to(self.device)
        with self._lock:
            if self._closed:
                raise EndpointClosedError(
                    "the endpoint is shutting down; retry on another instance"
                )
            step: int | None = None
            with torch.no_grad():
                if self.capture is None:
                    logits = self.model(tensor)
                else:
                    logits, step = self.capture.record(tensor)
            self._requests += 1
        probabilities = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
        return Prediction(
            probabilities=probabilities.astype("float32", copy=False),
            predicted_class=probabilities.argmax(axis=1).astype("int64"),
            class_names=tuple(self.spec.class_names),
            step=step,
        )

    def flush(self) -> int:
        """Publish the captured steps now (they are also published in the background
        and on close); returns how many were published."""
        return 0 if self.capture is None else int(self.capture.flush())

    def close(self) -> None:
        """Stop answering and flush/close the capture (idempotent; after a failed
        capture close, calling it again retries). A request already running finishes
        first: the lock is taken before the capture closes."""
        import atexit

        with self._lock:
            self._closed = True
            capture = self.capture
        if capture is None:
            return
        capture.close()  # raises (keeping the capture for a retry) if publishing fails
        self.capture = None
        atexit.unregister(self.close)  # registered by model_fn; nothing left to do at exit
        log.info("capture closed after %d requests (%s)", self._requests, self.capture_uri)


def _open_capture(
    model: torch.nn.Module,
    capture_uri: str,
    *,
    layers: Sequence[str],
    input_shape: Sequence[int] | None = None,
    penultimate: str | None = None,
    preprocessing: Any = None,
    class_names: Sequence[str] = (),
    queue_policy: str | None = None,
) -> RequestCapture:
    """The one place serving capture is created: a
    :class:`ladis_core.capture.ServingCapture` appending PREDICT steps to ``capture_uri``
    (after its newest step, so a restarted endpoint goes on numbering). A full capture
    queue follows ``queue_policy``, or ``LADIS_CAPTURE_QUEUE``, or drops the oldest step."""
    import os

    from ladis_core.capture import ServingCapture

    return ServingCapture(
        model,
        capture_uri,
        layers=tuple(layers),
        input_shape=input_shape,
        penultimate=penultimate,
        preprocessing=preprocessing,
        class_names=class_names,
        queue_policy=queue_policy or os.environ.get(CAPTURE_QUEUE_ENV, "").strip() or "drop_oldest",
    )
