"""``python -m ladis_core monitor``: run the monitoring job once or on a schedule."""

from __future__ import annotations

import argparse
import logging

NAME = "monitor"
HELP = "run the monitoring job: test new inference traffic against the reference"
DESCRIPTION = """\
Test the inference requests captured since the last job (the bookmark under --output)
against the reference trial, per layer and combined, and write
<output>/<job-id>/results.json once; then advance the bookmark.

  python -m ladis_core monitor --reference s3://b/trials/ep/reference \\
      --inference s3://b/trials/ep/inference --output s3://b/monitoring/ep

A window with fewer rows than --n-samples is recorded as insufficient_data (rates
null) and its requests roll into the next window. Re-running a job id that already has
a result changes nothing (exit 0). Bad input exits with code 2 and writes nothing."""

log = logging.getLogger("ladis.monitor")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("data")
    where.add_argument(
        "--reference",
        required=True,
        metavar="URI",
        help="reference trial (EVAL mode, natural validation data): s3:// or a folder",
    )
    where.add_argument(
        "--inference",
        required=True,
        metavar="URI",
        help="inference trial (PREDICT mode, one step per request)",
    )
    where.add_argument(
        "--output",
        required=True,
        metavar="URI",
        help="monitoring prefix: results, bookmark and job state live here",
    )
    where.add_argument(
        "--endpoint",
        metavar="NAME",
        help="endpoint name recorded in results and metrics (default: from the URIs)",
    )

    job = parser.add_argument_group("job")
    job.add_argument(
        "--at",
        metavar="TIME",
        help="scheduled time, ISO-8601 (e.g. 2026-11-23T17:00:00Z); names the job (default: now)",
    )
    job.add_argument(
        "--layers",
        type=_csv,
        metavar="A,B,…",
        help="layers to test, comma-separated (default: the penultimate layer)",
    )
    job.add_argument(
        "--all-steps",
        action="store_true",
        help="test every inference step, not only those after the bookmark",
    )

    test = parser.add_argument_group("test settings")
    test.add_argument(
        "--n-samples", type=int, default=100, metavar="N", help="rows per sample (default 100)"
    )
    test.add_argument(
        "--repeats", type=int, default=100, metavar="R", help="repetitions (default 100)"
    )
    test.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    test.add_argument(
        "--permutations",
        type=int,
        default=1000,
        metavar="B",
        help="permutations per test (default 1000)",
    )
    test.add_argument(
        "--seed", type=int, default=0, help="random seed, recorded in the result (default 0)"
    )
    test.add_argument(
        "--class-matched",
        dest="class_matched",
        action="store_true",
        default=True,
        help="draw reference rows with the predicted-class mix of the window (default)",
    )
    test.add_argument(
        "--no-class-matched",
        dest="class_matched",
        action="store_false",
        help="draw reference rows at random",
    )
    test.add_argument(
        "--standardize",
        dest="standardize",
        action="store_true",
        default=False,
        help="standardise features with statistics of the reference",
    )
    test.add_argument(
        "--kernel",
        choices=("multi_rbf", "rbf"),
        default="multi_rbf",
        help="MMD kernel: a sum of five Gaussians around the median bandwidth (multi_rbf, "
        "the default) or one Gaussian (rbf)",
    )
    test.add_argument(
        "--no-standardize", dest="standardize", action="store_false", help=argparse.SUPPRESS
    )

    rule = parser.add_argument_group("incident rule")
    rule.add_argument(
        "--alpha-incident",
        type=_level,
        default=0.01,
        metavar="ALPHA",
        help="incident when the window test's p-value is below this: the false-alarm rate "
        "per natural window (default 0.01)",
    )
    rule.add_argument(
        "--rule",
        choices=("window-test", "detection-rate"),
        default="window-test",
        help="what decides an incident: the window test (default) or the detection rate "
        "against --margin/--min-rate (the rule of results before the window test)",
    )
    rule.add_argument(
        "--margin",
        type=float,
        default=25.0,
        metavar="POINTS",
        help="detection-rate rule: the rate exceeds the baseline by more than this "
        "(default 25; drawn on charts as the alert threshold)",
    )
    rule.add_argument(
        "--min-rate",
        type=float,
        default=20.0,
        metavar="PERCENT",
        help="... and is above this rate (default 20)",
    )

    run = parser.add_argument_group("running")
    run.add_argument(
        "--cloudwatch",
        action="store_true",
        help="publish detection rate, baseline rate and request count to CloudWatch",
    )
    run.add_argument("--namespace", default="LADIS", help="CloudWatch namespace (default LADIS)")
    run.add_argument(
        "--every",
        metavar="INTERVAL",
        help="keep running a job every INTERVAL (e.g. 1h, 30m), at multiples of it",
    )
    run.add_argument("--max-runs", type=int, metavar="K", help="with --every: stop after K jobs")
    run.add_argument(
        "--lease",
        default="15m",
        metavar="INTERVAL",
        help="how long a job's claim on its steps lasts if it dies (default 15m)",
    )
    run.add_argument("--cache-dir", metavar="DIR", help="local cache for s3:// trials")
    run.add_argument(
        "--max-window-steps",
        type=int,
        default=20_000,
        metavar="N",
        help="the most requests one job tests (default 20000); a larger backlog (after an "
        "outage) is tested by the next jobs, oldest first, so memory stays bounded",
    )
    run.add_argument(
        "--device", metavar="DEVICE", help="where the statistics run, e.g. cuda (default: cpu)"
    )


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (exclusive)")
    return value


def run(args: argparse.Namespace) -> int:
    from ladis_core import monitoring
    from ladis_core.errors import InputError
    from ladis_core.monitoring import metrics
    from ladis_core.monitoring.results import IncidentRule, JobSettings
    from ladis_core.progress import log_progress

    settings = JobSettings(
        n_samples=args.n_samples,
        n_repeats=args.repeats,
        alpha=args.alpha,
        n_permutations=args.permutations,
        seed=args.seed,
        class_matched=args.class_matched,
        standardize=args.standardize,
        kernel=args.kernel,
    )
    rule = IncidentRule(
        margin_points=args.margin,
        min_rate=args.min_rate,
        alpha=args.alpha_incident,
        basis=args.rule,
    )
    lease = monitoring.parse_interval(args.lease).total_seconds()
    if args.max_runs is not None and not args.every:
        raise InputError("--max-runs needs --every")
    if args.every and args.at:
        raise InputError(
            "--at names a single job; with --every the jobs are named by their scheduled times"
        )
    progress = log_progress(log) if args.verbose else None
    publishers = [metrics.cloudwatch_publisher(args.namespace)] if args.cloudwatch else []

    def one(at):
        try:
            result = monitoring.run_job(
                reference=args.reference,
                inference=args.inference,
                output=args.output,
                at=at,
                layers=args.layers,
                all_steps=args.all_steps,
                settings=settings,
                rule=rule,
                endpoint=args.endpoint,
                publishers=publishers,
                claim_policy=monitoring.ClaimPolicy(lease_s=lease),
                cache_dir=args.cache_dir,
                device=args.device,
                progress=progress,
                max_window_steps=args.max_window_steps,
            )
        except monitoring.JobExistsError as exc:
            print(str(exc))
            return None
        print(summary(result, args.output))
        return result

    if not args.every:
        one(args.at)
        return 0
    interval = monitoring.parse_interval(args.every)
    outcome = monitoring.run_every(one, interval=interval, max_runs=args.max_runs)
    print(f"schedule finished: {outcome.runs} runs, {outcome.failed} failed")
    return 0 if outcome.failed == 0 else 2


def summary(result, output: str) -> str:
    """One line per job, for the terminal and logs."""
    from ladis_core.store import layout

    where = layout.results_uri(output.rstrip("/"), result.job_id)
    steps = (
        f"steps {result.first_step}–{result.last_step}"
        if result.first_step is not None
        else "no steps"
    )
    if result.detection_rate is None:
        return f"job {result.job_id}: {result.requests} requests ({steps}), {result.status}: {result.reason} → {where}"
    incident = "INCIDENT" if result.incident else "no incident"
    base = result.baseline_detection_rate
    base_text = "n/a" if base is None else f"{base:.0f}%"
    window = ""
    if result.window_test is not None:
        test = result.window_test
        window = (
            f"window test p={test.p_value:.3g} ({result.incident_rule.describe()}), "
            f"{test.share.describe('its requests')}, "
        )
    return (
        f"job {result.job_id}: {result.requests} requests ({steps}), {window}detection rate "
        f"{result.detection_rate:.0f}% (baseline {base_text}, threshold {result.alert_threshold:.0f}%), "
        f"{incident} → {where}"
    )
