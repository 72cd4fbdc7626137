"""The endpoint under abuse (issue 11, items 5–9), over real HTTP with a real model:
oversized images, slow and many clients, malformed framing and bodies, an S3 outage
under provenance, and what ``/ping`` tells a stranger."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ladis_core import store
from ladis_core.model.spec import ModelSpec, build_model, save_model
from ladis_core.serving import ProvenanceRecorder, invoke, start_server
from tests.support.factories import capture_counts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ModelSpec(class_names=[str(i) for i in range(10)])  # input (3, 32, 32)
    return save_model(build_model(spec), spec, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def server(model_dir: Path):
    with start_server(model_dir) as running:
        yield running


def _raw(running, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection; return everything answered."""
    with socket.create_connection((running.host, running.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _message(answer: bytes) -> str:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"]


def _post(body: bytes, content_type: str, *, extra: str = "", length: str | None = None) -> bytes:
    length_line = f"Content-Length: {len(body) if length is None else length}\r\n"
    return (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"{length_line}{extra}Connection: close\r\n\r\n"
    ).encode() + body


def _png(side: int) -> bytes:
    pixels = np.zeros((side, side, 3), dtype=np.uint8)
    pixels[::64, ::64] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- item 5: images


def test_an_image_far_bigger_than_the_model_takes_is_refused_before_decoding(server):
    bomb = _png(4096)
    assert len(bomb) < 100_000  # a 50 KiB body that used to decode into 500 MiB
    answer = _raw(server, _post(bomb, "image/png"))
    assert _status(answer) == 400
    assert "4096×4096 pixels" in _message(answer) and "at most 262144 pixels" in _message(answer)
    ok = _raw(server, _post(_png(512), "image/png"))  # 8x the model's side is still fine
    assert _status(ok) == 200


def test_the_pixel_cap_follows_the_model_input():
    from ladis_core.serving.codec import pixel_limit

    assert pixel_limit((3, 32, 32)) == 512 * 512  # the floor
    assert pixel_limit((3, 224, 224)) == 64 * 224 * 224
    assert pixel_limit((3, 1024, 1024)) == 4096 * 4096  # the ceiling


def test_npy_and_json_bodies_are_capped_by_pixels_too(server):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 1, 1024, 1024), dtype=np.uint8))
    answer = _raw(server, _post(buffer.getvalue(), "application/x-npy"))
    assert _status(answer) == 400 and "1024×1024 images" in _message(answer)


# --------------------------------------------------------------------------- item 6: slow clients


def test_many_half_sent_requests_hold_a_bounded_number_of_threads(model_dir):
    with start_server(model_dir, workers=4, queue=4, request_timeout_s=3.0) as running:
        before = threading.active_count()
        head = _post(b"", "application/x-npy", length="10000")
        sockets = []
        for _ in range(40):
            sock = socket.create_connection((running.host, running.port), timeout=10)
            sock.sendall(head + b"\x93NUMPY")  # the rest of the body never comes
            sockets.append(sock)
        wait_until(lambda: running._httpd.pool.refused >= 32, what="32 connections refused")
        assert threading.active_count() - before <= 4  # the 4 workers, whatever the clients
        answers = []
        for sock in sockets:
            sock.settimeout(15)
            answers.append(sock.recv(4096))
            sock.close()
        statuses = sorted(_status(a) for a in answers if a)
        assert statuses.count(503) >= 32 and set(statuses) <= {408, 503}
        assert b"Retry-After: 1" in next(a for a in answers if a and _status(a) == 503)
        # the endpoint serves again once the slow clients are gone
        image = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
        assert invoke(running.url, image)["predictions"]


def test_a_trickled_body_is_cut_at_the_request_deadline(model_dir):
    with start_server(model_dir, request_timeout_s=2.0) as running:
        sock = socket.create_connection((running.host, running.port), timeout=20)
        sock.sendall(_post(b"", "application/x-npy", length="1000"))
        sock.settimeout(0.25)
        answer = b""
        started = time.monotonic()
        while not answer and time.monotonic() - started < 20:
            try:
                sock.sendall(b"x")  # one byte at a time: each recv alone would be quick
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
        sock.settimeout(10)
        try:  # the headers may come in a packet of their own: read the answer to its end
            while answer and (chunk := sock.recv(4096)):
                answer += chunk
        except OSError:
            pass
        sock.close()
        assert _status(answer) == 408 and b"within 2 s" in answer


# --------------------------------------------------------------------------- item 7: framing


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (-2, -3), }",
            "npy",
        ),
        (
            b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3, 9223372036854775807, 2), }",
            "npy",
        ),
        (
            b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\x00\x00",
            "npy",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "json"),
        (b"[" * 40 + b"1" + b"]" * 40, "json"),
        (b'{"instances": [[[' + b"1e999" + b"]]]}", "json"),
        (b"[[[[" + b"9" * 400 + b"]]]]", "json"),
    ],
)
def test_malformed_bodies_are_400_without_a_logged_traceback(server, caplog, body, content_type):
    kind = {"npy": "application/x-npy", "json": "application/json"}[content_type]
    with caplog.at_level(logging.INFO, logger="ladis.server"):
        answer = _raw(server, _post(body, kind))
    assert _status(answer) == 400, answer[:300]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("extra", "length"),
    [
        ("Transfer-Encoding: chunked\r\n", None),
        ("Transfer-Encoding: identity\r\n", None),
        ("", "+7"),
        ("", "0_7"),
        ("", "\u0667"),  # ARABIC-INDIC DIGIT SEVEN: int() reads it as 7
        ("Content-Length: 7\r\n", None),  # two of them
    ],
)
def test_framing_other_than_one_plain_content_length_is_refused(server, extra, length):
    body = b"[[[0]]]"  # 7 bytes: every framing above would deliver it whole
    answer = _raw(server, _post(body, "application/json", extra=extra, length=length))
    assert _status(answer) == 400, answer[:300]
    assert "Content-Length" in _message(answer)


# --------------------------------------------------------------------------- item 8: S3 outage


def test_requests_never_wait_on_storage_during_an_s3_outage(
    model_dir, own_s3_server, tmp_path, monkeypatch
):
    from ladis_core.store import objects

    writers: list[str] = []
    real_write = objects.write_bytes

    def spy(*args, **kwargs):
        writers.append(threading.current_thread().name)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store, "write_bytes", spy)
    provenance = own_s3_server.bucket_uri + "trials/outage/provenance"
    image = np.random.default_rng(1).random((3, 32, 32), dtype=np.float32)
    with start_server(
        model_dir,
        capture_uri=str(tmp_path / "inference"),
        provenance_uri=provenance,
        provenance_every=1,
        operator_token="op",
    ) as running:
        invoke(running.url, image, provenance={"source_index": 0})
        wait_until(lambda: running.app.provenance.written == 1, what="the first part")
        own_s3_server.stop()  # the store goes away
        steps = [
            invoke(running.url, image, provenance={"source_index": i})["step"] for i in range(1, 9)
        ]
        assert steps == list(range(1, 9))  # every request answered
        wait_until(lambda: running.app.provenance.status().last_error is not None, what="a failure")
        ping = json.loads(urllib.request.urlopen(running.url + "/ping", timeout=10).read())
        assert ping["provenance"] == {"written": 1, "pending": 8, "dropped": 0, "failing": True}
        own_s3_server.start(timeout_s=60)  # back: the backlog is written, nothing lost
        wait_until(lambda: running.app.provenance.pending == 0, timeout_s=90, what="the backlog")
    assert not [name for name in writers if name.startswith("ladis-http")]
    from ladis_core.trials import load_provenance

    assert sorted(load_provenance(provenance)) == list(range(9))


def test_the_provenance_buffer_is_bounded_while_storage_is_down(own_s3_server):
    uri = own_s3_server.bucket_uri + "trials/bounded/provenance"
    own_s3_server.stop()
    recorder = ProvenanceRecorder(uri, every=2, max_pending=4, retry_s=0.05, max_retry_s=0.1)
    for step in range(10):
        recorder.add(step, {"source_index": step})
    status = recorder.status()
    assert status.pending == 4 and status.dropped == 6
    own_s3_server.start(timeout_s=60)
    recorder.close()
    from ladis_core.trials import load_provenance

    kept = sorted(load_provenance(uri))
    assert len(kept) == 4 and 9 in kept  # the newest is always kept; the drop is counted


# --------------------------------------------------------------------------- item 9: /ping


def test_ping_gives_strangers_counts_only(model_dir, tmp_path):
    capture = str(tmp_path / "inference")
    with start_server(
        model_dir,
        capture_uri=capture,
        provenance_uri=str(tmp_path / "provenance"),
        operator_token="s3cr3t-operator",
    ) as running:
        stranger = json.loads(urllib.request.urlopen(running.url + "/ping", timeout=10).read())
        assert stranger == {
            "status": "ok",
            "capture": capture_counts(recorded=0, published=0, upload_failing=False),
            "provenance": {"written": 0, "pending": 0, "dropped": 0, "failing": False},
        }
        wrong = urllib.request.Request(
            running.url + "/ping", headers={"X-Ladis-Operator-Token": "guess"}
        )
        assert json.loads(urllib.request.urlopen(wrong, timeout=10).read()) == stranger
        right = urllib.request.Request(
            running.url + "/ping", headers={"X-Ladis-Operator-Token": "s3cr3t-operator"}
        )
        operator = json.loads(urllib.request.urlopen(right, timeout=10).read())
        assert operator["capture"]["uri"] == capture and operator["capture"]["error"] is None
        assert operator["provenance"]["uri"] == str(tmp_path / "provenance")
