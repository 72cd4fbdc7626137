"""Where a demo world keeps its notes and marker, which prefixes belong to an endpoint,
and whether a prefix can hold a world.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ladis_core import store
from ladis_core.demo.options import DEFAULT_ENDPOINT
from ladis_core.demo.summary import WorldSummary
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.store import layout

MARKER_NAME = "world.json"


#: top-level folders that mark a prefix as a LADIS world
WORLD_FOLDERS = ("models", "datasets", "trials", "monitoring", "experiments", "demo")


_WIPE_WORKERS = 16


def demo_uri(world: str, endpoint: str) -> str:
    """Where the demo keeps its notes about one endpoint's world."""
    return layout.join(world, "demo", endpoint)


def marker_uri(world: str, endpoint: str) -> str:
    """The world marker, written last: its presence means the world is complete."""
    return layout.join(demo_uri(world, endpoint), MARKER_NAME)


def _note_uri(world: str, endpoint: str, name: str) -> str:
    return layout.join(demo_uri(world, endpoint), "stages", f"{name}.json")


def _endpoint_prefixes(world: str, endpoint: str) -> list[str]:
    """Every prefix the demo writes for ``endpoint`` (the model last, so a partly wiped
    world still looks incomplete)."""
    return [
        demo_uri(world, endpoint),
        layout.monitoring_uri(world, endpoint),
        layout.join(world, "trials", endpoint),
        layout.join(world, "experiments", endpoint),
        layout.join(world, "datasets", endpoint),
        layout.model_uri(world, endpoint),
    ]


def _delete_prefix(prefix: str) -> int:
    """Delete every object under ``prefix`` (through :mod:`ladis_core.store`)."""
    uris = [info.uri for info in store.iter_objects(prefix)]
    if uris:
        with ThreadPoolExecutor(max_workers=min(_WIPE_WORKERS, len(uris))) as pool:
            list(pool.map(store.delete, uris))
    return len(uris)


def load_summary(world: str, endpoint: str = DEFAULT_ENDPOINT) -> WorldSummary | None:
    """The marker of a complete demo world, or ``None`` when there is none."""
    try:
        return WorldSummary.from_dict(store.read_json(marker_uri(world, endpoint)))
    except DataNotFoundError:
        return None


def check_world(world: str, *, create: bool = True, allow_foreign: bool = False) -> None:
    """Make sure ``world`` is reachable and is (or can become) a LADIS world.

    S3: the bucket must answer (created when missing and ``create``); a prefix that holds
    objects but none of the LADIS folders (``models/``, ``trials/``, …) belongs to
    something else and is refused unless ``allow_foreign``. Raises
    :class:`~ladis_core.errors.StorageError` / :class:`InputError` with what to do.
    """
    if create:
        store.ensure_bucket(world)
    else:
        store.check_bucket(world)
    if allow_foreign:
        return
    children = set(store.list_children(world))
    if children & set(WORLD_FOLDERS):
        return
    first = next(iter(store.iter_objects(world)), None)
    if first is not None:
        shown = ", ".join(sorted(children)[:5]) or first.uri
        raise InputError(
            f"{world} is not empty and holds no LADIS world (found {shown}); build the demo in a prefix of "
            f"its own (--world {layout.join(world, 'ladis')}/) or another bucket, or pass --force to build "
            "beside what is there"
        )
