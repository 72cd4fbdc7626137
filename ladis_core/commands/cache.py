"""``python -m ladis_core cache``: see and prune the local cache of trials and models."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

NAME = "cache"
HELP = "show or prune the local cache of trials and models (LADIS_CACHE_DIR)"
DESCRIPTION = """\
Trials read from S3 and served models are mirrored into the local cache (LADIS_CACHE_DIR,
default .cache in the working folder) so that later reads fetch only what is new. The
cache only grows; prune it by age, by size, or both. A trial being read right now is
skipped; anything removed is fetched again when next needed.

examples:
  python -m ladis_core cache status
  python -m ladis_core cache prune --older-than 7d
  python -m ladis_core cache prune --max-size 5GB --dry-run"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", metavar="PATH", help="the cache folder (default: LADIS_CACHE_DIR or .cache)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser(
        "status", help="list the cached trials and models, least recently used first"
    )
    prune = actions.add_parser("prune", help="remove least recently used folders")
    prune.add_argument(
        "--older-than", metavar="AGE", help="remove what was not used for this long (e.g. 7d, 12h)"
    )
    prune.add_argument(
        "--max-size",
        metavar="SIZE",
        help="then remove the least recently used until the rest fits (e.g. 5GB, 500MB)",
    )
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    parser.set_defaults(cache_parser=parser)


def _describe(entry, now: datetime) -> str:
    from ladis_core.store.local_cache import format_size

    age = now - entry.last_used
    days, hours = age.days, age.seconds // 3600
    when = f"{days} d {hours} h ago" if days else f"{hours} h {age.seconds // 60 % 60} min ago"
    return f"  {entry.kind[:-1]:6} {format_size(entry.size_bytes):>9}  used {when:>16}  {entry.uri or entry.path}"


def run(args: argparse.Namespace) -> int:
    from ladis_core.config import cache_root
    from ladis_core.store.local_cache import format_size, list_cache, parse_size, prune_cache

    root = args.dir or cache_root()
    now = datetime.now(UTC)
    if args.action == "status":
        entries = list_cache(root)
        total = sum(e.size_bytes for e in entries)
        print(f"cache {root}: {len(entries)} folder(s), {format_size(total)}")
        for entry in entries:
            print(_describe(entry, now))
        return 0
    if args.action == "prune":
        from ladis_core.monitoring import parse_interval

        result = prune_cache(
            older_than=parse_interval(args.older_than) if args.older_than else None,
            max_bytes=parse_size(args.max_size) if args.max_size else None,
            root=root,
            dry_run=args.dry_run,
        )
        verb = "would remove" if result.dry_run else "removed"
        for entry in result.removed:
            print(f"{verb}:{_describe(entry, now)}")
        for entry in result.skipped_busy:
            print(f"in use, kept:{_describe(entry, now)}")
        print(
            f"{verb} {len(result.removed)} folder(s), {format_size(result.freed_bytes)}; "
            f"{format_size(result.kept_bytes)} kept in {root}"
        )
        return 0
    args.cache_parser.print_help()
    return 0
