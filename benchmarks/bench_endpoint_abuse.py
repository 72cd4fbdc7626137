"""Benchmark: the endpoint under abuse (issue 11), three figures measured in one run.

1. **PNG bomb**: the peak resident memory added by one ``POST /invocations`` of a small,
   highly compressible 4096×4096 PNG (a subprocess per measurement; the kernel's peak
   RSS counter is reset just before the request, ``/proc/self/clear_refs``).
2. **slow clients**: threads the server process holds while 200 clients each send
   half a request and wait; and how long one client trickling a body (one byte a
   second) keeps its connection (capped at ``--trickle-s``).
3. **S3 outage**: the latency of requests carrying provenance (a part written every
   request) while the S3 server is killed (connection refused) and while it is frozen
   (SIGSTOP: connections are accepted but never answered), against a real SeaweedFS.

Usage: ``python benchmarks/bench_endpoint_abuse.py [--quick]``. Prints the figures; no
assertion on any of them (tests never assert timings).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("PYTHONPATH") or str(REPO))


def _model_dir(root: Path) -> Path:
    from ladis_core.model.spec import ModelSpec, build_model, save_model

    spec = ModelSpec(class_names=[str(i) for i in range(10)])
    return save_model(build_model(spec), spec, root / "model")


def _png_bomb(side: int = 4096) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.zeros((side, side, 3), dtype=np.uint8)
    pixels[::64, ::64] = 255  # a sparse grid: compresses to a few tens of KiB
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def _png_child(model_dir: str, png_path: str) -> None:
    """Runs in a subprocess: serve, reset the peak counter, post the PNG, print JSON."""
    from ladis_core.serving import start_server

    body = Path(png_path).read_bytes()
    with start_server(model_dir) as running:
        small = _small_png()
        _post(running.url, small, "image/png")  # warm up torch and Pillow
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        status, _ = _post(running.url, body, "image/png")
        peak = _status_kib("VmHWM")
    print(json.dumps({"status": status, "peak_mib": (peak - before) / 1024}))


def _small_png() -> bytes:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _post(url: str, body: bytes, content_type: str, headers: dict | None = None):
    request = urllib.request.Request(
        url + "/invocations",
        data=body,
        headers={"Content-Type": content_type, **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def measure_png(model_dir: Path, work: Path, *, side: int) -> dict:
    png = _png_bomb(side)
    path = work / f"bomb-{side}.png"
    path.write_bytes(png)
    out = subprocess.run(
        [sys.executable, __file__, "--png-child", str(model_dir), str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(REPO)},
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["png_kib"] = len(png) / 1024
    return result


def measure_slow_clients(model_dir: Path, *, clients: int, trickle_s: float) -> dict:
    from ladis_core.serving import start_server

    with start_server(model_dir) as running:
        baseline = threading.active_count()
        sockets = []
        head = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
            b"Content-Length: 10000\r\n\r\n"
        )
        for _ in range(clients):
            sock = socket.create_connection((running.host, running.port), timeout=10)
            sock.sendall(head + b"\x93NUMPY")  # half a request: the body never comes
            sockets.append(sock)
        time.sleep(2.0)
        held = threading.active_count() - baseline
        refused = 0
        for sock in sockets:
            sock.settimeout(0.2)
            try:
                if sock.recv(64).startswith(b"HTTP/1.1 503"):
                    refused += 1
            except OSError:
                pass
            sock.close()
        time.sleep(1.0)
        # one client trickling a body: one byte a second
        trickle = socket.create_connection((running.host, running.port), timeout=5)
        trickle.sendall(head)
        started = time.monotonic()
        held_for = None
        while time.monotonic() - started < trickle_s:
            try:
                trickle.sendall(b"x")
                trickle.settimeout(1.0)
                data = trickle.recv(64)
                if data == b"" or data.startswith(b"HTTP/"):
                    held_for = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                held_for = time.monotonic() - started
                break
        trickle.close()
    return {"clients": clients, "threads_held": held, "answered_503": refused, "trickle": held_for}


def _timed_post(url: str, body: bytes, header: dict, latencies: list[float]) -> None:
    started = time.perf_counter()
    with contextlib.suppress(OSError):
        _post(url, body, "application/x-npy", header)
    latencies.append(time.perf_counter() - started)  # list.append is atomic


def measure_outage(model_dir: Path, work: Path, *, requests: int) -> dict:
    import numpy as np

    from ladis_core.devtools.s3server import LocalS3Server, find_free_port
    from ladis_core.serving import PROVENANCE_HEADER, start_server

    server = LocalS3Server(work / "s3", port=find_free_port(), die_with_parent=True)
    server.start(timeout_s=60)
    os.environ.update(server.environment())
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).random((3, 32, 32), dtype=np.float32))
    body = buffer.getvalue()
    header = {PROVENANCE_HEADER: json.dumps({"source_index": 1, "attack": "none"})}
    results = {}
    try:
        for fault in ("killed", "frozen"):
            capture = f"{server.bucket_uri}trials/{fault}/inference"
            provenance = f"{server.bucket_uri}trials/{fault}/provenance"
            running = start_server(
                model_dir, capture_uri=capture, provenance_uri=provenance, provenance_every=1
            )
            try:
                healthy = []
                for _ in range(3):
                    started = time.perf_counter()
                    _post(running.url, body, "application/x-npy", header)
                    healthy.append(time.perf_counter() - started)
                pid = server.status().pid
                if fault == "killed":
                    server.stop()
                else:
                    os.kill(pid, signal.SIGSTOP)
                latencies: list[float] = []
                threads = [
                    threading.Thread(
                        target=_timed_post, args=(running.url, body, header, latencies)
                    )
                    for _ in range(requests)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=150)
                ping = json.loads(urllib.request.urlopen(running.url + "/ping", timeout=150).read())
                results[fault] = {
                    "healthy_ms": 1000 * statistics.median(healthy),
                    "outage_ms_median": 1000 * statistics.median(latencies) if latencies else None,
                    "outage_ms_max": 1000 * max(latencies) if latencies else None,
                    "unanswered": requests - len(latencies),
                    "ping": ping,
                }
            finally:
                if fault == "frozen":
                    os.kill(pid, signal.SIGCONT)
                else:
                    server.start(timeout_s=60)
                t0 = time.perf_counter()
                try:
                    running.stop()
                except Exception as exc:  # noqa: BLE001 - report, go on
                    print(f"  (stop after {fault}: {type(exc).__name__}: {exc})")
                results[fault]["stop_s"] = time.perf_counter() - t0
    finally:
        server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter trickle")
    parser.add_argument("--trickle-s", type=float, default=None)
    parser.add_argument("--only", choices=("png", "slow", "outage"), default=None)
    parser.add_argument("--png-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.png_child:
        _png_child(*args.png_child)
        return 0
    import logging

    logging.basicConfig(level=logging.ERROR)
    trickle_s = args.trickle_s or (20.0 if args.quick else 75.0)
    with tempfile.TemporaryDirectory(prefix="ladis-bench-abuse-") as tmp:
        work = Path(tmp)
        model_dir = _model_dir(work)
        if args.only in (None, "png"):
            for side in (4096, 512):  # a bomb, and the largest image a 32x32 model accepts
                png = measure_png(model_dir, work, side=side)
                print(
                    f"PNG {side}x{side} ({png['png_kib']:.0f} KiB): HTTP {png['status']}, "
                    f"peak memory +{png['peak_mib']:.1f} MiB"
                )
        if args.only in (None, "slow"):
            slow = measure_slow_clients(model_dir, clients=200, trickle_s=trickle_s)
            trickle = (
                f"cut after {slow['trickle']:.1f} s"
                if slow["trickle"] is not None
                else f"still open after {trickle_s:.0f} s"
            )
            print(
                f"slow clients: {slow['clients']} half-sent requests held {slow['threads_held']} "
                f"threads ({slow['answered_503']} answered 503); a trickled body: {trickle}"
            )
        if args.only in (None, "outage"):
            outage = measure_outage(model_dir, work, requests=4 if args.quick else 8)
            for fault, figures in outage.items():
                median = figures["outage_ms_median"]
                print(
                    f"S3 {fault}: healthy request {figures['healthy_ms']:.0f} ms; during the outage "
                    f"median {median:.0f} ms, max {figures['outage_ms_max']:.0f} ms "
                    f"({figures['unanswered']} unanswered); stop after recovery "
                    f"{figures['stop_s']:.1f} s; /ping {json.dumps(figures['ping'])[:200]}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
