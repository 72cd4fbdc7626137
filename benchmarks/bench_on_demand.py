"""Benchmark of on-demand tests at their cost caps (prints figures; asserts nothing).

    .venv/bin/python benchmarks/bench_on_demand.py [--keep DIR] [--threads N]

One run, on this machine, against a private local S3 server (SeaweedFS) holding a real
world built by the demo pipeline (``ladis_core.demo.build_world``): 32×32 digits, a
ResNet18 trained for one epoch, 8 hours of 250 requests (2,000 PREDICT steps) with the
residual blocks captured. It times :func:`ladis_core.monitoring.ondemand.run_test` as the
dashboard calls it (``sources`` and ``caps`` given):

- **default**: the job's own settings (n = 100, R = 100, B = 1,000) on one job's window
  and its layers; the baseline comes from the monitoring job's cache;
- **one cap at a time**: the default test with one factor at its cap (n, R, B, the
  window's steps, the layers), baseline not cached (the settings differ);
- **every cap at once**: n, R, B, steps and layers all at their caps, cold (the window
  read from S3 for the first time) and warm (the trial cache holds it).

The defaults of :class:`ladis_core.monitoring.limits.CostCaps` are chosen from these
figures: every cap at once should stay within a few seconds on 2 cores once the window is
cached (a first read of the window from S3 is printed apart).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ladis_core.devtools.ports import find_free_port  # noqa: E402

WORLD_OPTIONS = dict(
    image_size=32,
    epochs=1,
    hours=8,
    requests_per_hour=(250, 250),
    n_samples=100,
    n_repeats=100,
    n_permutations=1000,
    experiment_repeats=5,
    pgd_steps=3,
    capture_layers=(r"layer[34]\.[01]",),
    monitor_layers=("layer4.0", "avgpool", "ResNet_output_0"),
    torch_threads=1,
)
LAYER_POOL = ("layer4.0", "layer4.1", "avgpool", "layer3.1", "ResNet_output_0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="keep the S3 data in this folder (and reuse it)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()

    import torch

    from ladis_core import demo, store
    from ladis_core import monitoring as monitor
    from ladis_core.access import SourcePolicy
    from ladis_core.devtools.s3server import LocalS3Server
    from ladis_core.monitoring import ondemand
    from ladis_core.monitoring.limits import CostCaps
    from ladis_core.store import layout

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ladis-bench-od-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["LADIS_CACHE_DIR"] = str(work / "cache")
    os.environ["SMDEBUG_TRAINING_END_DELAY_REFRESH"] = "0"
    server = LocalS3Server(work / "s3", port=find_free_port())
    server.start(timeout_s=60)
    try:
        os.environ.update(server.environment())
        world = "s3://bench-on-demand/"
        options = demo.DemoOptions.tiny(**WORLD_OPTIONS)
        monitoring = layout.monitoring_uri(world, options.endpoint)
        t = time.perf_counter()
        store.ensure_bucket(world)
        if not store.list_children(monitoring):
            demo.build_world(world, options=options)
            print(f"world built in {time.perf_counter() - t:.0f} s")
        jobs = monitor.load_jobs(monitoring)
        job = next(j for j in reversed(jobs) if j.incident)
        caps = CostCaps()
        sources = SourcePolicy.of([world])
        last = max(j.last_step for j in jobs if j.last_step is not None)
        print(
            f"{len(jobs)} jobs, steps 0–{last}; caps: n {caps.max_n}, R {caps.max_repeats}, "
            f"B {caps.max_permutations}, {caps.max_steps} steps, {caps.max_layers} layers; "
            f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}"
        )

        def timed(label: str, **changes) -> float:
            options = dict(
                reference=job.reference,
                inference=job.inference,
                layers=list(job.layers),
                after_step=job.first_step - 1,
                until_step=job.last_step,
                settings=job.settings,
                rule=job.incident_rule,
                monitoring=monitoring,
                sources=sources,
                caps=caps,
            )
            options.update(changes)
            started = time.perf_counter()
            result = ondemand.run_test(**options)
            seconds = time.perf_counter() - started
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"{label:<44} {seconds:6.2f} s  rate {result.detection_rate:5.1f} %  "
                f"(peak RSS so far {rss:,.0f} MB)"
            )
            return seconds

        settings = job.settings
        timed("default (the job's settings, cached baseline)")
        timed("default again")
        timed(f"n = {caps.max_n}", settings=replace(settings, n_samples=caps.max_n))
        timed(f"R = {caps.max_repeats}", settings=replace(settings, n_repeats=caps.max_repeats))
        timed(
            f"B = {caps.max_permutations}",
            settings=replace(settings, n_permutations=caps.max_permutations),
        )
        capped_layers = list(LAYER_POOL[: caps.max_layers])
        timed(f"{len(capped_layers)} layers", layers=capped_layers)
        window = {"after_step": last - caps.max_steps, "until_step": last}
        capped = replace(
            settings,
            n_samples=caps.max_n,
            n_repeats=caps.max_repeats,
            n_permutations=caps.max_permutations,
        )
        everything = dict(settings=capped, layers=capped_layers, **window)
        # a cache the monitoring jobs have not filled: the window comes from S3
        os.environ["LADIS_CACHE_DIR"] = str(work / f"cache-cold-{time.time_ns()}")
        cold = timed(f"every cap at once, {caps.max_steps} steps, cold", **everything)
        warm = timed(f"every cap at once, {caps.max_steps} steps, warm", **everything)
        timed(f"{caps.max_steps} steps, job settings, warm", **window)
        print(f"every cap at once: warm {warm:.2f} s, cold {cold:.2f} s ({cold / warm:.1f}× warm)")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
