"""Benchmark of fleets (prints figures and ratios measured in one run; asserts nothing).

    .venv/bin/python benchmarks/bench_fleet.py [--endpoints 20] [--windows 24] [--keep DIR]

On this machine, against a private local S3 server (SeaweedFS):

- **the grid**: ``endpoints`` × ``windows`` hourly windows of real trials (the project's
  capture of a small ResNet-named classifier on 8×8 digits, 120 requests a window) with
  the default statistics (n = 100, R = 100, B = 1,000). Each window's traffic is uploaded
  before its round (not timed), then the round runs three ways, each into its own
  monitoring prefix: a plain loop over :func:`ladis_core.fleet.run_window` in this
  process (no engine at all), the Dask engine on a local cluster of 1 worker process,
  and on 2 (each one thread). Reported: throughput 2 workers / 1 worker (target ≥ 1.7×
  on 2 cores) and the engine's overhead per window against the plain loop, plus the S3
  requests per window (counted on the loop's client) for the README's cost on paper.
- **the overview page**: ``--overview-endpoints`` (50) endpoints × 24 jobs (real results
  of the grid, copied), in Chromium: time to a settled page, against a bare Streamlit
  page with one chart served the same way in the same run (target ≤ 1.3×); cold (a fresh
  server) and warm (a new browser tab once the server has read the world).

The 1-minute load average is printed beside the figures: other work on the machine
slows every figure, the ratios less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ladis_core import fleet, store  # noqa: E402
from ladis_core.devtools.ports import find_free_port  # noqa: E402
from ladis_core.fleet.engines import DaskEngine  # noqa: E402
from ladis_core.store import layout  # noqa: E402
from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, DashboardServer  # noqa: E402
from tests.support.fleet_world import build_trials, upload  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)
BARE_PAGE = """import numpy as np
import streamlit as st

st.title("Bare page")
st.line_chart(np.sin(np.linspace(0, 6, 24)))
"""


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def config_text(world: str, names: list[str], prefix: str) -> str:
    lines = ["[defaults]", "n_samples = 100", "n_repeats = 100", "n_permutations = 1000", ""]
    for name in names:
        lines += [
            "[[endpoint]]",
            f'name = "{name}"',
            f'reference = "{layout.reference_trial_uri(world, name)}"',
            f'inference = "{layout.inference_trial_uri(world, name)}"',
            f'output = "{layout.join(world, prefix, name)}"',
            "",
        ]
    return "\n".join(lines)


def bench_grid(world: str, work: Path, endpoints: int, windows: int) -> dict[str, float]:
    names = [f"ep{k:02d}" for k in range(endpoints)]
    t = time.perf_counter()
    trials = build_trials(work / "trials", pattern="C" * windows, window=120)
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda n: upload(trials.reference, layout.reference_trial_uri(world, n)), names
            )
        )
    print(f"trials captured and references uploaded in {time.perf_counter() - t:.0f} s")
    configs = {
        way: fleet.parse_config(config_text(world, names, f"out-{way}"))
        for way in ("loop", "dask1", "dask2")
    }
    options = {way: fleet.WindowOptions(cache_dir=str(work / f"cache-{way}")) for way in configs}
    engines = {"dask1": DaskEngine(workers=1), "dask2": DaskEngine(workers=2)}
    calls: Counter[str] = Counter()
    store.client.s3_client().meta.events.register(
        "before-call.s3", lambda event_name, **_: calls.update([event_name.rsplit(".", 1)[-1]])
    )
    spent = dict.fromkeys(configs, 0.0)
    failed = windows_counted = 0
    loop_calls: Counter[str] = Counter()
    try:
        for k in range(windows):
            with ThreadPoolExecutor(4) as pool:
                list(
                    pool.map(
                        lambda n, steps=trials.clean[k]: upload(
                            trials.inference, layout.inference_trial_uri(world, n), steps
                        ),
                        names,
                    )
                )
            at = START + timedelta(hours=k)
            order = list(configs)[k % 3 :] + list(configs)[: k % 3]  # rotate: fair under load
            for way in order:
                start = time.perf_counter()
                if way == "loop":
                    before = Counter(calls)  # only the loop's own calls (not the uploads)
                    outcomes = [
                        fleet.run_window(spec, at, options[way]) for spec in configs[way].endpoints
                    ]
                    loop_calls.update(calls - before)
                    windows_counted += len(outcomes)
                else:
                    outcomes = fleet.run_grid(
                        configs[way], [at], engines[way], options=options[way]
                    ).outcomes
                spent[way] += time.perf_counter() - start
                failed += sum(o.status != "ok" for o in outcomes)
            print(
                f"  round {k + 1}/{windows}: "
                + ", ".join(f"{w} {spent[w]:.1f} s" for w in configs)
                + f" ({load()})"
            )
    finally:
        for engine in engines.values():
            engine.close()
    total = endpoints * windows
    per_window = spent["loop"] / total
    requests = sum(loop_calls.values()) / max(1, windows_counted)
    print(
        f"\ngrid {endpoints} endpoints x {windows} windows = {total} windows ({failed} not ok), {load()}"
    )
    print(
        f"  plain loop (no engine):  {spent['loop']:.1f} s  ({per_window * 1000:.0f} ms a window)"
    )
    print(
        f"  dask, 1 worker:          {spent['dask1']:.1f} s  ({total / spent['dask1']:.2f} windows/s)"
    )
    print(
        f"  dask, 2 workers:         {spent['dask2']:.1f} s  ({total / spent['dask2']:.2f} windows/s)"
    )
    print(
        f"  throughput 2 workers / 1 worker: {spent['dask1'] / spent['dask2']:.2f}x (target >= 1.7x)"
    )
    overhead = (spent["dask1"] - spent["loop"]) / total
    print(f"  engine overhead per window (dask 1 worker vs loop): {overhead * 1000:+.0f} ms")
    common = ", ".join(
        f"{op} {n / max(1, windows_counted):.1f}" for op, n in loop_calls.most_common()
    )
    print(
        f"  S3 requests per window (plain loop, warm caches after the first): {requests:.1f} ({common})"
    )
    hourly = 1000 * per_window
    print(
        f"  on paper, 1,000 endpoints hourly: {hourly / 3600:.2f} worker-hours per hour "
        f"(at this per-window cost), {1000 * requests:,.0f} S3 requests per hour"
    )
    return {
        "per_window_s": per_window,
        "requests_per_window": requests,
        "ratio": spent["dask1"] / spent["dask2"],
    }


def copy_jobs(world: str, source: str, names: list[str], jobs_each: int) -> None:
    template = fleet.status.load_jobs(source)[0]
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def one(item: tuple[int, str]) -> None:
        index, name = item
        for h in range(jobs_each):
            moment = end - timedelta(hours=jobs_each - 1 - h)
            job = replace(
                template,
                job_id=layout.job_id_for(moment),
                scheduled_at=moment.isoformat(),
                endpoint=name,
                detection_rate=(template.detection_rate or 0) + (h * 7 + index) % 40,
                incident=(h + index) % 17 == 0,
            )
            store.write_bytes(
                layout.results_uri(layout.monitoring_uri(world, name), job.job_id),
                job.to_json().encode(),
            )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, enumerate(names)))


def settled(page) -> None:
    page.locator(
        "[data-testid='stMetric'], [data-testid='stVegaLiteChart'], [data-testid='stArrowVegaLiteChart']"
    ).first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000
    )


def overview_settled(page) -> None:
    page.locator("[data-testid='stDataFrame'] canvas").first.wait_for(timeout=120_000)
    page.locator("[data-testid='stMetric']").nth(4).wait_for(timeout=120_000)
    settled(page)


def timed(page, url: str, ready) -> float:
    start = time.perf_counter()
    page.goto(url)
    ready(page)
    return time.perf_counter() - start


def bench_overview(server, world: str, source: str, work: Path, count: int) -> None:
    from playwright.sync_api import sync_playwright

    names = [f"fleet-{k:03d}" for k in range(count)]
    copy_jobs(world, source, names, 24)
    bare = work / "bare_page.py"
    bare.write_text(BARE_PAGE)
    env = {
        **server.environment(),
        "LADIS_S3_URI": world,
        "LADIS_CACHE_DIR": str(work / "dash-cache"),
    }
    figures: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        viewport = {"width": 1400, "height": 1600}
        for label, script, ready in (
            ("bare", bare, settled),
            ("overview", REPO / "app" / "streamlit_app.py", overview_settled),
        ):
            with DashboardServer(env, log_path=work / f"{label}.log", script=script) as dash:
                page = browser.new_page(viewport=viewport)
                figures[f"{label}_cold"] = timed(page, dash.url, ready)
                page.close()
                warm = []
                for _ in range(3):
                    page = browser.new_page(viewport=viewport)
                    warm.append(timed(page, dash.url, ready))
                    page.close()
                figures[f"{label}_warm"] = sorted(warm)[1]
        browser.close()
    print(f"\noverview page, {count} endpoints x 24 jobs, Chromium ({load()})")
    for kind in ("cold", "warm"):
        ratio = figures[f"overview_{kind}"] / figures[f"bare_{kind}"]
        print(
            f"  {kind}: overview {figures[f'overview_{kind}']:.2f} s, bare page with one chart "
            f"{figures[f'bare_{kind}']:.2f} s: {ratio:.2f}x (target <= 1.3x)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--overview-endpoints", type=int, default=50)
    parser.add_argument("--skip-grid", action="store_true", help="only the overview page")
    parser.add_argument("--keep", help="keep the S3 data and logs in this folder")
    args = parser.parse_args()
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    import torch

    torch.set_num_threads(1)
    from ladis_core.devtools.s3server import LocalS3Server

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ladis-bench-fleet-"))
    work.mkdir(parents=True, exist_ok=True)
    server = LocalS3Server(work / "s3", port=find_free_port())
    server.start(timeout_s=60)
    try:
        os.environ.update(server.environment())
        world = server.create_bucket("bench-fleet")
        print(f"bench_fleet on {os.cpu_count()} cores, {load()}")
        endpoints, windows = (2, 2) if args.skip_grid else (args.endpoints, args.windows)
        bench_grid(world, work, endpoints, windows)
        overview = server.create_bucket("bench-overview")
        bench_overview(
            server, overview, layout.join(world, "out-loop", "ep00"), work, args.overview_endpoints
        )
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
