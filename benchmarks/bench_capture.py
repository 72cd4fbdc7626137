"""Benchmark: what the serving capture costs the endpoint (issue 14), measured in one run.

On the demo ResNet-18 (3×32×32, one torch thread, trials in a local folder unless said):

1. **overhead per request** over the plain forward pass, at batch 1 and batch 32, with
   the penultimate layer only and with the 8 residual blocks as well: the native writer
   (``ServingCapture``: hooks copy, a thread writes) against the smdebug hook it
   replaces (``serving_hook``: protobuf and files inside every forward pass, as the
   capture did before). Rounds alternate plain / native, then plain / smdebug, so drift
   in machine load hits both sides of a ratio alike; each figure is the median over
   rounds of a round's mean time per request.
2. **endpoint throughput** with capture against without, 8 concurrent clients posting
   ``.npy`` images to the real HTTP endpoint (``start_server``).
3. **an S3 outage**: the endpoint captures into a real SeaweedFS on 127.0.0.1, clients
   send requests; the S3 server is SIGKILLed for ``--outage-s`` seconds (default 30) and
   restarted. Request latency before / during / after (p50, p99), and the steps
   recorded against the steps in the trial once published.
4. on a CUDA machine, (1) again on the GPU.

Usage: ``python benchmarks/bench_capture.py [--quick] [--rounds R] [--outage-s S]``.
Targets: overhead ≤ 5 % (penultimate) and ≤ 10 % (8 blocks) at batch 1 and 32;
throughput ≥ 95 %; p99 during the outage within 10 % of before, every step published.
Prints figures; nothing is asserted (tests never assert timings).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SMDEBUG_LOG_LEVEL", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ladis_core import capture, trials  # noqa: E402
from ladis_core.model.spec import ModelSpec, build_model, save_model  # noqa: E402

SPEC = ModelSpec(class_names=[str(i) for i in range(10)])
CASES = (("penultimate", ()), ("8 blocks", capture.RESIDUAL_BLOCKS))


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _model(device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(SPEC).eval().to(device)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _time_per_call(call, batch: torch.Tensor, repeats: int, device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        call(batch)
    _sync(device)
    return (time.perf_counter() - started) / repeats


def overhead(
    *, batch_size: int, rounds: int, repeats: int, folder: Path, device: str = "cpu"
) -> None:
    model = _model(device)
    batch = torch.rand((batch_size, *SPEC.input_shape), device=device)

    def plain(x: torch.Tensor) -> None:
        with torch.no_grad():
            model(x)

    for name, layers in CASES:
        # native capture, rounds alternating with the plain forward pass
        native = capture.ServingCapture(
            model, str(folder / f"native-{batch_size}-{name}"), layers=layers, upload_interval_s=0
        )
        native.record(batch)  # warm-up
        plain(batch)
        native_times, plain_native = [], []
        for _ in range(rounds):
            plain_native.append(_time_per_call(plain, batch, repeats, device))
            native_times.append(_time_per_call(native.record, batch, repeats, device))
            native.wait_until_staged()  # no backlog carried into the next round
        native.close()
        # the smdebug hook the capture used before (attached now: it sees every pass)
        target = str(folder / f"smdebug-{batch_size}-{name}")
        hooks = [capture.serving_hook(target, model=model, layers=layers)]

        def smdebug_call(x: torch.Tensor, hooks: list = hooks) -> None:
            with torch.no_grad():
                model(x)
            hooks[-1]._close_writers()  # as the old capture did: the step's files in the request

        smdebug_call(batch)
        plain_smdebug, smdebug_times = [], []
        for _ in range(rounds):
            smdebug_times.append(_time_per_call(smdebug_call, batch, repeats, device))
            capture.close_hook(hooks[-1])  # detached: the plain pass below runs without it
            plain_smdebug.append(_time_per_call(plain, batch, repeats, device))
            hooks.append(capture.serving_hook(target, model=model, layers=layers))
        capture.close_hook(hooks[-1])
        base = statistics.median(plain_native)
        ours = statistics.median(native_times)
        base_smdebug = statistics.median(plain_smdebug)
        theirs = statistics.median(smdebug_times)
        print(
            f"  {device} batch {batch_size:>2}, {name:<11}: plain {base * 1e3:7.2f} ms, "
            f"native capture {ours * 1e3:7.2f} ms (+{(ours / base - 1) * 100:5.1f} %) | "
            f"plain {base_smdebug * 1e3:7.2f} ms, smdebug hook {theirs * 1e3:7.2f} ms "
            f"(+{(theirs / base_smdebug - 1) * 100:5.1f} %)",
            flush=True,
        )


def _npy(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, image)
    return buffer.getvalue()


_CLIENTS = """
import json, sys, threading, time, urllib.request
url, clients, seconds, folder = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
bodies = [open(f"{folder}/{i}.npy", "rb").read() for i in range(int(sys.argv[5]))]
latencies, lock = [], threading.Lock()
deadline = time.monotonic() + seconds
def client(offset):
    position = offset
    while time.monotonic() < deadline:
        request = urllib.request.Request(url + "/invocations", data=bodies[position % len(bodies)],
                                         headers={"Content-Type": "application/x-npy"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        took = time.perf_counter() - started
        position += clients
        with lock:
            latencies.append(took)
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(latencies))
"""


def _clients(url: str, bodies: Path, *, clients: int, seconds: float) -> list[float]:
    """Latencies of every request ``clients`` threads send for ``seconds``, from a
    process of their own (clients sharing the endpoint's interpreter would compete with
    it for the interpreter lock, which real clients never do)."""
    import json
    import subprocess

    count = len(list(bodies.glob("*.npy")))
    done = subprocess.run(
        [sys.executable, "-c", _CLIENTS, url, str(clients), str(seconds), str(bodies), str(count)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    return json.loads(done.stdout)


def _bodies(folder: Path, seed: int) -> Path:
    """64 ``.npy`` request bodies in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(seed).random((64, 1, *SPEC.input_shape), dtype=np.float32)
    for index, image in enumerate(images):
        (folder / f"{index}.npy").write_bytes(_npy(image))
    return folder


def throughput(*, folder: Path, seconds: float, rounds: int) -> None:
    from ladis_core.serving import start_server

    model_dir = save_model(_model(), SPEC, folder / "model")
    bodies = _bodies(folder / "bodies-0", 0)
    rates: dict[str, list[float]] = {"without": [], "with": []}
    for index in range(rounds):
        for label in ("without", "with"):
            capture_uri = str(folder / f"tp-{index}") if label == "with" else None
            with start_server(model_dir, capture_uri=capture_uri) as running:
                _clients(running.url, bodies, clients=8, seconds=1.0)  # warm-up
                done = _clients(running.url, bodies, clients=8, seconds=seconds)
            rates[label].append(len(done) / seconds)
    without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
    print(
        f"  8 clients: without capture {without:.0f} req/s, with capture {with_:.0f} req/s "
        f"({with_ / without * 100:.1f} %; median of {rounds} rounds)",
        flush=True,
    )


def _percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "no requests"
    values = np.asarray(latencies) * 1e3
    return f"p50 {np.percentile(values, 50):6.2f} ms, p99 {np.percentile(values, 99):6.2f} ms ({len(values)} requests)"


def outage(*, folder: Path, outage_s: float, phase_s: float) -> None:
    import psutil

    from ladis_core.devtools.s3server import LocalS3Server, find_free_port
    from ladis_core.serving import start_server

    server = LocalS3Server(folder / "s3", port=find_free_port(), die_with_parent=True)
    server.start(timeout_s=60)
    saved = {k: os.environ.get(k) for k in server.environment()}
    os.environ.update(server.environment())
    uri = f"s3://{server.bucket}/trials/bench/inference"
    model_dir = save_model(_model(), SPEC, folder / "model-outage")
    bodies = _bodies(folder / "bodies-1", 1)
    try:
        with start_server(model_dir, capture_uri=uri) as running:
            _clients(running.url, bodies, clients=4, seconds=1.0)
            before = _clients(running.url, bodies, clients=4, seconds=phase_s)
            pid = server.status().pid
            assert pid is not None
            process = psutil.Process(pid)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            during = _clients(running.url, bodies, clients=4, seconds=outage_s)
            server.start(timeout_s=60)
            after = _clients(running.url, bodies, clients=4, seconds=phase_s)
            recorded = running.app.served.capture.health()["steps_recorded"]
        published = trials.last_step(uri, mode="PREDICT") + 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
    p99 = [np.percentile(np.asarray(x), 99) for x in (before, during)]
    print(f"  before the outage: {_percentiles(before)}", flush=True)
    print(
        f"  S3 down {outage_s:.0f} s:     {_percentiles(during)}  (p99 {p99[1] / p99[0] * 100:.0f} % of before)"
    )
    print(f"  after restart:     {_percentiles(after)}")
    print(f"  steps recorded {recorded}, in the trial after publishing {published}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a 5 s outage")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per measurement")
    parser.add_argument("--outage-s", type=float, default=None, help="seconds S3 stays down")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    outage_s = args.outage_s or (5.0 if args.quick else 30.0)
    torch.set_num_threads(1)
    print(f"bench_capture: torch {torch.__version__}, 1 torch thread, load average {_load()}")
    with tempfile.TemporaryDirectory(prefix="ladis-bench-capture-") as tmp:
        folder = Path(tmp)
        print("1. overhead of capture over the plain forward pass (median of round medians)")
        overhead(batch_size=1, rounds=rounds, repeats=40, folder=folder)
        overhead(batch_size=32, rounds=rounds, repeats=4, folder=folder)
        print("2. endpoint throughput, 8 concurrent clients")
        throughput(folder=folder, seconds=3.0 if args.quick else 6.0, rounds=max(1, rounds // 2))
        print(f"3. an S3 outage of {outage_s:.0f} s (the real SeaweedFS SIGKILLed, then restarted)")
        outage(folder=folder, outage_s=outage_s, phase_s=5.0 if args.quick else 10.0)
        if torch.cuda.is_available():
            print("4. on the GPU")
            overhead(batch_size=1, rounds=rounds, repeats=200, folder=folder, device="cuda")
            overhead(batch_size=32, rounds=rounds, repeats=50, folder=folder, device="cuda")
        else:
            print("4. no CUDA device here: the GPU figures need a CUDA machine")
    print(f"load average at the end: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
