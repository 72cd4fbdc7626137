"""The dashboard's data access: the ONE place that caches.

Every function is a thin, cached wrapper around a :mod:`ladis_core` call, keyed by plain
parameters (URIs, names, step numbers). Rules (Streamlit's guidance):

- ``st.cache_data(ttl=..., max_entries=...)`` for listings and small values; listings
  expire quickly (``LISTING_TTL_S``) so new jobs appear, and :func:`refresh` clears them
  at once.
- ``st.cache_resource`` for big immutable objects (trials, job lists, datasets) so they
  are not pickled on every rerun; callers never mutate what these return.
- No widgets or other ``st.*`` calls inside cached functions (their replay would break);
  work that reports progress (t-SNE) is computed outside the cache and kept in a small
  bounded store instead (:class:`ResultStore`).
- Only allowed sources are read (:func:`sources`: ``LADIS_S3_URI`` and
  ``LADIS_ALLOWED_SOURCES``): every public function checks the world or trial URI it is
  given before its cache is consulted, and the flagged inputs and reports follow the
  trial URIs inside a ``results.json`` only within them. A refusal raises
  :class:`~ladis_core.errors.SourceNotAllowedError` naming the allow-list.

Heavy libraries (torch, smdebug, sklearn) are imported inside the functions that need
them, so the history page does not pay for them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import streamlit as st

from ladis_core import store
from ladis_core.access import SourcePolicy
from ladis_core.fleet import alerts as fleet_alerts
from ladis_core.fleet import status as fleet_status
from ladis_core.monitoring import world
from ladis_core.monitoring.limits import CostCaps, RunGate
from ladis_core.monitoring.results import JobResult
from ladis_core.progress import ProgressCallback
from ladis_core.store import layout

LISTING_TTL_S = 30
RESULT_TTL_S = 3600
TRIAL_TTL_S = 1800


# --------------------------------------------------------------------------- limits


def sources() -> SourcePolicy:
    """The allowed data sources (read from the environment each time: it is cheap)."""
    return SourcePolicy.from_environment()


def _allowed(uri: str, what: str = "the data source") -> str:
    return sources().check(uri, what=what)


def cost_caps() -> CostCaps:
    """The caps of on-demand tests (``LADIS_MAX_N`` and the others)."""
    return CostCaps.from_environment()


@st.cache_resource
def run_gate() -> RunGate:
    """One on-demand test at a time per user, shared by every session of the server."""
    return RunGate()


# --------------------------------------------------------------------------- listings


@st.cache_data(ttl=LISTING_TTL_S, max_entries=16, show_spinner=False)
def _endpoints(world_uri: str) -> list[str]:
    return world.list_endpoints(world_uri)


def endpoints(world_uri: str) -> list[str]:
    """Endpoint names of the world (raises StorageError when it cannot be read)."""
    return _endpoints(_allowed(world_uri))


@st.cache_data(ttl=LISTING_TTL_S, max_entries=32, show_spinner=False)
def _job_index(world_uri: str, endpoint: str) -> world.JobIndex:
    return world.job_index(world_uri, endpoint)


def job_index(world_uri: str, endpoint: str) -> world.JobIndex:
    return _job_index(_allowed(world_uri), endpoint)


@st.cache_resource(max_entries=8, show_spinner="Loading monitoring jobs…")
def _jobs_by_ids(world_uri: str, endpoint: str, job_ids: tuple[str, ...]) -> tuple[JobResult, ...]:
    # keyed by the exact id list: results are written once, so a list never goes stale;
    # a new job changes the key (and the old entry ages out of the 8 kept)
    return tuple(world.load_jobs(world_uri, endpoint, job_ids=job_ids))


def jobs(world_uri: str, endpoint: str) -> tuple[JobResult, ...]:
    """Every job of ``endpoint``, oldest first (shared, immutable: do not mutate)."""
    return _jobs_by_ids(world_uri, endpoint, job_index(world_uri, endpoint).job_ids)


def job(world_uri: str, endpoint: str, job_id: str) -> JobResult:
    """One job of ``endpoint`` (from the cached list; read directly when not in it)."""
    for item in reversed(jobs(world_uri, endpoint)):
        if item.job_id == job_id:
            return item
    return _single_job(_allowed(world_uri), endpoint, job_id)


@st.cache_resource(max_entries=64, show_spinner=False)
def _single_job(world_uri: str, endpoint: str, job_id: str) -> JobResult:
    return world.load_job(world_uri, endpoint, job_id)


@st.cache_data(ttl=LISTING_TTL_S, max_entries=16, show_spinner=False)
def _verdicts(world_uri: str, endpoint: str) -> dict[str, list[Any]]:
    from ladis_core.monitoring import triage

    return triage.verdicts_by_job(layout.monitoring_uri(world_uri, endpoint))


def verdicts(world_uri: str, endpoint: str) -> dict[str, list[Any]]:
    """``{job_id: [Verdict, oldest first]}`` for the jobs that have verdicts."""
    return _verdicts(_allowed(world_uri), endpoint)


def latest_verdicts(world_uri: str, endpoint: str) -> dict[str, Any]:
    return {job_id: items[-1] for job_id, items in verdicts(world_uri, endpoint).items() if items}


# --------------------------------------------------------------------------- fleet overview

#: the span of each endpoint's sparkline, counted back from its latest job
OVERVIEW_SPAN = timedelta(hours=24)


@st.cache_data(ttl=LISTING_TTL_S, max_entries=1024, show_spinner=False)
def _endpoint_index(world_uri: str, endpoint: str) -> fleet_status.EndpointIndex:
    return fleet_status.scan(layout.monitoring_uri(world_uri, endpoint))


@st.cache_data(ttl=LISTING_TTL_S, max_entries=1024, show_spinner=False)
def _failing_channels(world_uri: str, endpoint: str) -> tuple[str, ...]:
    return tuple(fleet_alerts.failing_channels(layout.monitoring_uri(world_uri, endpoint)))


@st.cache_resource(max_entries=1024, show_spinner=False)
def _recent_jobs(world_uri: str, endpoint: str, job_ids: tuple[str, ...]) -> tuple[JobResult, ...]:
    # keyed by the ids: results never change, so only an endpoint with a new job is read
    return tuple(world.load_jobs(world_uri, endpoint, job_ids=job_ids))


def endpoint_overview(world_uri: str, endpoint: str) -> fleet_status.EndpointStatus:
    """One endpoint's status with its last 24 h of jobs (each part cached per endpoint;
    the age is computed now)."""
    world_uri = _allowed(world_uri)
    index = _endpoint_index(world_uri, endpoint)
    ids = tuple(fleet_status.recent_ids(index.job_ids, OVERVIEW_SPAN))
    jobs = _recent_jobs(world_uri, endpoint, ids)
    return fleet_status.endpoint_status(
        endpoint,
        index.output,
        every=fleet_status.typical_interval(index.job_ids),
        index=index,
        jobs=jobs,
        failing=_failing_channels(world_uri, endpoint),
    )


def fleet_overview(world_uri: str) -> list[fleet_status.EndpointStatus]:
    """Every endpoint's overview, read in parallel (only cold endpoints cost reads)."""
    names = endpoints(world_uri)
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        return list(pool.map(lambda name: endpoint_overview(world_uri, name), names))


# --------------------------------------------------------------------------- trials


@st.cache_data(ttl=LISTING_TTL_S * 10, max_entries=32, show_spinner=False)
def _trial_layers(uri: str, mode: str) -> list[str]:
    from ladis_core import trials

    return trials.list_layers(uri, mode=mode)


def trial_layers(uri: str, mode: str) -> list[str]:
    return _trial_layers(_allowed(uri, "the trial"), mode)


@st.cache_data(ttl=LISTING_TTL_S, max_entries=32, show_spinner=False)
def _trial_last_step(uri: str, mode: str) -> int | None:
    from ladis_core import trials

    return trials.last_step(uri, mode=mode)


def trial_last_step(uri: str, mode: str) -> int | None:
    return _trial_last_step(_allowed(uri, "the trial"), mode)


def trial(
    uri: str,
    mode: str,
    layers: tuple[str, ...] | None = None,
    include_inputs: bool = False,
    after_step: int | None = None,
    until_step: int | None = None,
) -> Any:
    """A :class:`ladis_core.trials.TrialData` (shared: do not mutate its arrays)."""
    _allowed(uri, "the trial")
    return _trial(uri, mode, layers, include_inputs, after_step, until_step)


@st.cache_resource(ttl=TRIAL_TTL_S, max_entries=12, show_spinner="Reading the trial…")
def _trial(
    uri: str,
    mode: str,
    layers: tuple[str, ...] | None = None,
    include_inputs: bool = False,
    after_step: int | None = None,
    until_step: int | None = None,
) -> Any:
    from ladis_core import trials

    return trials.load_trial(
        uri,
        mode=mode,
        layers=list(layers) if layers else None,
        include_inputs=include_inputs,
        after_step=after_step,
        until_step=until_step,
    )


def job_window(job_result: JobResult) -> tuple[int | None, int | None]:
    """``(after_step, until_step)`` for reading exactly a job's inference window."""
    first = job_result.first_step
    return (None if first is None else first - 1), job_result.last_step


def job_layers(job_result: JobResult) -> list[str]:
    """The layers a job tested, in its own order."""
    return list(job_result.layers) or list(job_result.settings.layers)


def provenance(world_uri: str, endpoint: str) -> dict[int, dict]:
    """``{step: provenance record}`` of the endpoint's traffic ({} when none recorded)."""
    return _provenance(_allowed(world_uri), endpoint)


@st.cache_data(ttl=RESULT_TTL_S, max_entries=8, show_spinner=False)
def _provenance(world_uri: str, endpoint: str) -> dict[int, dict]:
    from ladis_core import trials

    uri = layout.provenance_uri(world_uri, endpoint)
    if not store.list_objects(uri):
        return {}
    return trials.load_provenance(uri)


@dataclass(frozen=True)
class FlaggedSet:
    """A job's flagged inputs with pixels (``ladis_core.report.ReportSample``, best
    first) and the notes about what could not be read (e.g. the trial is gone)."""

    samples: tuple[Any, ...]
    notes: tuple[str, ...]


def flagged_inputs(world_uri: str, endpoint: str, job_id: str) -> FlaggedSet:
    """The job's top samples with their inputs, originals (recorded, else the nearest
    natural neighbour) and perturbation sizes, gathered exactly as the incident report
    does (one code path, so the page and the report always agree). Trials outside the
    allowed sources are not read (a note says so)."""
    return _flagged_inputs(_allowed(world_uri), endpoint, job_id)


@st.cache_resource(ttl=RESULT_TTL_S, max_entries=16, show_spinner="Preparing the flagged inputs…")
def _flagged_inputs(world_uri: str, endpoint: str, job_id: str) -> FlaggedSet:
    from datetime import timedelta

    from ladis_core.report import gather_report_data

    job_result = job(world_uri, endpoint, job_id)
    gathered = gather_report_data(
        [job_result],
        monitoring=layout.monitoring_uri(world_uri, endpoint),
        world=world_uri.rstrip("/"),
        context=timedelta(0),
        include_images=True,
        max_html_samples=len(job_result.top_samples),
        allowed=sources(),
    )
    return FlaggedSet(samples=tuple(gathered.samples), notes=tuple(gathered.notes))


# --------------------------------------------------------------------------- computed views


class ResultStore:
    """A small thread-safe LRU of computed results, for work that shows progress.

    ``st.cache_data`` would record the progress bar's updates and fail to replay them,
    so slow views compute outside the cache and keep their result here.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def snapshot_keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@st.cache_resource
def _tsne_store() -> ResultStore:
    return ResultStore(max_entries=24)


def tsne_key(
    world_uri: str, endpoint: str, job_id: str, layer: str, max_points: int, seed: int
) -> tuple:
    return ("tsne", world_uri, endpoint, job_id, layer, int(max_points), int(seed))


def cached_tsne(key: tuple) -> Any | None:
    """The t-SNE result for ``key`` if it was computed already, else ``None``."""
    return _tsne_store().get(key)


@dataclass(frozen=True)
class LayerView:
    """A joint t-SNE of one layer plus what is needed to label its points.

    ``steps``/``classes`` map a point's ``row`` in its group to the step and predicted
    class: ``steps["inference"][row]``.
    """

    layer: str
    embedding: Any
    steps: dict[str, np.ndarray]
    classes: dict[str, np.ndarray]
    #: ``thumbnails[group][row]``: a PNG data URI of the embedded point's input, shown on
    #: hover; empty for a group whose trial recorded no inputs
    thumbnails: dict[str, dict[int, str]] = field(default_factory=dict)


def compute_tsne(
    key: tuple,
    world_uri: str,
    job_result: JobResult,
    layer: str,
    *,
    max_points: int,
    seed: int,
    progress: ProgressCallback | None = None,
) -> LayerView:
    """Compute (or fetch) the joint t-SNE of the job's reference and inference rows."""
    found = cached_tsne(key)
    if found is not None:
        return found
    from ladis_core.viz.embedding import tsne_2d

    after, until = job_window(job_result)
    reference = trial(job_result.reference, "EVAL", (layer,))
    inference = trial(job_result.inference, "PREDICT", (layer,), False, after, until)
    result = tsne_2d(
        {"reference": reference.layers[layer], "inference": inference.layers[layer]},
        seed=seed,
        max_points=max_points,
        progress=progress,
    )
    view = LayerView(
        layer=layer,
        embedding=result,
        steps={"reference": reference.steps, "inference": inference.steps},
        classes={"reference": reference.predicted_class, "inference": inference.predicted_class},
        thumbnails=_point_thumbnails(job_result, result),
    )
    _tsne_store().put(key, view)
    return view


def group_inputs(job_result: JobResult, group: str) -> np.ndarray | None:
    """The recorded inputs (n, C, H, W) of a t-SNE group ("reference": the job's
    reference trial, "inference": its window), row-aligned with the layer rows; ``None``
    when the trial recorded none."""
    if group == "reference":
        return trial(job_result.reference, "EVAL", None, True).inputs
    after, until = job_window(job_result)
    return trial(job_result.inference, "PREDICT", None, True, after, until).inputs


#: thumbnails travel to the browser with the chart on every rerun: full 32 px for the
#: default point counts, 16 px for the largest (about 1.2 kB and 0.7 kB a digit)
_THUMB_PX = ((600, 32), (None, 16))


def _point_thumbnails(job_result: JobResult, embedding: Any) -> dict[str, dict[int, str]]:
    """PNG data URIs of the inputs behind the embedded points, per group and row."""
    from ladis_core.viz import images

    max_px = next(px for limit, px in _THUMB_PX if limit is None or len(embedding) <= limit)
    thumbnails: dict[str, dict[int, str]] = {}
    for group in ("reference", "inference"):
        inputs = group_inputs(job_result, group)
        if inputs is not None:
            thumbnails[group] = images.thumbnail_data_uris(
                inputs, embedding.of_group(group)[1], max_size=max_px
            )
    return thumbnails


# --------------------------------------------------------------------------- reports


def report_embedding_key(world_uri: str, endpoint: str, job_result: JobResult) -> tuple | None:
    """The key of a t-SNE of ``job_result`` already computed on the layer explorer (the
    penultimate layer preferred), for the report to include; ``None`` if there is none."""
    store = _tsne_store()
    found = [k for k in store.snapshot_keys() if k[1:4] == (world_uri, endpoint, job_result.job_id)]
    if not found:
        return None
    layers = job_layers(job_result)
    found.sort(key=lambda k: (k[4] != (layers[-1] if layers else ""), -k[5]))
    return found[0]


def report_data(world_uri: str, endpoint: str, job_ids: tuple[str, ...], tsne: tuple | None) -> Any:
    """A :class:`ladis_core.report.ReportData` for ``job_ids`` (shared: do not mutate);
    trials outside the allowed sources are not read (the report notes it)."""
    return _report_data(_allowed(world_uri), endpoint, job_ids, tsne)


@st.cache_resource(ttl=RESULT_TTL_S, max_entries=8, show_spinner="Gathering the report…")
def _report_data(
    world_uri: str, endpoint: str, job_ids: tuple[str, ...], tsne: tuple | None
) -> Any:
    from ladis_core.report import ReportEmbedding, gather_report_data

    embedding = None
    view = cached_tsne(tsne) if tsne else None
    if view is not None:
        embedding = ReportEmbedding.from_embedding2d(
            view.embedding, layer=view.layer, inference_steps=view.steps["inference"]
        )
    return gather_report_data(
        [job(world_uri, endpoint, job_id) for job_id in job_ids],
        monitoring=layout.monitoring_uri(world_uri, endpoint),
        world=world_uri.rstrip("/"),
        embedding=embedding,
        allowed=sources(),
    )


# --------------------------------------------------------------------------- refresh

_REFRESHABLE: list[Callable[[], None]] = [
    _endpoints.clear,
    _job_index.clear,
    _verdicts.clear,
    _trial_last_step.clear,
    _trial_layers.clear,
    _provenance.clear,
    _endpoint_index.clear,
    _failing_channels.clear,
]


def forget_verdicts() -> None:
    """A verdict was recorded: read the verdicts (and the reports that list them) again."""
    _verdicts.clear()
    _report_data.clear()


def refresh() -> None:
    """Forget every listing so new jobs, verdicts and trials are read again.

    Job results, trial windows and t-SNE results stay cached: they never change once
    written (a new job changes the key of the job list).
    """
    for clear in _REFRESHABLE:
        clear()
    _single_job.clear()
