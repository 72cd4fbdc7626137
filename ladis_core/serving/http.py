"""The local HTTP endpoint: SageMaker's serving protocol without SageMaker.

``GET /ping`` answers 200 once the model is loaded; ``GET /metrics`` gives Prometheus
counters (:mod:`ladis_core.serving.metrics`); ``POST /invocations`` decodes the
body, classifies it and answers JSON, with the same decoding and the same
``predict_fn``/``output_fn`` that SageMaker would call (:mod:`ladis_core.serving`). With capture on,
every request is recorded as exactly one PREDICT step of an smdebug trial, and ``/ping``
also says how capture and provenance are doing, as counts only (see
:meth:`~ladis_core.serving.app.EndpointApp.health`); the capture URI and the last upload
error are added only for the operator (header ``X-Ladis-Operator-Token``).

At most ``workers`` connections are served at once and ``queue`` more wait; past that a
connection is answered 503 at once (:mod:`ladis_core.serving.workers`). A request must
arrive whole within ``request_timeout_s`` or it is answered 408.

The server itself is started by :func:`ladis_core.serving.server.start_server`.

Errors are answered as JSON ``{"error": <reason>, "message": <text>}``: 400 bad payload,
provenance header, ``Content-Length`` (anything but one run of digits) or any
``Transfer-Encoding``, 404 unknown path, 405 wrong method, 406 unmet ``Accept``, 408
request not received in time, 411 no ``Content-Length``, 413 body over the limit
(refused before it is read), 415 unsupported ``Content-Type``, 503 busy or shutting down,
and 500 with a generic message for anything unexpected (the details go to the server
log, never to the client). No request can stop the server.

Provenance: a request may carry ``X-Ladis-Provenance: <JSON object>`` (where the input
came from: ``source_index``, ``true_label``, ``attack``, ``epsilon``, ``hour``, …). The
server adds the captured ``step``; a background thread writes the records as JSON lines
under the provenance URI (:class:`~ladis_core.serving.provenance.ProvenanceRecorder`):
no request ever waits on storage.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from ladis_core.config import redact
from ladis_core.errors import EndpointClosedError, LadisError
from ladis_core.serving.app import OPERATOR_HEADER, EndpointApp, _status_of
from ladis_core.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ladis_core.serving.provenance import PROVENANCE_HEADER
from ladis_core.serving.workers import DeadlineReader, WorkerPool, answer_busy, lingering_close

log = logging.getLogger("ladis.server")

#: a Content-Length is one run of ASCII digits (``int()`` would accept "+1", " 1", "1_0")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


_GENERIC_500 = "internal error while handling the request; see the server log"


class _Handler(BaseHTTPRequestHandler):
    """One connection. Every path through it answers JSON and never raises."""

    protocol_version = "HTTP/1.1"  # keep-alive: the replaying demo reuses connections
    server_version = "LADIS"
    sys_version = ""
    server: _HTTPServer

    def setup(self) -> None:
        self.timeout = self.server.request_timeout_s  # per send; reads have their deadline
        super().setup()
        self.rfile.close()  # the plain reader: its socket reference would delay the close
        self._reader = DeadlineReader(self.connection, idle_s=self.server.request_timeout_s)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request, which must arrive whole (line, headers, body) before the deadline."""
        self._reader.start(self.server.request_timeout_s)
        try:
            super().handle_one_request()
        finally:
            self._reader.stop()

    def _received(self) -> bool:
        """The request has arrived: stop its deadline; ``False`` (after answering 408)
        when it came too late."""
        late = self._reader.late
        self._reader.stop()
        if late:
            self._answer_late()
        return not late

    def _answer_late(self) -> None:
        self._safe_answer(
            408,
            _error_body(
                "request_timeout",
                f"the request did not arrive within {self.server.request_timeout_s:g} s",
            ),
            close=True,
        )

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
            if path != "/invocations" and not self._received():
                return
            if path == "/ping":
                if method not in ("GET", "HEAD"):
                    self._refuse(
                        405, "method_not_allowed", f"{method} /ping is not supported; use GET"
                    )
                elif app.ready:
                    health = app.health(operator_token=self.headers.get(OPERATOR_HEADER))
                    self._answer(200, json.dumps(health).encode(), head=method == "HEAD")
                else:
                    self._answer(503, _error_body("unavailable", "the model is not loaded"))
            elif path == "/metrics" and method == "GET":
                self._answer(200, app.metrics.exposition(), content_type=METRICS_CONTENT_TYPE)
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
        if self._reader.late:
            self._received()  # the headers themselves came too late
            return
        if self.headers.get_all("Transfer-Encoding"):
            # the size must be known before reading; a second framing is also how request
            # smuggling starts, so any Transfer-Encoding is refused
            self._refuse(
                400, "bad_request", "Transfer-Encoding is not supported; send a Content-Length"
            )
            return
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            self._refuse(411, "length_required", "send the body with a Content-Length header")
            return
        length_text = lengths[0].strip()
        if len(lengths) > 1 or not _CONTENT_LENGTH.fullmatch(length_text):
            shown = ", ".join(repr(v[:20]) for v in lengths[:3])
            self._refuse(400, "bad_request", f"Content-Length {shown} is not one byte count")
            return
        length = int(length_text)
        if length > app.max_body_bytes:
            self._refuse(
                413,
                "payload_too_large",
                f"the body is {length} bytes; this endpoint accepts at most {app.max_body_bytes}",
            )
            return
        try:
            body = self.rfile.read(length) if length else b""
        except TimeoutError:  # the deadline passed while the body trickled in
            self._reader.stop()
            self._answer_late()
            return
        if not self._received():
            return
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
        self.server.app.metrics.answered(urlsplit(getattr(self, "path", "")).path, status)
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


_BUSY_BODY = _error_body(
    "service_unavailable", "every worker of this endpoint is busy; retry in a moment"
)


class _HTTPServer(HTTPServer):
    """Accepts connections and hands them to a bounded :class:`WorkerPool`; a connection
    that finds the pool full is answered 503 by the accepting thread."""

    allow_reuse_address = True
    request_queue_size = 128  # a burst of clients must not overflow the listen backlog
    app: EndpointApp

    def __init__(
        self,
        address: tuple[str, int],
        *,
        workers: int,
        queue_size: int,
        request_timeout_s: float,
    ) -> None:
        super().__init__(address, _Handler)
        self.request_timeout_s = float(request_timeout_s)
        self.pool = WorkerPool(
            self._serve_connection, workers=workers, queue_size=queue_size, name="ladis-http"
        )

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.pool.submit(request, client_address):
            answer_busy(request, _BUSY_BODY)
            request.close()  # never lingers: this is the accepting thread

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a broken connection must not end the worker
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        lingering_close(request)

    def server_close(self) -> None:
        super().server_close()
        self.pool.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # reached only for socket-level failures (client reset); requests are handled
        log.debug("connection from %s failed:\n%s", client_address, redact(traceback.format_exc()))
