"""``python -m ladis_core demo``: build the embedded demo world (see :mod:`ladis_core.demo`)."""

from __future__ import annotations

import argparse
import logging

NAME = "demo"
HELP = "build the demo world: trained model, attacks, a day of traffic, hourly jobs"
DESCRIPTION = """\
Build the embedded demo world in S3 (or a local folder) with the real pipeline: train a
ResNet18 on scikit-learn's digits (or --data DIR), store it, capture the reference
(validation pass, EVAL mode), attack the natural pool (PGD at two ε, FGSM), replay
simulated hours of traffic through the local serving endpoint with capture on, run the
monitoring job after every hour, and run the per-layer experiment.

Re-running skips what the world already holds; a complete world is left alone.
A world is complete once demo/<endpoint>/world.json exists (written last).

Examples:
  python -m ladis_core demo                          # into $LADIS_S3_URI (s3://ladis/)
  python -m ladis_core demo --quick --world /tmp/w   # a small world in a local folder
  python -m ladis_core demo --data ~/tiny-imagenet/train --image-size 64 --max-per-class 100"""


def register(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bucket", help="build into s3://BUCKET/ (created if missing)")
    where.add_argument(
        "--world", help="build into this s3:// prefix or local folder (default: $LADIS_S3_URI)"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="a smaller world: 4 epochs, 6 hours of 120 requests, lighter statistics",
    )
    size.add_argument(
        "--tiny",
        action="store_true",
        help="the smallest world (16×16 images, 3 hours of 110 requests), for tests",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default 0)"
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="an image folder with one sub-folder per class instead of the digits",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="images are resized to this many pixels square (default 32; --tiny 16)",
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=None,
        help="with --data: use at most this many images of each class",
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        help="endpoint name (default digits-resnet18, or <folder>-resnet18 with --data)",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default 10, --quick 4)"
    )
    parser.add_argument(
        "--hours", type=int, default=None, help="simulated hours of traffic (default 24, --quick 6)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to train, attack and serve"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads while building (default: torch's)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="delete this endpoint's objects in the world and rebuild (also builds into a "
        "prefix that holds other objects)",
    )


def _endpoint_for(data_dir: str | None) -> str | None:
    if not data_dir:
        return None
    import re
    from pathlib import Path

    name = Path(data_dir).expanduser().resolve().name or "images"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._").lower() or "images"
    return f"{slug[:50]}-resnet18"


def run(args: argparse.Namespace) -> int:
    from ladis_core import config, demo
    from ladis_core.progress import log_progress

    world = f"s3://{args.bucket.strip('/')}/" if args.bucket else (args.world or config.world_uri())
    changes: dict = {"seed": args.seed, "device": args.device}
    if args.image_size is not None:
        changes["image_size"] = args.image_size
    if args.data:
        changes["data_dir"] = args.data
        changes["max_per_class"] = args.max_per_class
    endpoint = args.endpoint or _endpoint_for(args.data)
    if endpoint:
        changes["endpoint"] = endpoint
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.hours is not None:
        changes["hours"] = args.hours
    if args.threads is not None:
        changes["torch_threads"] = args.threads
    preset = (
        demo.DemoOptions.quick
        if args.quick
        else demo.DemoOptions.tiny
        if args.tiny
        else demo.DemoOptions.full
    )
    options = preset(**changes)
    logger = logging.getLogger("ladis.demo")
    logger.info("building the demo world in %s (endpoint %s)", world, options.endpoint)
    summary = demo.build_world(
        world, options=options, force=args.force, progress=log_progress(logger)
    )
    print(summary.closing_note())
    return 0
