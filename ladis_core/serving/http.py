"""The local HTTP endpoint: SageMaker's serving protocol without SageMaker.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` decodes the
body, classifies it and answers JSON, through the same ``input_fn``/``predict_fn``/
``output_fn`` that SageMaker would call (:mod:`ladis_core.serving`). With capture on,
every request is recorded as exactly one PREDICT step of an smdebug trial, and ``/ping``
also says how capture is doing: ``{"status": "ok", "capture": {"uri", "steps_published",
"error"}}`` (a failing upload does not stop predictions; a second endpoint capturing
into the same trial stops this one's publishing, see :mod:`ladis_core.capture`).

The server itself is started by :func:`ladis_core.serving.server.start_server`.

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

import json
import logging
import time
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ladis_core.config import redact
from ladis_core.errors import EndpointClosedError, LadisError
from ladis_core.serving.app import EndpointApp, _status_of
from ladis_core.serving.provenance import (
    PROVENANCE_HEADER,
)

log = logging.getLogger("ladis.server")


#: SageMaker's real-time endpoints refuse payloads above 6 MB; the same default here


#: how long an idle keep-alive connection (or a slow body) may hold a handler thread
CONNECTION_TIMEOUT_S = 60.0


_GENERIC_500 = "internal error while handling the request; see the server log"


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
