"""Running the endpoint in-process: :func:`start_server` and :class:`RunningServer`.

In-process use (the demo and the tests)::

    with start_server(model_dir, capture_uri="s3://ladis/trials/digits/inference") as srv:
        answer = invoke(srv.url, image, provenance={"source_index": 7, "attack": "none"})
        answer["predictions"][0]["predicted_class"], answer["step"]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ladis_core.devices import resolve_device
from ladis_core.errors import InputError, check
from ladis_core.model.store import resolve_model_dir
from ladis_core.serving.app import DEFAULT_MAX_BODY_BYTES, EndpointApp
from ladis_core.serving.http import _HTTPServer
from ladis_core.serving.model import ServedModel
from ladis_core.serving.provenance import (
    DEFAULT_PROVENANCE_EVERY,
    ProvenanceRecorder,
)
from ladis_core.serving.workers import DEFAULT_QUEUE, DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_WORKERS

log = logging.getLogger("ladis.server")


@dataclass
class RunningServer:
    """A started endpoint. ``url`` is ``http://host:port``; stop it with :meth:`stop`
    (or use it as a context manager), which flushes capture and provenance."""

    host: str
    port: int
    app: EndpointApp
    _httpd: _HTTPServer
    _thread: threading.Thread
    _stopped: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def served(self) -> ServedModel:
        return self.app.served

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopped

    def flush(self) -> int:
        """Publish the captured steps and write buffered provenance now (e.g. at the end
        of a replayed hour), steps first so that no record names an unpublished step.
        Returns the number of provenance records written."""
        self.app.served.flush()
        return self.app.provenance.flush() if self.app.provenance is not None else 0

    def stop(self, *, drain_timeout_s: float = 30.0) -> None:
        """Stop accepting, let running requests finish (at most ``drain_timeout_s``),
        close the capture and write the remaining provenance. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        if not self.app.drain(drain_timeout_s):
            log.warning("requests still running after %.0f s; closing anyway", drain_timeout_s)
        self.app.close()
        log.info("endpoint %s stopped after %d requests", self.url, self.app.served.requests)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    model: str | Path | ServedModel,
    *,
    capture_uri: str | None = None,
    provenance_uri: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    device: str = "cpu",
    layers: Sequence[str] = (),
    capture_queue: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    provenance_every: int = DEFAULT_PROVENANCE_EVERY,
    cache_dir: str | Path | None = None,
    workers: int = DEFAULT_WORKERS,
    queue: int = DEFAULT_QUEUE,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    operator_token: str | None = None,
) -> RunningServer:
    """Load a model and serve it on ``host:port`` (0: a free port) in a background thread.

    ``model``: a model folder, an ``s3://`` prefix holding ``model.pt`` + ``model.json``
    (mirrored to ``cache_dir`` first), a ``model.tar.gz`` (SageMaker's packaging), or an
    already loaded :class:`ServedModel` (the server then owns and closes it).
    ``capture_uri``: where the PREDICT trial is written (``None``: no capture);
    ``layers``: extra layer regexes to capture; ``capture_queue``: what a full capture
    queue does, ``"drop_oldest"`` or ``"block"`` (``None``: ``LADIS_CAPTURE_QUEUE``, else
    drop_oldest; see :class:`~ladis_core.capture.ServingCapture`); ``provenance_uri``: where provenance
    parts go (needs capture, since records are keyed by the captured step).

    Abuse limits: ``workers`` connections are served at once and ``queue`` more wait
    (503 past that); a request must arrive whole within ``request_timeout_s`` (408);
    images above a pixel count set by the model's input size are refused (400).
    ``operator_token``: who sends it in ``X-Ladis-Operator-Token`` gets the capture and
    provenance URIs and last errors in ``/ping`` (everyone else: counts only).
    """
    check(max_body_bytes >= 1, f"max_body_bytes={max_body_bytes} must be positive")
    check(workers >= 1 and queue >= 0, f"workers={workers} must be ≥ 1 and queue={queue} ≥ 0")
    check(request_timeout_s > 0, f"request_timeout_s={request_timeout_s} must be positive")
    check(
        provenance_uri is None or capture_uri is not None or isinstance(model, ServedModel),
        "a provenance URI needs a capture URI: provenance records are keyed by the captured step",
    )
    if isinstance(model, ServedModel):
        served = model
    else:
        model_dir = resolve_model_dir(model, cache_dir=cache_dir)
        served = ServedModel.load(
            model_dir,
            device=str(resolve_device(device or None, default="auto")),
            capture_uri=capture_uri,
            layers=layers,
            queue_policy=capture_queue,
        )
    recorder: ProvenanceRecorder | None = None
    try:
        recorder = (
            ProvenanceRecorder(provenance_uri, every=provenance_every) if provenance_uri else None
        )
        app = EndpointApp(
            served,
            provenance=recorder,
            max_body_bytes=max_body_bytes,
            operator_token=operator_token,
        )
        try:
            httpd = _HTTPServer(
                (host, int(port)),
                workers=int(workers),
                queue_size=int(queue),
                request_timeout_s=float(request_timeout_s),
            )
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
            ) from None
        httpd.app = app
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"ladis-endpoint-{port}",
            daemon=True,
        )
        thread.start()
    except BaseException:
        served.close()
        if recorder is not None:
            recorder.close()  # nothing was recorded; stops its thread
        raise
    bound_host, bound_port = httpd.server_address[:2]
    running = RunningServer(
        host=str(bound_host), port=int(bound_port), app=app, _httpd=httpd, _thread=thread
    )
    log.info(
        "endpoint %s serving %s (%s) on %s, capture %s",
        running.url,
        served.spec.architecture,
        served.device,
        host,
        served.capture_uri or "off",
    )
    return running
