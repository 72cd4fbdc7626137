"""``python -m ladis_core report``: export an incident report as HTML, JSON or CSV."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timedelta

NAME = "report"
HELP = "export an incident report (one job or a time range) as self-contained HTML, JSON or CSV"
DESCRIPTION = """\
Export the results of one monitoring job, several jobs, or every job in a time range as
one report: a self-contained HTML file that opens offline (charts and images inline),
a JSON document (every result field, per-sample scores and provenance; schema in
ladis_core/schemas/report.schema.json) or a CSV file (one row per flagged input).

examples:
  python -m ladis_core report --job s3://ladis/monitoring/digits/2026-11-23T17-00-00Z --out incident.html
  python -m ladis_core report --job s3://ladis/monitoring/digits/2026-11-23T17-00-00Z/results.json \\
      --format json --out incident.json
  python -m ladis_core report --monitoring s3://ladis/monitoring/digits \\
      --from 2026-11-23T00:00 --to 2026-11-24T00:00 --format csv --out day.csv

A job is given by its folder or its results.json. Without --from/--to the timeline shows
the jobs within --context-hours of the reported ones. Times are ISO 8601 (UTC unless an
offset is given) or job ids. --out takes a local path, an s3:// URI or - (stdout)."""


def _parse_time(text: str) -> datetime:
    from ladis_core.store import layout

    try:
        return layout.parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; use ISO 8601 such as 2026-11-23T17:00 or a job id such as 2026-11-23T17-00-00Z"
        ) from None


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="URI",
        help="a job folder or its results.json (repeat for several jobs)",
    )
    parser.add_argument(
        "--monitoring",
        metavar="URI",
        help="the monitoring folder (default: the parent of each job); with --from/--to and no "
        "--job, every job of that range is reported",
    )
    parser.add_argument(
        "--from", dest="start", type=_parse_time, metavar="TIME", help="start of the range"
    )
    parser.add_argument(
        "--to", dest="end", type=_parse_time, metavar="TIME", help="end of the range"
    )
    parser.add_argument(
        "--context-hours",
        type=float,
        default=12.0,
        metavar="H",
        help="without --from/--to, show jobs this many hours around the reported ones (default 12)",
    )
    parser.add_argument(
        "--format",
        choices=("html", "json", "csv"),
        help="output format (default: from the --out extension, else html)",
    )
    parser.add_argument(
        "--out", required=True, metavar="PATH", help="where to write: a path, s3:// URI or -"
    )
    parser.add_argument(
        "--no-images", action="store_true", help="do not read the trial for input images"
    )
    parser.add_argument(
        "--max-samples",
        type=int,
        default=100,
        metavar="N",
        help="flagged inputs shown (with images) in the HTML report (default 100; JSON/CSV list all)",
    )
    parser.add_argument("--title", default="", help="report title (default: endpoint and job)")
    parser.add_argument(
        "--cache-dir", metavar="DIR", help="local cache for s3:// trials (default .cache)"
    )
    parser.add_argument(
        "--world",
        metavar="URI",
        help="the LADIS world root, only needed when trial URIs do not follow the standard layout",
    )


def _format_for(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = args.out.rsplit(".", 1)[-1].lower() if "." in args.out else ""
    return {"htm": "html", "html": "html", "json": "json", "csv": "csv"}.get(suffix, "html")


def run(args: argparse.Namespace) -> int:
    from ladis_core import store
    from ladis_core.errors import InputError
    from ladis_core.progress import log_progress
    from ladis_core.report import MEDIA_TYPES, gather_report_data, render

    if not args.job and not args.monitoring:
        raise InputError("give --job URI (repeatable), or --monitoring URI with --from/--to")
    if not args.job and args.start is None and args.end is None:
        raise InputError("--monitoring without --job needs a range: add --from and/or --to")
    if args.context_hours < 0:
        raise InputError(f"--context-hours {args.context_hours:g} must not be negative")
    fmt = _format_for(args)
    data = gather_report_data(
        args.job,
        monitoring=args.monitoring,
        start=args.start,
        end=args.end,
        context=timedelta(hours=args.context_hours),
        include_images=not args.no_images,
        max_html_samples=args.max_samples,
        world=args.world,
        title=args.title,
        cache_dir=args.cache_dir,
        progress=log_progress(logging.getLogger("ladis.report")),
    )
    text = render(data, fmt)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    payload = text.encode("utf-8")
    store.write_bytes(args.out, payload, content_type=MEDIA_TYPES[fmt])
    incidents = sum(1 for job in data.jobs if job.incident)
    print(
        f"wrote {args.out} ({fmt}, {len(payload) / 1e6:.2f} MB): {len(data.jobs)} job(s), "
        f"{incidents} incident(s), {len(data.samples)} flagged input(s)"
    )
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
