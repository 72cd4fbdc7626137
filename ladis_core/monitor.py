"""The monitoring job: one window of inference traffic tested against the reference.

``run_job`` loads the reference (EVAL) trial and the inference (PREDICT) steps after the
bookmark stored under ``output``, computes the baseline and detection rates per layer and
combined, per-input scores and the top 100, and writes ``<output>/<job-id>/results.json``
once; then it advances the bookmark. ``run_every`` repeats that on a schedule.

Storage layout under ``output`` (e.g. ``s3://ladis/monitoring/<endpoint>``)::

    <job-id>/results.json            the JobResult; written once (If-None-Match: *)
    <job-id>/scores.json             every row of the window: step, score, p-value, class
    bookmark.json                    {"last_step": …}: the last processed inference step
    _state/claims/<node>/<k>.json    claim k on the steps ≥ <node> (immutable)
    _state/claims/<node>/<k>.released.json   claim k gave its steps back
    _state/baseline/<key>.json       cached baseline rates of one reference + settings

Concurrency and crashes. Every object is written once, with a conditional create, so
nothing depends on read-modify-write. The processed steps form a chain: the claim won on
node ``s`` covers the steps ``s..m`` that its job loaded; once that job's results.json
exists (with ``last_step == m``) the claim is *committed* and the chain continues at node
``m + 1``. ``bookmark.json`` is a hint of where the chain ends, rewritten after each
commit (a hint left behind by a crash or a race is harmless: the chain decides). Hence:

- two jobs started at once: only one wins the claim on node ``s``; the other waits until
  that claim is committed or given back, then processes what comes after it. No step is
  processed by two jobs and both results are written;
- a job that fails gives its claim back (a ``released`` marker); one that crashes leaves
  a claim whose lease expires (``lease_s``, or at once when its process is known dead on
  this host), after which the next job takes the same steps again. The bookmark is only
  written after the result, so a crash leaves it where it was;
- re-running a job id whose results.json exists changes nothing (:class:`JobExistsError`).

A window with fewer requests than ``n_samples`` cannot be tested. Its result is written
(``status = "insufficient_data"``, rates null, the request count and a reason), but the
bookmark does not move: those requests roll into the next window, so that they are tested
eventually and traffic cannot slip through by staying below ``n`` per window.

SeaweedFS 4.48 and AWS S3 both honour ``If-None-Match: *`` (verified here for SeaweedFS
with 8 racing writers); the claim is read back after writing as a second check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core._process import pid_alive as _pid_alive
from ladis_core._version import __version__
from ladis_core.errors import DataNotFoundError, InputError, LadisError, StorageError, check
from ladis_core.progress import ProgressCallback, report
from ladis_core.results import (
    STATUS_INSUFFICIENT,
    STATUS_OK,
    IncidentRule,
    JobResult,
    JobSettings,
    LayerResult,
    TopSample,
)
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")

TOP_K = 100
DEFAULT_LEASE_S = 900.0
STATE_DIR = "_state"
SCORES_NAME = "scores.json"
_NODE_WIDTH = 12
_POLL_S = 1.0


class JobExistsError(LadisError):
    """The job id already has a result; nothing was done (the CLI exits 0)."""

    exit_code = 0

    def __init__(self, job_id: str, uri: str, *, detail: str = "") -> None:
        self.job_id = job_id
        self.uri = uri
        super().__init__(f"job {job_id} already exists at {uri}{detail}; nothing done")


class ClaimTimeoutError(LadisError):
    """Another job still holds the claim on the next steps after waiting ``wait_s``."""


# --------------------------------------------------------------------------- time helpers


def _now() -> datetime:
    return datetime.now(UTC)


def class_names_for(reference: str) -> dict[str, str]:
    """Class names of the model whose reference trial is ``reference``, when the trial sits
    in a LADIS world (``<world>/trials/<endpoint>/reference`` beside
    ``<world>/models/<endpoint>/model.json``); ``{}`` otherwise. Best effort: names only
    make the results friendlier, so a missing or unreadable spec is not an error."""
    parts = reference.rstrip("/").rsplit("/", 3)
    if len(parts) != 4 or parts[1] != "trials" or parts[3] != "reference":
        return {}
    spec_uri = layout.join(layout.model_uri(parts[0], parts[2]), "model.json")
    try:
        names = store.read_json(spec_uri).get("class_names") or []
    except (LadisError, AttributeError):
        return {}
    return {str(index): str(name) for index, name in enumerate(names)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_time(value: str | datetime) -> datetime:
    """An aware UTC datetime from ISO-8601 (``2026-11-23T17:00:00Z``, ``…+01:00``, a date)
    or a job id (``2026-11-23T17-00-00Z``); naive times are taken as UTC."""
    if isinstance(value, datetime):
        return layout.as_utc(value)
    try:
        return layout.parse_time(str(value))
    except ValueError:
        raise InputError(
            f"--at {str(value).strip()!r} is not an ISO-8601 time; use e.g. 2026-11-23T17:00:00Z"
        ) from None


# --------------------------------------------------------------------------- bookmark


@dataclass(frozen=True)
class Bookmark:
    """Where monitoring of one inference trial stands: ``last_step`` is the last
    inference step that a committed job processed (``None``: nothing yet)."""

    last_step: int | None = None
    job_id: str | None = None
    updated_at: str | None = None

    @property
    def next_step(self) -> int:
        """The first step the next job will process."""
        return 0 if self.last_step is None else self.last_step + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_step": self.last_step,
            "next_step": self.next_step,
            "job_id": self.job_id,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Bookmark:
        try:
            last = data.get("last_step")
            return cls(
                last_step=None if last is None else int(last),
                job_id=data.get("job_id"),
                updated_at=data.get("updated_at"),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise StorageError(
                f"{source} is not a valid bookmark ({exc}); delete it to start over"
            ) from None


def _read_bookmark_hint(output: str) -> Bookmark:
    uri = layout.bookmark_uri(output)
    try:
        return Bookmark.from_dict(store.read_json(uri), source=uri)
    except DataNotFoundError:
        return Bookmark()


def read_bookmark(output: str) -> Bookmark:
    """The committed position of the monitoring under ``output``: ``bookmark.json``,
    followed forward along committed claims (so a bookmark write lost to a crash or a
    race does not matter)."""
    hint = _read_bookmark_hint(output)
    node, last_claim, _ = _walk(output, hint.next_step)
    if last_claim is None or node == hint.next_step:
        return hint
    return Bookmark(last_step=node - 1, job_id=last_claim.job_id, updated_at=last_claim.claimed_at)


def write_bookmark(output: str, bookmark: Bookmark) -> bool:
    """Store ``bookmark`` unless the stored one is already at or past it (the bookmark
    never moves back). Returns whether it was written."""
    current = _read_bookmark_hint(output)
    if bookmark.last_step is None or (
        current.last_step is not None and current.last_step >= bookmark.last_step
    ):
        return False
    store.write_json(layout.bookmark_uri(output), bookmark.to_dict())
    return True


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class _Claim:
    """A job's claim on the inference steps ``node..last_step`` (attempt ``attempt``)."""

    node: int
    attempt: int
    job_id: str
    token: str
    last_step: int
    host: str
    pid: int
    claimed_at: str
    expires_at: str


def _claims_prefix(output: str, node: int) -> str:
    return layout.join(output, STATE_DIR, "claims", f"{node:0{_NODE_WIDTH}d}")


def _claim_uri(output: str, node: int, attempt: int) -> str:
    return layout.join(_claims_prefix(output, node), f"{attempt:04d}.json")


def _release_uri(output: str, node: int, attempt: int) -> str:
    return layout.join(_claims_prefix(output, node), f"{attempt:04d}.released.json")


def _attempts(output: str, node: int) -> dict[int, bool]:
    """{attempt: released} of the claims on ``node``."""
    found: dict[int, bool] = {}
    for info in store.iter_objects(_claims_prefix(output, node)):
        name = info.uri.rsplit("/", 1)[-1]
        stem, _, rest = name.partition(".")
        if not stem.isdigit():
            continue
        attempt = int(stem)
        released = rest == "released.json"
        found[attempt] = found.get(attempt, False) or released
    return found


def _read_claim(output: str, node: int, attempt: int) -> _Claim:
    uri = _claim_uri(output, node, attempt)
    data = store.read_json(uri)
    try:
        return _Claim(**{k: data[k] for k in _Claim.__dataclass_fields__})
    except (KeyError, TypeError) as exc:
        raise StorageError(
            f"{uri} is not a valid claim ({exc}); delete it to unblock monitoring"
        ) from None


def _claim_state(output: str, claim: _Claim, released: bool) -> str:
    """``committed``, ``released``, ``stale`` (lease over or its process dead) or ``active``."""
    if released:
        return "released"
    uri = layout.results_uri(output, claim.job_id)
    try:
        result = JobResult.from_dict(store.read_json(uri), source=uri)
    except DataNotFoundError:
        result = None
    if result is not None:
        ok = result.status == STATUS_OK and result.last_step == claim.last_step
        return "committed" if ok else "released"
    if _now() >= datetime.fromisoformat(claim.expires_at):
        return "stale"
    if claim.host == socket.gethostname() and not _pid_alive(claim.pid):
        return "stale"
    return "active"


def _walk(output: str, node: int) -> tuple[int, _Claim | None, tuple[str, int, _Claim | None]]:
    """Follow committed claims from ``node``. Returns the first open node, the last
    committed claim passed (or ``None``) and that node's (state, latest attempt, claim);
    state ``free`` means no claim at all."""
    last_committed: _Claim | None = None
    while True:
        attempts = _attempts(output, node)
        if not attempts:
            return node, last_committed, ("free", -1, None)
        latest = max(attempts)
        claim = _read_claim(output, node, latest)
        state = _claim_state(output, claim, attempts[latest])
        if state != "committed":
            return node, last_committed, (state, latest, claim)
        last_committed = claim
        node = claim.last_step + 1


def _try_claim(
    output: str, node: int, attempt: int, *, job_id: str, last_step: int, lease_s: float
) -> _Claim | None:
    """Create claim ``attempt`` on ``node``; ``None`` when another job created it first."""
    now = _now()
    claim = _Claim(
        node=node,
        attempt=attempt,
        job_id=job_id,
        token=uuid.uuid4().hex,
        last_step=int(last_step),
        host=socket.gethostname(),
        pid=os.getpid(),
        claimed_at=_iso(now),
        expires_at=_iso(now + timedelta(seconds=lease_s)),
    )
    uri = _claim_uri(output, node, attempt)
    if not store.write_json(uri, claim.__dict__, if_absent=True):
        return None
    # a store that ignored If-None-Match would let the last writer win: read back
    if store.read_json(uri).get("token") != claim.token:
        return None
    return claim


def _release(output: str, claim: _Claim, reason: str) -> None:
    """Give the claim's steps back (best effort: an expired lease does the same)."""
    try:
        store.write_json(
            _release_uri(output, claim.node, claim.attempt),
            {
                "job_id": claim.job_id,
                "token": claim.token,
                "released_at": _iso(_now()),
                "reason": reason,
            },
            if_absent=True,
        )
    except LadisError as exc:
        log.warning(
            "could not release the claim of job %s on step %d: %s", claim.job_id, claim.node, exc
        )


def _still_owner(output: str, claim: _Claim) -> bool:
    """False when a later attempt took the node over (our lease ran out meanwhile)."""
    return max(_attempts(output, claim.node), default=claim.attempt) == claim.attempt


# --------------------------------------------------------------------------- endpoint names


def derive_endpoint(output: str, inference: str) -> str:
    """The endpoint name implied by the URIs of a world layout
    (``…/monitoring/<endpoint>`` or ``…/trials/<endpoint>/inference``), else the last
    path component of ``output``."""
    out_parts = [p for p in output.rstrip("/").split("/") if p]
    if len(out_parts) >= 2 and out_parts[-2] == "monitoring":
        return out_parts[-1]
    inf_parts = [p for p in inference.rstrip("/").split("/") if p]
    if len(inf_parts) >= 3 and inf_parts[-3] == "trials":
        return inf_parts[-2]
    return out_parts[-1] if out_parts and not out_parts[-1].endswith(":") else "endpoint"


# --------------------------------------------------------------------------- the analysis


def resolve_layers(reference: str, inference: str, layers: Sequence[str] | None) -> list[str]:
    """Tensor names for ``layers`` present in both trials (default: the penultimate
    layer); an unknown name raises :class:`InputError` listing the layers that are there."""
    from ladis_core import trials

    ref_names = trials.list_layers(reference, mode="EVAL")
    inf_names = trials.list_layers(inference, mode="PREDICT")
    return _resolve_layers(
        list(layers) if layers else [trials.penultimate_layer(inf_names)],
        ((inference, "PREDICT", inf_names), (reference, "EVAL", ref_names)),
    )


def _resolve_layers(
    requested: Sequence[str], trials_: Sequence[tuple[str, str, list[str]]]
) -> list[str]:
    """Tensor names for ``requested`` (tensor names like ``avgpool_output_0`` or module
    names like ``layer4.1``), each checked to be present in every trial."""
    names: list[str] = []
    for layer in requested:
        layer = layer.strip()
        check(bool(layer), "an empty layer name was given; separate layer names with commas")
        resolved = None
        for uri, mode, available in trials_:
            if layer in available:
                candidate = layer
            elif f"{layer}_output_0" in available:
                candidate = f"{layer}_output_0"
            else:
                raise InputError(
                    f"layer {layer!r} is not in the {mode} trial {uri}; available layers: "
                    f"{', '.join(available) or 'none'}"
                )
            check(
                resolved in (None, candidate),
                f"layer {layer!r} names different tensors in the two trials",
            )
            resolved = candidate
        assert resolved is not None
        check(resolved not in names, f"layer {layer!r} is given twice")
        names.append(resolved)
    return names


@dataclass(frozen=True)
class Window:
    """The inference rows a job tests: ``steps`` int64 (n,), ``layers`` {name: float32
    (n, d)}, ``classes`` int64 (n,) (predicted classes)."""

    steps: np.ndarray
    layers: dict[str, np.ndarray]
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.shape[0])


def validate_settings(settings: JobSettings) -> None:
    """:class:`~ladis_core.errors.InputError` naming the first bad setting, if any."""
    check(
        isinstance(settings.n_samples, int) and settings.n_samples >= 2,
        f"n_samples={settings.n_samples!r} must be an integer ≥ 2",
    )
    check(
        isinstance(settings.n_repeats, int) and settings.n_repeats >= 1,
        f"n_repeats={settings.n_repeats!r} must be an integer ≥ 1",
    )
    check(
        isinstance(settings.n_permutations, int) and settings.n_permutations >= 1,
        f"n_permutations={settings.n_permutations!r} must be an integer ≥ 1",
    )
    check(
        isinstance(settings.alpha, float | int) and 0 < settings.alpha < 1,
        f"alpha={settings.alpha!r} must be between 0 and 1 (exclusive)",
    )


def _baseline_key(
    reference: str, ref_steps: np.ndarray, layers: Sequence[str], settings: JobSettings
) -> str:
    payload = json.dumps(
        {
            "reference": reference,
            "rows": int(ref_steps.shape[0]),
            "steps": [int(ref_steps.min()), int(ref_steps.max())] if ref_steps.size else [],
            "layers": list(layers),
            "settings": {k: v for k, v in settings.__dict__.items() if k != "layers"},
            "version": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _stats_options(settings: JobSettings, device: str | None) -> dict[str, Any]:
    return {
        "device": device,
        "n_samples": settings.n_samples,
        "n_repeats": settings.n_repeats,
        "alpha": float(settings.alpha),
        "n_permutations": settings.n_permutations,
        "seed": settings.seed,
        "standardize": bool(settings.standardize),
    }


def _rates(outcome: Any, names: Sequence[str]) -> tuple[float, dict[str, float]]:
    """(combined rate, {layer: rate}) of a MultiLayerResult. With one layer the combined
    rate is that layer's (the max-statistic over one layer is the same test)."""
    per_layer = {n: float(outcome.layers[n].rate) for n in names}
    combined = per_layer[names[0]] if len(names) == 1 else float(outcome.combined.rate)
    return combined, per_layer


def _baseline(
    output: str,
    reference_uri: str,
    ref: Any,
    names: Sequence[str],
    settings: JobSettings,
    *,
    use_cache: bool,
    device: str | None,
) -> tuple[float, dict[str, float]]:
    """Baseline detection rates (combined, per layer): the reference split in halves.

    The reference does not change between jobs, so the rates are cached under
    ``<output>/_state/baseline/`` keyed by the reference (URI, rows, steps), the layers
    and every setting; a re-captured reference or other settings get a new key.
    """
    from ladis_core import stats

    key = _baseline_key(reference_uri, ref.steps, names, settings)
    cache_uri = layout.join(output, STATE_DIR, "baseline", f"{key}.json")
    if use_cache:
        try:
            cached = store.read_json(cache_uri)
            return float(cached["combined"]), {n: float(cached["layers"][n]) for n in names}
        except (DataNotFoundError, StorageError, KeyError, TypeError, ValueError):
            pass
    outcome = stats.multi_layer_detection_rate(
        {n: ref.layers[n] for n in names},
        None,
        baseline=True,
        reference_classes=ref.predicted_class if settings.class_matched else None,
        **_stats_options(settings, device),
    )
    combined, per_layer = _rates(outcome, names)
    if use_cache:
        try:
            store.write_json(
                cache_uri,
                {
                    "combined": combined,
                    "layers": per_layer,
                    "reference": reference_uri,
                    "rows": len(ref),
                },
                if_absent=True,
            )
        except LadisError as exc:  # only an optimisation: a read-only store must not stop a job
            log.warning("could not cache the baseline rates at %s: %s", cache_uri, exc)
    return combined, per_layer


# --------------------------------------------------------------------------- the job


def run_job(
    *,
    reference: str,
    inference: str,
    output: str,
    at: datetime | str | None = None,
    layers: Sequence[str] | None = None,
    all_steps: bool = False,
    settings: JobSettings | None = None,
    rule: IncidentRule | None = None,
    endpoint: str | None = None,
    cloudwatch: bool = False,
    namespace: str | None = None,
    progress: ProgressCallback | None = None,
    cache_dir: str | None = None,
    baseline_cache: bool = True,
    lease_s: float = DEFAULT_LEASE_S,
    wait_s: float | None = None,
    device: str | None = None,
) -> JobResult:
    """Run one monitoring job and return its result (also written to
    ``<output>/<job-id>/results.json``).

    ``reference``: the EVAL trial (natural validation data); ``inference``: the PREDICT
    trial (one step per request); ``output``: the monitoring prefix of the endpoint.
    ``at``: the scheduled time, which names the job (default now). ``layers``: layer
    names (default: the penultimate layer). ``all_steps``: test every inference step,
    not only those after the bookmark (the bookmark still advances to the last one).
    ``settings``: n, R, α, B, seed, class matching (``settings.layers`` is ignored).
    ``lease_s``: how long a claim protects the steps of a job that may have crashed;
    ``wait_s``: how long to wait for another job holding the next steps (default
    ``lease_s``). ``cache_dir``: root of the local caches of ``s3://`` trials (default
    ``$LADIS_CACHE_DIR`` or ``.cache``). ``device``: where the statistics run
    (``"cuda"`` on a GPU machine; default CPU).

    Raises :class:`JobExistsError` if the job id already has a result,
    :class:`~ladis_core.errors.InputError` / :class:`~ladis_core.errors.DataNotFoundError`
    / :class:`~ladis_core.errors.StorageError` for bad input, before anything is written.
    """
    settings = settings or JobSettings()
    rule = rule or IncidentRule()
    validate_settings(settings)
    check(lease_s > 0, f"lease_s={lease_s!r} must be positive")
    wait_s = lease_s if wait_s is None else wait_s
    output = output.rstrip("/")
    started = _now()
    scheduled = parse_time(at) if at is not None else started.replace(microsecond=0)
    job_id = layout.job_id_for(scheduled)
    endpoint = endpoint or derive_endpoint(output, inference)
    result_uri = layout.results_uri(output, job_id)
    if store.is_s3(output):
        store.check_bucket(output)  # a missing bucket or bad credentials, said up front
    if store.exists(result_uri):
        raise JobExistsError(job_id, result_uri)

    # ---- validate everything that the user chose before anything is written
    from ladis_core import trials

    report(progress, "reference", 0, 1, reference)
    names = resolve_layers(reference, inference, layers)
    ref = trials.load_trial(
        reference, mode="EVAL", layers=names, cache_dir=_trial_cache(trials, reference, cache_dir)
    )
    need = 2 * settings.n_samples
    check(
        len(ref) >= need,
        f"the reference trial {reference} has {len(ref)} rows; n_samples={settings.n_samples} needs "
        f"at least {need} (two halves for the baseline): capture more validation data or lower n",
    )
    report(progress, "reference", 1, 1, f"{len(ref)} rows")
    settings = replace(settings, layers=list(names))

    # ---- find the steps to process and claim them
    deadline = time.monotonic() + wait_s
    claim: _Claim | None = None
    while True:
        hint = _read_bookmark_hint(output)
        node, _, (state, latest, holder) = _walk(output, hint.next_step)
        if state == "active":
            assert holder is not None
            if time.monotonic() >= deadline:
                raise ClaimTimeoutError(
                    f"job {holder.job_id} (host {holder.host}, pid {holder.pid}, since {holder.claimed_at}) "
                    f"is still processing the inference steps from {node} of {output}; waited "
                    f"{wait_s:.0f} s. Run this job again later (its claim expires at {holder.expires_at})"
                )
            log.info(
                "job %s waits for job %s, which holds the steps from %d",
                job_id,
                holder.job_id,
                node,
            )
            time.sleep(_POLL_S)
            continue
        if store.exists(result_uri):
            # the same job id was run meanwhile by another process (we waited for it)
            raise JobExistsError(job_id, result_uri, detail=" (written by a concurrent run)")
        first = 0 if all_steps else node
        window = _load_window(trials, inference, first, names, ref, cache_dir, progress)
        tested = len(window) >= settings.n_samples
        advances = tested and len(window) > 0 and int(window.steps.max()) >= node
        if not advances:
            break
        last = int(window.steps.max())
        claim = _try_claim(output, node, latest + 1, job_id=job_id, last_step=last, lease_s=lease_s)
        if claim is not None:
            break
        log.info("job %s lost the claim on step %d to another job; looking again", job_id, node)

    try:
        result, scores = analyse_window(
            job_id=job_id,
            endpoint=endpoint,
            scheduled=scheduled,
            started=started,
            reference=reference,
            inference=inference,
            output=output,
            ref=ref,
            window=window,
            names=names,
            settings=settings,
            rule=rule,
            first_step=first,
            node=node,
            tested=tested,
            baseline_cache=baseline_cache,
            progress=progress,
            device=device,
        )
        report(progress, "write", 0, 1, result_uri)
        if claim is not None and not _still_owner(output, claim):
            raise ClaimTimeoutError(
                f"job {job_id} ran longer than its lease ({lease_s:.0f} s) and another job took over "
                f"the inference steps from {node}; its result was not written"
            )
        if scores is not None:
            # before results.json, so a committed job always has its scores
            store.write_json(layout.join(output, job_id, SCORES_NAME), scores)
        if not store.write_json(result_uri, result.to_dict(), if_absent=True):
            raise JobExistsError(job_id, result_uri, detail=" (written by a concurrent run)")
    except BaseException as exc:
        if claim is not None:
            _release(output, claim, f"{type(exc).__name__}: {exc}")
        raise
    if claim is not None:
        written = write_bookmark(
            output, Bookmark(last_step=claim.last_step, job_id=job_id, updated_at=_iso(_now()))
        )
        log.info(
            "bookmark of %s %s at step %d",
            output,
            "advanced" if written else "already",
            claim.last_step,
        )
    report(progress, "write", 1, 1, result_uri)
    if cloudwatch:
        from ladis_core import metrics

        try:
            metrics.publish_job_metrics(
                result, enabled=True, namespace=namespace or metrics.DEFAULT_NAMESPACE
            )
        except LadisError as exc:
            # the result is written and the bookmark moved: report, do not undo
            log.error("job %s: %s", job_id, exc)
    return result


def _shape_text(shape: tuple[int, ...]) -> str:
    size = int(np.prod(shape)) if len(shape) else 1
    return f"{size} values" if len(shape) <= 1 else f"shape {tuple(shape)} ({size} values)"


def _trial_cache(trials: Any, uri: str, cache_root: str | None) -> Path | None:
    """The cache folder of one trial under ``cache_root`` (``None``: the trials default,
    ``$LADIS_CACHE_DIR`` or ``.cache``)."""
    if cache_root is None:
        return None
    return Path(cache_root) / "trials" / trials.default_cache_dir(uri).name


def _load_window(
    trials: Any,
    inference: str,
    first: int,
    names: Sequence[str],
    ref: Any,
    cache_dir: str | None,
    progress: ProgressCallback | None,
) -> Window:
    """The inference rows with step ≥ ``first``; checks the layer shapes match the
    reference (on the newest step when the window is empty)."""
    report(progress, "inference", 0, 1, inference)
    cache = _trial_cache(trials, inference, cache_dir)
    data = trials.load_trial(
        inference,
        mode="PREDICT",
        layers=list(names),
        after_step=None if first <= 0 else first - 1,
        cache_dir=cache,
    )
    window = Window(
        steps=np.asarray(data.steps, dtype=np.int64),
        layers={n: np.asarray(data.layers[n]) for n in names},
        classes=np.asarray(data.predicted_class, dtype=np.int64),
    )
    probe = data
    if not len(window):
        last = trials.last_step(inference, mode="PREDICT")
        if last is not None:
            probe = trials.load_trial(
                inference,
                mode="PREDICT",
                layers=list(names),
                after_step=last - 1,
                until_step=last,
                cache_dir=cache,
            )
    for name in names:
        ref_shape, inf_shape = ref.layers[name].shape[1:], probe.layers[name].shape[1:]
        if len(probe) and ref_shape != inf_shape:
            raise InputError(
                f"layer {name!r} has {_shape_text(ref_shape)} per input in the reference trial but "
                f"{_shape_text(inf_shape)} in the inference trial {inference}; both trials must come from "
                "the same model and input size"
            )
    report(progress, "inference", 1, 1, f"{len(window)} requests")
    return window


def analyse_window(
    *,
    job_id: str,
    endpoint: str,
    scheduled: datetime,
    started: datetime,
    reference: str,
    inference: str,
    output: str,
    ref: Any,
    window: Window,
    names: Sequence[str],
    settings: JobSettings,
    rule: IncidentRule,
    first_step: int,
    node: int,
    tested: bool,
    baseline_cache: bool,
    progress: ProgressCallback | None,
    device: str | None = None,
) -> tuple[JobResult, dict[str, Any] | None]:
    """The JobResult of ``window`` and, when it was tested, its per-row scores document
    (what ``scores.json`` holds). Writes nothing except the baseline cache under
    ``output`` when ``baseline_cache`` (the on-demand test reuses this).

    ``ref``: the reference :class:`~ladis_core.trials.TrialData`; ``names``: resolved
    tensor names; ``first_step``: the first step the window could hold; ``node``: the
    bookmark's next step (only used in the "too few requests" reason); ``tested``:
    whether the window has at least ``n_samples`` rows; ``device``: where the statistics
    run (``"cuda"``; default CPU).
    """
    rows = len(window)
    requests = int(np.unique(window.steps).size)
    dims = {n: int(ref.layers[n].shape[1]) for n in names}
    classes, counts = np.unique(window.classes, return_counts=True)
    common = {
        "job_id": job_id,
        "endpoint": endpoint,
        "scheduled_at": _iso(scheduled),
        "started_at": _iso(started),
        "reference": reference,
        "inference": inference,
        "first_step": int(window.steps.min()) if rows else None,
        "last_step": int(window.steps.max()) if rows else None,
        "requests": requests,
        "incident_rule": rule,
        "settings": settings,
        "class_counts": {str(int(c)): int(k) for c, k in zip(classes, counts, strict=True)},
        "class_names": class_names_for(reference),
        "ladis_version": __version__,
    }
    if not tested:
        if rows == 0:
            since = f"since step {first_step}" if first_step > 0 else "in the trial"
            reason = f"no new inference requests {since}"
        else:
            reason = (
                f"{rows} rows ({requests} requests, steps {common['first_step']}–{common['last_step']}) "
                f"are fewer than n_samples={settings.n_samples}; not tested, the bookmark stays at step "
                f"{node - 1 if node else 'start'} so these requests roll into the next window"
            )
        result = JobResult(
            **common,
            finished_at=_iso(_now()),
            detection_rate=None,
            baseline_detection_rate=None,
            layers={n: LayerResult(detection_rate=None, dimension=dims[n]) for n in names},
            incident=False,
            status=STATUS_INSUFFICIENT,
            reason=reason,
        )
        log.info("job %s: %s", job_id, reason)
        return result, None

    from ladis_core import stats

    report(progress, "baseline", 0, 1)
    baseline, layer_baselines = _baseline(
        output, reference, ref, names, settings, use_cache=baseline_cache, device=device
    )
    report(progress, "baseline", 1, 1)
    report(progress, "detection", 0, 1, f"{len(names)} layer(s), {rows} rows")
    outcome = stats.multi_layer_detection_rate(
        {n: ref.layers[n] for n in names},
        {n: window.layers[n] for n in names},
        reference_classes=ref.predicted_class if settings.class_matched else None,
        inference_classes=window.classes if settings.class_matched else None,
        **_stats_options(settings, device),
    )
    report(progress, "detection", 1, 1)
    combined, per_layer_rates = _rates(outcome, names)
    for warning in outcome.combined.warnings:
        log.warning("job %s: %s", job_id, warning)
    layer_results = {}
    for name in names:
        layer = outcome.layers[name]
        layer_results[name] = LayerResult(
            detection_rate=per_layer_rates[name],
            baseline_detection_rate=layer_baselines.get(name),
            median_p_value=float(layer.median_p_value),
            p_values=[float(p) for p in np.asarray(layer.p_values).ravel()],
            dimension=dims[name],
        )

    report(progress, "scores", 0, 1)
    scores, p_values, order, per_layer_scores = _sample_scores(ref, window, names, settings, device)
    report(progress, "scores", 1, 1)
    top = [
        TopSample(
            step=int(window.steps[i]),
            score=float(scores[i]),
            predicted_class=int(window.classes[i]),
            p_value=float(p_values[i]),
        )
        for i in order[:TOP_K]
    ]
    result = JobResult(
        **common,
        finished_at=_iso(_now()),
        detection_rate=combined,
        baseline_detection_rate=baseline,
        layers=layer_results,
        incident=rule.is_incident(combined, baseline),
        top_samples=top,
        combined_method=settings.combination if len(names) > 1 else "single-layer",
    )
    scores_doc = {
        "job_id": job_id,
        "score_method": result.score_method,
        "steps": [int(s) for s in window.steps],
        "predicted_class": [int(c) for c in window.classes],
        "score": [float(v) for v in scores],
        "p_value": [float(v) for v in p_values],
        "layers": {
            n: {"score": [float(v) for v in sc], "p_value": [float(v) for v in pv]}
            for n, (sc, pv) in per_layer_scores.items()
        },
    }
    return result, scores_doc


def _sample_scores(
    ref: Any, window: Window, names: Sequence[str], settings: JobSettings, device: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per-row score, calibrated p-value and ranking (most suspicious first), combined
    over layers, plus (score, p-value) per layer. All arrays have shape (rows,).

    One layer: the stats engine's witness p-value calibrated on held-out reference rows,
    score ``-log10(p)``. Several layers: Bonferroni, ``p = min(1, L × min_l p_l)``, a
    valid p-value for "unlike natural data in at least one layer", score ``-log10(p)``;
    ties (common: p-values are discrete) are broken by the sum of per-layer scores.
    """
    from ladis_core import stats

    per_layer: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    outcomes = {}
    for name in names:
        outcome = stats.sample_scores_with_pvalues(
            ref.layers[name],
            window.layers[name],
            seed=settings.seed,
            standardize=bool(settings.standardize),
            device=device,
        )
        outcomes[name] = outcome
        per_layer[name] = (
            np.asarray(outcome.scores, dtype=np.float64),
            np.asarray(outcome.p_values, dtype=np.float64),
        )
    if len(names) == 1:
        only = outcomes[names[0]]
        scores, p_values = per_layer[names[0]]
        return scores, p_values, np.asarray(only.ranking()), per_layer
    stacked_p = np.stack([p for _, p in per_layer.values()])
    p_values = np.minimum(1.0, stacked_p.min(axis=0) * len(names))
    scores = -np.log10(p_values)
    tie_break = np.stack([s for s, _ in per_layer.values()]).sum(axis=0)
    return scores, p_values, np.lexsort((-tie_break, p_values)), per_layer


# --------------------------------------------------------------------------- reading jobs


def load_job(output: str, job_id: str) -> JobResult:
    """The result of one job (:class:`DataNotFoundError` if it has none)."""
    uri = layout.results_uri(output, job_id)
    return JobResult.from_json(store.read_bytes(uri), source=uri)


def load_jobs(output: str) -> list[JobResult]:
    """Every job result under ``output``, sorted by scheduled time (then job id).

    Folders that are not job ids or hold no results.json (a job still running, or one
    that crashed) are skipped; a corrupt results.json is skipped with a warning.
    """
    output = output.rstrip("/")
    job_ids = []
    for name in store.list_children(output):
        try:
            layout.parse_job_id(name)
        except ValueError:
            continue
        job_ids.append(name)
    if not job_ids:
        return []

    def _one(job_id: str) -> JobResult | None:
        try:
            return load_job(output, job_id)
        except DataNotFoundError:
            return None
        except InputError as exc:
            log.warning("skipping %s: %s", layout.results_uri(output, job_id), exc)
            return None

    with ThreadPoolExecutor(max_workers=min(16, len(job_ids))) as pool:
        found = [r for r in pool.map(_one, job_ids) if r is not None]
    return sorted(found, key=lambda r: (parse_time(r.scheduled_at), r.job_id))


def load_scores(output: str, job_id: str) -> dict[str, Any]:
    """The per-row scores document of a tested job (``steps``, ``predicted_class``,
    ``score``, ``p_value``: lists of one entry per row of the window; ``layers``:
    the same per layer)."""
    return store.read_json(layout.join(output.rstrip("/"), job_id, SCORES_NAME))


# --------------------------------------------------------------------------- schedule


def parse_interval(text: str | float | timedelta) -> timedelta:
    """``1h``, ``30m``, ``90s``, ``1d``, ``1h30m``, ``0.5s`` or plain seconds → timedelta."""
    if isinstance(text, timedelta):
        value = text
    elif isinstance(text, int | float):
        value = timedelta(seconds=float(text))
    else:
        raw = str(text).strip().lower()
        units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
        total, number = 0.0, ""
        try:
            if raw and raw[-1].isdigit():
                total = float(raw)
            else:
                for char in raw:
                    if char.isdigit() or char == ".":
                        number += char
                    elif char in units and number:
                        total += float(number) * units[char]
                        number = ""
                    else:
                        raise ValueError(char)
                if number:
                    raise ValueError(number)
        except ValueError:
            raise InputError(
                f"interval {text!r} is not a duration; use e.g. 1h, 30m, 90s or 1h30m"
            ) from None
        value = timedelta(seconds=total)
    if not value.total_seconds() > 0 or not math.isfinite(value.total_seconds()):
        raise InputError(f"interval {text!r} must be a positive duration")
    return value


@dataclass(frozen=True)
class ScheduleSummary:
    """What a bounded :func:`run_every` did."""

    runs: int
    succeeded: int
    failed: int
    skipped_ticks: int


def _floor_tick(moment: datetime, interval: timedelta) -> datetime:
    step = interval.total_seconds()
    seconds = math.floor(moment.timestamp() / step) * step
    return datetime.fromtimestamp(seconds, UTC)


def run_every(
    job: Callable[[datetime], Any],
    *,
    interval: timedelta | str | float,
    max_runs: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = _now,
) -> ScheduleSummary:
    """Call ``job(scheduled_time)`` now and then at every multiple of ``interval`` (UTC,
    counted from the epoch: ``1h`` runs at the top of each hour), until ``max_runs`` runs
    (forever if ``None``).

    The first run is scheduled at the current tick (the last multiple of ``interval``), so
    restarting a schedule within the hour re-runs nothing (same job id). A tick missed
    because a run took longer is skipped, not made up. A failing run is logged and the
    next one still runs; ``KeyboardInterrupt`` stops the schedule.
    """
    interval = parse_interval(interval)
    check(max_runs is None or max_runs >= 1, f"max_runs={max_runs!r} must be at least 1")
    runs = succeeded = failed = skipped = 0
    tick = _floor_tick(clock(), interval)
    while True:
        runs += 1
        try:
            job(tick)
            succeeded += 1
        except JobExistsError as exc:
            log.info("%s", exc)
            succeeded += 1
        except LadisError as exc:
            failed += 1
            log.error("scheduled job at %s failed: %s", _iso(tick), exc)
        except Exception:  # noqa: BLE001 - a schedule must outlive one broken run
            failed += 1
            log.exception("scheduled job at %s failed with an unexpected error", _iso(tick))
        if max_runs is not None and runs >= max_runs:
            return ScheduleSummary(runs, succeeded, failed, skipped)
        following = tick + interval
        now = clock()
        if now >= following + interval:
            missed = int((now - following) / interval)
            skipped += missed
            log.warning("the last run overran %d tick(s); skipping to the next one", missed)
            following = following + missed * interval
        delay = (following - clock()).total_seconds()
        if delay > 0:
            log.info("next monitoring job at %s (in %.0f s)", _iso(following), delay)
            sleep(delay)
        tick = following
