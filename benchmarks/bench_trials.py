"""Benchmark: reading an inference trial of many PREDICT steps from S3.

In one run, against a local SeaweedFS server started for the purpose (127.0.0.1, a free
port, a temporary data folder, stopped by PID at the end):

1. write N PREDICT steps with the real capture (``ServingCapture``, one step per request): the
   penultimate layer (512 floats) and the logits of a small model named ``ResNet``,
   into a local folder, then upload it (``store.upload_dir``);
2. **cold**: ``trials.load_trial`` with an empty cache (list, parallel fetch, decode,
   pack), next to a plain parallel download of the same objects (the transfer floor);
3. **warm**: ``trials.load_trial`` again (nothing new to fetch: a few listing requests
   and the packed cache);
4. **baseline**: smdebug's own S3 trial, step by step (``tensor.value(step)``). It finds
   nothing on SeaweedFS as shipped (``StartAfter`` equal to the prefix), so its listing
   gets the smallest possible shim (that ``StartAfter`` dropped); everything else is
   smdebug's. Each ``value()`` lists the events prefix again, so the cost per step grows
   with the trial: it is measured on the first K steps *of the full trial* and multiplied
   by N (said so in the output);
5. for reference: the local folder read directly, and smdebug's local trial on it.

Usage: ``python benchmarks/bench_trials.py [--quick] [--steps N] [--baseline-steps K]``.
Targets (issue 4): warm ≥ 20× faster than the baseline and ≤ 1 s; cold bounded by the
transfer, with objects fetched in parallel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SMDEBUG_LOG_LEVEL", "error")
os.environ["SMDEBUG_TRAINING_END_DELAY_REFRESH"] = "0"  # no sleeping in smdebug's reader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ladis_core import capture, store, trials  # noqa: E402
from ladis_core.devtools.s3server import LocalS3Server, find_free_port  # noqa: E402


class ResNet(nn.Module):
    """A tiny stand-in named like LADIS's model: ``avgpool`` gives 512 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 512, kernel_size=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.conv(x)), 1))


def _timed(func):
    start = time.perf_counter()
    value = func()
    return value, time.perf_counter() - start


def write_trial(folder: Path, steps: int, seed: int) -> float:
    torch.set_num_threads(1)
    model = ResNet().eval()
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    with capture.ServingCapture(
        model, str(folder), include_inputs=False, upload_interval_s=0
    ) as cap:
        for _ in range(steps):
            cap.record(torch.rand(1, 3, 2, 2, generator=generator))
    return time.perf_counter() - started


def smdebug_s3_baseline(
    uri: str, steps: int, budget_s: float
) -> tuple[float, float, int, np.ndarray]:
    """smdebug's S3 trial, step by step: (time to open, seconds per value, values read,
    the values)."""
    from smdebug.core.access_layer import s3handler
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    original = s3handler.S3Handler.list_prefix  # a staticmethod: a plain function here

    def list_prefix(lr):  # the SeaweedFS shim: StartAfter == prefix lists nothing there
        if lr.start_after and lr.start_after.rstrip("/") == lr.prefix.rstrip("/"):
            lr = s3handler.ListRequest(Bucket=lr.bucket, Prefix=lr.prefix, Delimiter=lr.delimiter)
        return original(lr)

    s3handler.S3Handler.list_prefix = staticmethod(list_prefix)
    trial, open_s = _timed(lambda: create_trial(uri))
    tensor = trial.tensor("avgpool_output_0")
    values = []
    started = time.perf_counter()
    for step in range(steps):
        values.append(np.asarray(tensor.value(step, mode=ModeKeys.PREDICT)).reshape(-1))
        if time.perf_counter() - started > budget_s and len(values) >= 3:
            break
    per_value = (time.perf_counter() - started) / len(values)
    return open_s, per_value, len(values), np.stack(values)


def smdebug_local(folder: Path) -> tuple[float, int]:
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    def run():
        trial = create_trial(str(folder))
        tensor = trial.tensor("avgpool_output_0")
        return [tensor.value(s, mode=ModeKeys.PREDICT) for s in tensor.steps(mode=ModeKeys.PREDICT)]

    values, seconds = _timed(run)
    return seconds, len(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 steps instead of 10,000")
    parser.add_argument("--steps", type=int, default=None, help="PREDICT steps to write")
    parser.add_argument("--baseline-steps", type=int, default=None, help="steps smdebug reads (K)")
    parser.add_argument(
        "--baseline-budget", type=float, default=None, help="seconds for the baseline at most"
    )
    args = parser.parse_args(argv)
    steps = args.steps or (1_000 if args.quick else 10_000)
    baseline_steps = args.baseline_steps or (10 if args.quick else 20)
    budget = args.baseline_budget or (30.0 if args.quick else 90.0)

    work = Path(tempfile.mkdtemp(prefix="ladis-bench-trials-"))
    server = LocalS3Server(work / "s3", port=find_free_port(), die_with_parent=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    try:
        server.start(timeout_s=60)
        os.environ.update(server.environment())
        os.environ.pop("AWS_PROFILE", None)
        uri = server.create_bucket("bench") + "trials/bench/inference"

        local = work / "trial"
        write_s = write_trial(local, steps, seed=0)
        files = sum(1 for p in local.rglob("*") if p.is_file())
        print(
            f"wrote {steps:,} PREDICT steps with the capture hook in {write_s:.1f} s ({files:,} files)"
        )
        uploaded, upload_s = _timed(lambda: store.upload_dir(local, uri))
        print(f"uploaded {uploaded:,} objects to {uri} in {upload_s:.1f} s")

        # transfer floor: the same objects a cold read needs, fetched in parallel, nothing else
        wanted = [
            (info.uri, work / "floor" / info.uri[len(uri) + 1 :])
            for info in store.iter_objects(uri)
            if "/index/" in info.uri or "/events/" in info.uri
        ]
        _, list_s = _timed(lambda: store.list_objects(uri))
        _, floor_s = _timed(lambda: store.download_many(wanted))
        print(
            f"transfer floor: list {list_s:.2f} s + parallel download of {len(wanted):,} objects {floor_s:.2f} s"
        )

        # one hourly job's window early in the trial, as the dashboard reads it, cold
        window_first, window_size = steps // 10, min(250, steps // 4)
        early, early_s = _timed(
            lambda: trials.load_trial(
                uri,
                mode="PREDICT",
                cache_dir=work / "cache-window",
                after_step=window_first - 1,
                until_step=window_first + window_size - 1,
            )
        )
        assert len(early) == window_size, (len(early), window_size)

        cache = work / "cache"
        cold, cold_s = _timed(lambda: trials.load_trial(uri, mode="PREDICT", cache_dir=cache))
        assert len(cold) == steps, (len(cold), steps)
        warm_times = []
        for _ in range(3):
            warm, seconds = _timed(lambda: trials.load_trial(uri, mode="PREDICT", cache_dir=cache))
            warm_times.append(seconds)
        assert np.array_equal(warm.layers["avgpool_output_0"], cold.layers["avgpool_output_0"])
        warm_s = statistics.median(warm_times)
        window, window_s = _timed(
            lambda: trials.load_trial(uri, mode="PREDICT", cache_dir=cache, after_step=steps - 301)
        )
        local_data, local_s = _timed(lambda: trials.load_trial(str(local), mode="PREDICT"))
        assert np.array_equal(
            local_data.layers["avgpool_output_0"], cold.layers["avgpool_output_0"]
        )
        smd_local_s, smd_local_n = smdebug_local(local)

        open_s, per_value, read, values = smdebug_s3_baseline(uri, baseline_steps, budget)
        assert np.array_equal(values, cold.layers["avgpool_output_0"][:read]), "smdebug disagrees"
        baseline_s = open_s + per_value * steps

        print()
        print(f"reading {steps:,} PREDICT steps of avgpool_output_0 (512 floats) + logits from S3")
        print(
            f"  cold (empty cache)            {cold_s:8.2f} s   = {cold_s / (list_s + floor_s):.2f}× the transfer floor ({list_s + floor_s:.2f} s)"
        )
        print(
            f"  warm (cached, median of 3)    {warm_s:8.3f} s   (runs: {', '.join(f'{t:.3f}' for t in warm_times)})"
        )
        print(f"  warm, last 300 steps only     {window_s:8.3f} s   ({len(window)} rows)")
        print(
            f"  cold, steps {window_first:,}–{window_first + window_size - 1:,} only {early_s:7.2f} s   "
            f"({len(early)} rows; {early_s / cold_s:.0%} of the whole cold read: the index is synced "
            "only up to the folder past the window)"
        )
        print(f"  local folder, direct          {local_s:8.3f} s")
        print(
            f"  smdebug local trial           {smd_local_s:8.3f} s   ({smd_local_n:,} values, SMDEBUG_TRAINING_END_DELAY_REFRESH=0)"
        )
        print(
            f"  smdebug S3 trial (baseline)   {baseline_s:8.1f} s   extrapolated: open {open_s:.2f} s + "
            f"{per_value:.3f} s/step measured on the first {read} steps of the full trial × {steps:,}"
        )
        print()
        print(
            f"  warm vs baseline: {baseline_s / warm_s:,.0f}× faster (target ≥ 20×); warm ≤ 1 s: {'yes' if warm_s <= 1 else 'NO'}"
        )
        print(f"  cold vs baseline: {baseline_s / cold_s:,.0f}× faster")
        print(
            f"  cold vs transfer floor: {cold_s / (list_s + floor_s):.2f}× (parallel fetch, {store.DEFAULT_WORKERS} workers)"
        )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
