"""The local HTTP endpoint: SageMaker's serving protocol without SageMaker.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` decodes the
body, classifies it and answers JSON, through the same ``input_fn``/``predict_fn``/
``output_fn`` that SageMaker would call (:mod:`ladis_core.serving`). With capture on,
every request is recorded as exactly one PREDICT step of an smdebug trial, and ``/ping``
also says how capture is doing: ``{"status": "ok", "capture": {"uri", "steps_published",
"error"}}`` (a failing upload does not stop predictions; a second endpoint capturing
into the same trial stops this one's publishing, see :mod:`ladis_core.capture`).

In-process use (the demo and the tests)::

    with start_server(model_dir, capture_uri="s3://ladis/trials/digits/inference") as srv:
        answer = invoke(srv.url, image, provenance={"source_index": 7, "attack": "none"})
        answer["predictions"][0]["predicted_class"], answer["step"]

Errors are answered as JSON ``{"error": <reason>, "message": <text>}``: 400 bad payload
or provenance header, 404 unknown path, 405 wrong method, 406 unmet ``Accept``, 411 no
``Content-Length``, 413 body over the limit (refused before it is read), 415 unsupported
``Content-Type``, 503 shutting down, and 500 with a generic message for anything
unexpected (the details go to the server log, never to the client). No request can stop
the server.

Provenance: a request may carry ``X-Ladis-Provenance: <JSON object>`` (where the input
came from: ``source_index``, ``true_label``, ``attack``, ``epsilon``, ``hour``, …). The
server adds the captured ``step`` and writes the records as JSON lines under the
provenance URI, in parts (``part-<first step>-<last step>-<run>.jsonl``, written once)
every ``provenance_every`` requests, on :meth:`RunningServer.flush` and on shutdown.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tarfile
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ladis_core import store
from ladis_core.config import cache_root, redact
from ladis_core.errors import DataNotFoundError, InputError, LadisError, StorageError, check
from ladis_core.serving import (
    EndpointClosedError,
    NotAcceptableError,
    ServedModel,
    UnsupportedContentTypeError,
    check_accept,
    input_fn,
    output_fn,
    predict_fn,
    resolve_device,
)
from ladis_core.store import layout

log = logging.getLogger("ladis.server")

PROVENANCE_HEADER = "X-Ladis-Provenance"
#: SageMaker's real-time endpoints refuse payloads above 6 MB; the same default here
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
DEFAULT_PROVENANCE_EVERY = 100
MAX_PROVENANCE_HEADER_CHARS = 4096
#: how long an idle keep-alive connection (or a slow body) may hold a handler thread
CONNECTION_TIMEOUT_S = 60.0
_GENERIC_500 = "internal error while handling the request; see the server log"

#: field → accepted JSON types of the provenance contract (docs/contracts.md)
_PROVENANCE_FIELDS: dict[str, tuple[type, ...]] = {
    "source_index": (int,),
    "true_label": (int,),
    "attack": (str,),
    "epsilon": (int, float),
    "hour": (str,),
}


class InvocationError(LadisError):
    """The endpoint refused or failed a request (``status`` is the HTTP code, ``None``
    when it could not be reached)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- provenance


def parse_provenance(text: str | None) -> dict[str, Any] | None:
    """Validate an ``X-Ladis-Provenance`` header: a JSON object of scalars, the known
    fields with their contract types. ``step`` is dropped (the server fills it in)."""
    if text is None or not text.strip():
        return None
    check(
        len(text) <= MAX_PROVENANCE_HEADER_CHARS,
        f"the {PROVENANCE_HEADER} header is {len(text)} characters; at most {MAX_PROVENANCE_HEADER_CHARS}",
    )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"the {PROVENANCE_HEADER} header is not valid JSON ({exc.msg})") from None
    check(isinstance(value, dict), f"the {PROVENANCE_HEADER} header must be a JSON object")
    record: dict[str, Any] = {}
    for key, item in value.items():
        if key == "step":
            continue
        check(
            item is None or isinstance(item, str | int | float | bool),
            f"{PROVENANCE_HEADER} field {key!r} must be a string, number, boolean or null",
        )
        # json.loads accepts NaN/Infinity, which the JSON-lines parts cannot hold
        check(
            not isinstance(item, float) or math.isfinite(item),
            f"{PROVENANCE_HEADER} field {key!r} must be a finite number, not {item!r}",
        )
        types = _PROVENANCE_FIELDS.get(key)
        if types is not None and item is not None:
            ok = isinstance(item, types) and not isinstance(item, bool)
            names = " or ".join(t.__name__ for t in types)
            check(ok, f"{PROVENANCE_HEADER} field {key!r} must be {names}, not {item!r}")
        record[key] = item
    return record


class ProvenanceRecorder:
    """Buffers provenance lines and writes them under ``uri`` in parts.

    Each part is one object written once (``if_absent``): ``part-<first step>-<last
    step>-<run id>.jsonl`` with one JSON object per line, sorted by step. A part is
    written every ``every`` records, on :meth:`flush` and on :meth:`close`. A failed write
    keeps the lines for the next attempt; :meth:`close` raises if they still cannot be
    written, so a loss is never silent. Thread-safe.
    """

    def __init__(self, uri: str, *, every: int = DEFAULT_PROVENANCE_EVERY) -> None:
        check(every >= 1, f"provenance_every={every} must be at least 1")
        self.uri = uri.rstrip("/")
        self.every = int(every)
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._parts = 0
        self._written = 0
        self._closed = False

    @property
    def written(self) -> int:
        """Records written so far."""
        return self._written

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def add(self, step: int, fields: Mapping[str, Any]) -> None:
        """Record that request ``step`` came from ``fields``; may write a part."""
        record = {"step": int(step), **{k: v for k, v in fields.items() if k != "step"}}
        with self._lock:
            self._buffer.append(record)
            due = len(self._buffer) >= self.every or self._closed
        if due:
            try:
                self.flush()
            except LadisError as exc:  # kept in the buffer; the request itself succeeded
                log.error("provenance not written yet (will retry): %s", exc)

    def flush(self) -> int:
        """Write what is buffered as one part; returns the number of records written."""
        with self._write_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
            if not lines:
                return 0
            lines.sort(key=lambda r: r["step"])
            self._parts += 1
            name = f"part-{lines[0]['step']:010d}-{lines[-1]['step']:010d}-{self.run_id}-{self._parts:05d}.jsonl"
            body = "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines).encode()
            try:
                store.write_bytes(
                    layout.join(self.uri, name),
                    body,
                    content_type="application/x-ndjson",
                    if_absent=True,
                )
            except BaseException:
                with self._lock:
                    self._buffer[:0] = lines
                raise
            self._written += len(lines)
            return len(lines)

    def close(self) -> None:
        """Write the rest; later records are written at once (nothing is dropped)."""
        with self._lock:
            self._closed = True
        self.flush()


# --------------------------------------------------------------------------- the app


class EndpointApp:
    """What the HTTP handlers call: the served model, provenance, limits, in-flight count."""

    def __init__(
        self,
        served: ServedModel,
        *,
        provenance: ProvenanceRecorder | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.served = served
        self.provenance = provenance
        self.max_body_bytes = int(max_body_bytes)
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def ready(self) -> bool:
        return not self.served.closed

    def health(self) -> dict[str, Any]:
        """The ``/ping`` body: ``status`` and, with capture on, how capture is doing (a
        failing capture does not stop predictions, so operators read it here)."""
        body: dict[str, Any] = {"status": "ok"}
        capture = self.served.capture
        if capture is not None:
            publisher = getattr(capture, "publisher", None)
            body["capture"] = {
                "uri": self.served.capture_uri,
                "steps_published": getattr(publisher, "steps", None),
                "error": getattr(capture, "upload_error", None),
            }
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
        data = input_fn(body, content_type)
        prediction = predict_fn(data, self.served)
        response, response_type = output_fn(prediction, accept)
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


class _Handler(BaseHTTPRequestHandler):
    """One connection. Every path through it answers JSON and never raises."""

    protocol_version = "HTTP/1.1"  # keep-alive: the replaying demo reuses connections
    server_version = "LADIS"
    sys_version = ""
    timeout = CONNECTION_TIMEOUT_S
    server: _HTTPServer

    # ---- routing
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("HEAD")

    def do_PUT(self) -> None:  # noqa: N802
        self._route("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def _route(self, method: str) -> None:
        app = self.server.app
        app.enter()
        try:
            path = urlsplit(self.path).path
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    self._refuse(
                        405, "method_not_allowed", f"{method} /ping is not supported; use GET"
                    )
                elif app.ready:
                    self._answer(200, json.dumps(app.health()).encode(), head=method == "HEAD")
                else:
                    self._answer(503, _error_body("unavailable", "the model is not loaded"))
            elif path == "/invocations":
                if method != "POST":
                    self._refuse(
                        405,
                        "method_not_allowed",
                        f"{method} /invocations is not supported; use POST",
                    )
                else:
                    self._invocation(app)
            else:
                self._refuse(
                    404, "not_found", f"no such path {path!r}; use GET /ping or POST /invocations"
                )
        except (TimeoutError, ConnectionError) as exc:  # a slow or vanished client
            log.info("%s %s: connection dropped (%s)", method, self.path, exc.__class__.__name__)
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the server must survive every request
            log.error(
                "unexpected error in %s %s:\n%s", method, self.path, redact(traceback.format_exc())
            )
            self._safe_answer(500, _error_body("internal_error", _GENERIC_500), close=True)
        finally:
            app.leave()

    def _invocation(self, app: EndpointApp) -> None:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            # chunked bodies are not supported: we must know the size before reading
            self._refuse(411, "length_required", "send the body with a Content-Length header")
            return
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self._refuse(400, "bad_request", f"Content-Length {length_text!r} is not a byte count")
            return
        if length > app.max_body_bytes:
            self._refuse(
                413,
                "payload_too_large",
                f"the body is {length} bytes; this endpoint accepts at most {app.max_body_bytes}",
            )
            return
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self._refuse(400, "bad_request", f"the body ended after {len(body)} of {length} bytes")
            return
        started = time.perf_counter()
        try:
            response, response_type, step = app.invoke(
                body,
                self.headers.get("Content-Type"),
                self.headers.get("Accept"),
                self.headers.get(PROVENANCE_HEADER),
            )
        except LadisError as exc:
            status = _status_of(exc)
            if status >= 500:
                log.error("invocation failed: %s", redact(str(exc)))
                message = str(exc) if isinstance(exc, EndpointClosedError) else _GENERIC_500
            else:
                log.info("refused invocation (%d): %s", status, redact(str(exc)))
                message = str(exc)
            reason = HTTPStatus(status).phrase.lower().replace(" ", "_")
            self._answer(status, _error_body(reason, redact(message)))
            return
        log.debug("step %s answered in %.1f ms", step, 1000 * (time.perf_counter() - started))
        headers = {"X-Ladis-Step": str(step)} if step is not None else {}
        self._answer(200, response, content_type=response_type, headers=headers)

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl's habit for big bodies): refuse an oversized
        body before the client sends it."""
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.server.app.max_body_bytes:
            self._refuse(
                413,
                "payload_too_large",
                f"the body is {length} bytes; this endpoint accepts at most {self.server.app.max_body_bytes}",
            )
            return False
        return super().handle_expect_100()

    # ---- answering
    def _refuse(self, status: int, reason: str, message: str) -> None:
        # a body may be left unread: the connection cannot safely carry another request
        self._answer(status, _error_body(reason, message), close=True)

    def _answer(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _safe_answer(self, status: int, body: bytes, *, close: bool) -> None:
        try:
            self._answer(status, body, close=close)
        except OSError:  # the client is gone
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unsupported method, huge
        headers), answered as JSON like ours."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._safe_answer(
            code, _error_body(phrase.lower().replace(" ", "_"), message or phrase), close=True
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)


def _error_body(reason: str, message: str) -> bytes:
    return json.dumps({"error": reason, "message": message}).encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block exit
    allow_reuse_address = True
    request_queue_size = 128  # a burst of clients must not overflow the listen backlog
    app: EndpointApp

    def handle_error(self, request: Any, client_address: Any) -> None:
        # reached only for socket-level failures (client reset); requests are handled
        log.debug("connection from %s failed:\n%s", client_address, redact(traceback.format_exc()))


# --------------------------------------------------------------------------- running


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
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    provenance_every: int = DEFAULT_PROVENANCE_EVERY,
    cache_dir: str | Path | None = None,
) -> RunningServer:
    """Load a model and serve it on ``host:port`` (0: a free port) in a background thread.

    ``model``: a model folder, an ``s3://`` prefix holding ``model.pt`` + ``model.json``
    (mirrored to ``cache_dir`` first), a ``model.tar.gz`` (SageMaker's packaging), or an
    already loaded :class:`ServedModel` (the server then owns and closes it).
    ``capture_uri``: where the PREDICT trial is written (``None``: no capture);
    ``layers``: extra layer regexes to capture; ``provenance_uri``: where provenance
    parts go (needs capture, since records are keyed by the captured step).
    """
    check(max_body_bytes >= 1, f"max_body_bytes={max_body_bytes} must be positive")
    check(
        provenance_uri is None or capture_uri is not None or isinstance(model, ServedModel),
        "a provenance URI needs a capture URI: provenance records are keyed by the captured step",
    )
    if isinstance(model, ServedModel):
        served = model
    else:
        model_dir = resolve_model_dir(model, cache_dir=cache_dir)
        served = ServedModel.load(
            model_dir, device=resolve_device(device), capture_uri=capture_uri, layers=layers
        )
    try:
        recorder = (
            ProvenanceRecorder(provenance_uri, every=provenance_every) if provenance_uri else None
        )
        app = EndpointApp(served, provenance=recorder, max_body_bytes=max_body_bytes)
        try:
            httpd = _HTTPServer((host, int(port)), _Handler)
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


# --------------------------------------------------------------------------- model location


def default_cache_dir() -> Path:
    """Where models fetched from S3 are cached: ``<LADIS_CACHE_DIR>/models``."""
    return cache_root() / "models"


def resolve_model_dir(model: str | Path, *, cache_dir: str | Path | None = None) -> Path:
    """A local folder holding the model of ``model`` (a folder, ``s3://`` prefix or
    ``.tar.gz``). Remote models are cached under ``cache_dir`` in a folder named after
    the objects' URIs, sizes and ETags, so a changed model is fetched afresh."""
    text = str(model)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if text.endswith((".tar.gz", ".tgz")):
        return _extract_archive(text, cache)
    if not store.is_s3(text):
        path = store.local_path(text)
        if not path.is_dir():
            raise DataNotFoundError(
                f"model folder {text} does not exist; train or download a model first"
            )
        return path
    objects = store.list_objects(text)
    if not objects:
        raise DataNotFoundError(f"no model under {text}: expected model.pt and model.json there")
    fingerprint = hashlib.sha256(
        "\n".join(
            f"{o.uri}\t{o.size}\t{o.etag}" for o in sorted(objects, key=lambda o: o.uri)
        ).encode()
    ).hexdigest()[:20]
    target = cache / fingerprint
    fetched = store.mirror_prefix(text, target)
    log.info("model %s: %d file(s) fetched into %s", text, len(fetched), target)
    return target


def _extract_archive(uri: str, cache: Path) -> Path:
    data = store.read_bytes(uri)
    target = cache / f"archive-{hashlib.sha256(data).hexdigest()[:20]}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            archive.extractall(staging, filter="data")  # refuses absolute paths and ../
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{uri} is not a readable model archive ({exc})") from None
    (staging / ".complete").write_text("")
    try:
        os.replace(staging, target)
    except OSError:  # another process extracted it first
        if not (target / ".complete").is_file():
            raise StorageError(f"cannot unpack {uri} into {target}") from None
    return target


# --------------------------------------------------------------------------- client


def _opener() -> Any:
    import urllib.request

    # no proxies: the endpoint is on loopback, and an http_proxy setting must not divert it
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _endpoint_url(url: str, path: str) -> str:
    base = url.rstrip("/")
    for suffix in ("/invocations", "/ping"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + path


def invoke(
    url: str,
    image: Any,
    *,
    provenance: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """POST ``image`` to the endpoint at ``url`` as ``application/x-npy``; return the
    parsed JSON answer (``{"predictions": [...], "step": ...}``).

    ``image``: ndarray (C, H, W) or (N, C, H, W), float in [0, 1] or uint8 0–255.
    ``provenance``: fields sent in the ``X-Ladis-Provenance`` header. A refused or failed
    request raises :class:`InvocationError` carrying the status and the server's message.
    """
    import urllib.error
    import urllib.request

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(image), allow_pickle=False)
    headers = {"Content-Type": "application/x-npy", "Accept": "application/json"}
    if provenance is not None:
        headers[PROVENANCE_HEADER] = json.dumps(
            dict(provenance), separators=(",", ":"), allow_nan=False
        )
    request = urllib.request.Request(
        _endpoint_url(url, "/invocations"), data=buffer.getvalue(), headers=headers, method="POST"
    )
    try:
        with _opener().open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", "")
        except (ValueError, AttributeError, OSError):
            message = ""
        raise InvocationError(
            f"the endpoint at {url} answered {exc.code}: {message or exc.reason}", status=exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvocationError(
            f"cannot reach the endpoint at {url} ({reason}); is it running?"
        ) from None


def ping(url: str, *, timeout: float = 5.0) -> bool:
    """True when ``GET /ping`` answers 200."""
    import urllib.error

    try:
        with _opener().open(_endpoint_url(url, "/ping"), timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
