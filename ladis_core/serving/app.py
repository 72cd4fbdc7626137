"""The endpoint behind the HTTP layer: readiness, health, one invocation through the
SageMaker contract functions, and draining on shutdown.
"""

from __future__ import annotations

import hmac
import threading
from typing import Any

from ladis_core.config import redact
from ladis_core.errors import (
    EndpointClosedError,
    InputError,
    LadisError,
    NotAcceptableError,
    UnsupportedContentTypeError,
)
from ladis_core.serving.codec import check_accept, decode_request, pixel_limit
from ladis_core.serving.contract import output_fn, predict_fn
from ladis_core.serving.metrics import ServingMetrics
from ladis_core.serving.model import ServedModel
from ladis_core.serving.provenance import ProvenanceRecorder, parse_provenance

#: request bodies above this size are refused before they are read (HTTP 413)
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024

#: the capture's counts everyone may read in ``/ping`` (see ``ServingCapture.health``)
CAPTURE_COUNTS = (
    "steps_recorded",
    "steps_written",
    "steps_dropped",
    "steps_failed",
    "queue_policy",
    "queue_waits",
    "queue_steps",
    "steps_published",
)

#: the header by which the operator asks ``/ping`` for the details (URIs, last errors)
OPERATOR_HEADER = "X-Ladis-Operator-Token"


class EndpointApp:
    """What the HTTP handlers call: the served model, provenance, limits, in-flight count."""

    def __init__(
        self,
        served: ServedModel,
        *,
        provenance: ProvenanceRecorder | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        operator_token: str | None = None,
    ) -> None:
        self.served = served
        self.provenance = provenance
        self.max_body_bytes = int(max_body_bytes)
        self._operator_token = operator_token or None
        self.max_pixels = pixel_limit(served.spec.input_shape)
        self._in_flight = 0
        self._idle = threading.Condition()
        capture = served.capture
        self.metrics = ServingMetrics(capture.health if capture is not None else lambda: None)

    @property
    def ready(self) -> bool:
        return not self.served.closed

    def is_operator(self, token: str | None) -> bool:
        """Whether ``token`` is the operator token (compared in constant time)."""
        if not self._operator_token or not token:
            return False
        return hmac.compare_digest(token.encode(), self._operator_token.encode())

    def health(self, *, operator_token: str | None = None) -> dict[str, Any]:
        """The ``/ping`` body: ``status`` and, with capture or provenance on, counts of
        how they are doing (a failing upload does not stop predictions, so operators read
        it here): ``capture: {steps_recorded, steps_written, steps_dropped, steps_failed,
        queue_policy, queue_waits, queue_steps, steps_published, upload_failing}``, ``provenance:
        {written, pending, dropped, failing}``. Where data goes and the last errors
        (``uri``, ``error``) are added only for the operator (``operator_token``)."""
        body: dict[str, Any] = {"status": "ok"}
        detail = self.is_operator(operator_token)
        capture = self.served.capture
        if capture is not None:
            state = capture.health()
            body["capture"] = {
                name: state.get(name)
                for name in CAPTURE_COUNTS
                if name == "steps_published" or name in state
            }
            body["capture"]["upload_failing"] = state.get("error") is not None
            if detail:
                body["capture"].update(
                    {"uri": self.served.capture_uri, "error": _safe(state.get("error"))}
                )
        if self.provenance is not None:
            status = self.provenance.status()
            body["provenance"] = {
                "written": status.written,
                "pending": status.pending,
                "dropped": status.dropped,
                "failing": status.last_error is not None,
            }
            if detail:
                body["provenance"].update(
                    {"uri": self.provenance.uri, "error": _safe(status.last_error)}
                )
        return body

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        provenance_header: str | None,
    ) -> tuple[bytes, str, int | None]:
        """One invocation through the SageMaker contract: (response body, type, step).

        The provenance header is checked before the model runs, so a refused request is
        never captured.
        """
        fields = parse_provenance(provenance_header)
        check_accept(accept)  # before the model runs, so a refused request is not captured
        data = decode_request(body, content_type, max_pixels=self.max_pixels)
        try:
            prediction = predict_fn(data, self.served)
            response, response_type = output_fn(prediction, accept)
        except Exception as exc:
            # with sagemaker-inference installed the contract functions raise the toolkit's
            # errors (for SageMaker's own server); this server answers LADIS's instead
            cause = exc.__cause__
            if isinstance(cause, LadisError) and type(exc).__module__.startswith(
                "sagemaker_inference"
            ):
                raise cause from None
            raise
        if prediction.step is not None:
            self.metrics.captured.inc()
        if fields is not None and self.provenance is not None and prediction.step is not None:
            self.provenance.add(prediction.step, fields)
        return response, response_type, prediction.step

    def enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def drain(self, timeout_s: float) -> bool:
        """Wait until no request is running (at most ``timeout_s``); True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)

    def close(self) -> None:
        """Close the capture (flushing it), then write the remaining provenance."""
        try:
            self.served.close()
        finally:
            if self.provenance is not None:
                self.provenance.close()


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, UnsupportedContentTypeError | NotAcceptableError | EndpointClosedError):
        return int(exc.status)
    if isinstance(exc, InputError):
        return 400
    return 500


def _safe(text: str | None) -> str | None:
    return None if text is None else redact(text)
