"""``python -m ladis_core fleet run|status``: monitor many endpoints from one config."""

from __future__ import annotations

import argparse
import logging

NAME = "fleet"
HELP = "monitor many endpoints: run the grid endpoint × window, alert, serve metrics"
DESCRIPTION = """\
Run the monitoring job of every endpoint of a fleet config for the due window (or for
every window of a range: a backfill), in-process or on a Dask cluster, exactly once per
window through the claims in S3; alert on incident transitions; serve Prometheus metrics.

  python -m ladis_core fleet run --config fleet.toml                    # the due window
  python -m ladis_core fleet run --config fleet.toml --every 1h          # keep running
  python -m ladis_core fleet run --config fleet.toml --engine dask --address tcp://sched:8786
  python -m ladis_core fleet run --config fleet.toml --from 2026-11-23T00:00Z --to 2026-11-23T23:00Z
  python -m ladis_core fleet status --config fleet.toml

A failed window is recorded beside its job (<output>/<job-id>/failures/) and retried;
the other windows go on. Exit status: 0 when every window is done, 1 when some failed,
2 for bad input (an unknown config key names its line)."""

log = logging.getLogger("ladis.fleet")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run",
        help="run the grid of windows",
        description="Run every endpoint's due window (or a range of windows).",
    )
    run.add_argument("--config", required=True, metavar="FILE", help="the fleet.toml")
    run.add_argument(
        "--engine",
        choices=("local", "dask", "ray"),
        default="local",
        help="where windows run: in this process (local, the default) or on Dask",
    )
    run.add_argument(
        "--address", metavar="ADDR", help="join this Dask scheduler (e.g. tcp://10.0.0.5:8786)"
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local: threads (default 1); dask without --address: worker processes (default 2)",
    )
    run.add_argument(
        "--from", dest="start", metavar="TIME", help="backfill: first window (ISO-8601)"
    )
    run.add_argument("--to", dest="end", metavar="TIME", help="backfill: last window (ISO-8601)")
    run.add_argument(
        "--every",
        metavar="INTERVAL",
        help="keep running the due window every INTERVAL (default: once; window length "
        "from [fleet] every)",
    )
    run.add_argument("--max-runs", type=int, metavar="K", help="with --every: stop after K grids")
    run.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on this port"
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address for /metrics (default 127.0.0.1)",
    )
    run.add_argument("--cache-dir", metavar="DIR", help="local cache of s3:// trials")
    run.add_argument("--device", metavar="DEVICE", help="where the statistics run (default cpu)")

    status = sub.add_parser(
        "status",
        help="each endpoint's last job, its age and its state",
        description="Print each endpoint's last job, its age, its state and what is failing.",
    )
    status.add_argument("--config", required=True, metavar="FILE", help="the fleet.toml")


def run(args: argparse.Namespace) -> int:
    if args.fleet_command == "status":
        return _status(args)
    return _run(args)


def _status(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from ladis_core import fleet
    from ladis_core.fleet.status import status_table

    config = fleet.load_config(args.config)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda s: fleet.endpoint_status(s.name, s.output, every=config.every),
                config.endpoints,
            )
        )
    print(status_table(statuses))
    failing = sorted({c for s in statuses for c in s.failing_channels})
    if failing:
        print(f"failing alert channels: {', '.join(failing)} (see <output>/_state/alerts.json)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ladis_core import fleet
    from ladis_core.errors import InputError
    from ladis_core.fleet.engines import make_engine
    from ladis_core.fleet.metrics import FleetMetrics
    from ladis_core.monitoring import parse_interval, parse_time, run_every
    from ladis_core.progress import log_progress

    config = fleet.load_config(args.config)
    if (args.start is None) != (args.end is None):
        raise InputError("a backfill needs both --from and --to")
    if args.start is not None and args.every:
        raise InputError("--every keeps running the due window; a backfill (--from/--to) runs once")
    if args.max_runs is not None and not args.every:
        raise InputError("--max-runs needs --every")
    if args.every:
        config = replace(config, every=parse_interval(args.every))
    if args.cache_dir:
        config = replace(config, cache_dir=args.cache_dir)
    options = fleet.WindowOptions(
        lease_s=config.lease_s, cache_dir=config.cache_dir, device=args.device
    )
    if args.start is not None:
        moments = fleet.ticks(parse_time(args.start), parse_time(args.end), config.every)
        if not moments:
            raise InputError(f"no window of {config.every} lies between --from and --to")
    metrics = FleetMetrics()
    port = args.metrics_port if args.metrics_port is not None else config.metrics_port
    server = metrics.serve(port, host=args.metrics_host) if port else None
    if server is not None:
        log.info("Prometheus metrics at http://%s:%d/metrics", args.metrics_host, port)
    engine = make_engine(args.engine, address=args.address, workers=args.workers)
    log.info("fleet of %d endpoints on %s", len(config.endpoints), engine.describe())
    progress = log_progress(log, min_interval_s=10.0)
    failed = 0

    def grid(at_moments) -> None:
        nonlocal failed
        summary = fleet.run_grid(
            config, at_moments, engine, options=options, metrics=metrics, progress=progress
        )
        failed += summary.failed
        print(summary.describe(), flush=True)
        for outcome in summary.outcomes:
            if outcome.status == "failed":
                print(
                    f"  FAILED {outcome.endpoint} {outcome.job_id}: {outcome.message}", flush=True
                )

    try:
        if args.start is not None:
            grid(moments)
        elif args.every:
            run_every(lambda tick: grid([tick]), interval=config.every, max_runs=args.max_runs)
        else:
            grid([fleet.floor_tick(_now(), config.every)])
    finally:
        engine.close()
        if server is not None:
            server.shutdown()
    return 1 if failed else 0


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
