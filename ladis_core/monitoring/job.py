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

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ladis_core import store
from ladis_core.errors import ClaimTimeoutError, JobExistsError, LadisError, check
from ladis_core.monitoring.analysis import analyse_window
from ladis_core.monitoring.assembly import (
    JobIdentity,
    class_names_for,
    tested_result,
    untested_reason,
    untested_result,
)
from ladis_core.monitoring.baseline import BaselineCache
from ladis_core.monitoring.bookmark import Bookmark, read_bookmark_hint, write_bookmark
from ladis_core.monitoring.claims import ACTIVE, Claim, Claims
from ladis_core.monitoring.clock import _iso, _now, parse_time
from ladis_core.monitoring.protocol import validate_settings
from ladis_core.monitoring.results import IncidentRule, JobResult, JobSettings
from ladis_core.monitoring.scores import WindowScores, write_scores
from ladis_core.monitoring.window import (
    MAX_WINDOW_STEPS,
    Window,
    load_reference,
    load_window,
    resolve_layers,
)
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout
from ladis_core.trials import TrialData

log = logging.getLogger("ladis.monitor")

DEFAULT_LEASE_S = 900.0
_POLL_S = 1.0

#: something told about every committed result (CloudWatch, Prometheus, alerts)
ResultPublisher = Callable[[JobResult], None]


@dataclass(frozen=True)
class ClaimPolicy:
    """How long a claim protects the steps of a job that may have crashed (``lease_s``)
    and how long a job waits for another one holding the next steps (``wait_s``,
    default ``lease_s``)."""

    lease_s: float = DEFAULT_LEASE_S
    wait_s: float | None = None

    @property
    def wait(self) -> float:
        return self.lease_s if self.wait_s is None else self.wait_s


@dataclass(frozen=True)
class _Picked:
    """The window a job will process: its rows, the claim on them (``None`` when it
    does not advance the chain), the first step it could hold and the chain's node."""

    window: Window
    claim: Claim | None
    first_step: int
    node: int


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
    publishers: Sequence[ResultPublisher] = (),
    claim_policy: ClaimPolicy | None = None,
    cache_dir: str | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    max_window_steps: int = MAX_WINDOW_STEPS,
) -> JobResult:
    """Run one monitoring job and return its result (also written to
    ``<output>/<job-id>/results.json``).

    ``reference``: the EVAL trial (natural validation data); ``inference``: the PREDICT
    trial (one step per request); ``output``: the monitoring prefix of the endpoint.
    ``at``: the scheduled time, which names the job (default now). ``layers``: layer
    names (default: the penultimate layer). ``all_steps``: test every inference step,
    not only those after the bookmark (the bookmark still advances to the last one).
    ``settings``: n, R, α, B, seed, kernel, class matching (``settings.layers`` is
    ignored). ``publishers``: told about the result once it is committed (a failing one
    is logged; the result stays). ``claim_policy``: lease and wait of the claims.
    ``cache_dir``: root of the local caches of ``s3://`` trials (default
    ``$LADIS_CACHE_DIR`` or ``.cache``). ``device``: where the statistics run (``"cuda"``
    on a GPU machine; default CPU). ``max_window_steps``: the most steps one job tests
    (:data:`~ladis_core.monitoring.window.MAX_WINDOW_STEPS`); a larger backlog is tested
    by the next jobs, oldest first.

    Raises :class:`JobExistsError` if the job id already has a result,
    :class:`~ladis_core.errors.InputError` / :class:`~ladis_core.errors.DataNotFoundError`
    / :class:`~ladis_core.errors.StorageError` for bad input, before anything is written.
    """
    settings = settings or JobSettings()
    policy = claim_policy or ClaimPolicy()
    validate_settings(settings)
    check(policy.lease_s > 0, f"lease_s={policy.lease_s!r} must be positive")
    output = output.rstrip("/")
    started = _now()
    scheduled = parse_time(at) if at is not None else started.replace(microsecond=0)
    job_id = layout.job_id_for(scheduled)
    result_uri = layout.results_uri(output, job_id)
    if store.is_s3(output):
        store.check_bucket(output)  # a missing bucket or bad credentials, said up front
    if store.exists(result_uri):
        raise JobExistsError(job_id, result_uri)

    # everything the user chose is validated before anything is written
    report(progress, "reference", 0, 1, reference)
    names = resolve_layers(reference, inference, layers)
    ref = load_reference(reference, names, settings=settings, cache_dir=cache_dir)
    report(progress, "reference", 1, 1, f"{len(ref)} rows")
    identity = JobIdentity(
        job_id=job_id,
        endpoint=endpoint or derive_endpoint(output, inference),
        scheduled=scheduled,
        started=started,
        reference=reference,
        inference=inference,
        rule=rule or IncidentRule(),
        settings=replace(settings, layers=list(names)),
        class_names=class_names_for(reference),
    )
    claims = Claims(output)
    picked = _pick_window(
        claims,
        identity,
        ref,
        names,
        all_steps=all_steps,
        policy=policy,
        output=output,
        cache_dir=cache_dir,
        progress=progress,
        max_steps=max_window_steps,
    )
    try:
        result, scores = _analyse(
            identity, ref, picked, names, output=output, device=device, progress=progress
        )
        _commit(claims, result, scores, picked, output=output, policy=policy, progress=progress)
    except BaseException as exc:
        if picked.claim is not None:
            claims.release(picked.claim, f"{type(exc).__name__}: {exc}")
        raise
    if picked.claim is not None:
        last = picked.claim.last_step
        written = write_bookmark(
            output, Bookmark(last_step=last, job_id=job_id, updated_at=_iso(_now()))
        )
        log.info("bookmark of %s %s at step %d", output, "advanced" if written else "already", last)
    report(progress, "write", 1, 1, result_uri)
    for publish in publishers:
        try:
            publish(result)
        except LadisError as exc:
            # the result is written and the bookmark moved: report, do not undo
            log.error("job %s: %s", job_id, exc)
    return result


def _pick_window(
    claims: Claims,
    identity: JobIdentity,
    ref: TrialData,
    names: Sequence[str],
    *,
    all_steps: bool,
    policy: ClaimPolicy,
    output: str,
    cache_dir: str | None,
    progress: ProgressCallback | None,
    max_steps: int,
) -> _Picked:
    """Find the steps after the committed chain and claim them, waiting for a job that
    holds them (up to ``policy.wait``). A window too small to test is not claimed."""
    result_uri = layout.results_uri(output, identity.job_id)
    deadline = time.monotonic() + policy.wait
    while True:
        end = claims.walk(read_bookmark_hint(output).next_step)
        if end.state == ACTIVE:
            holder = end.holder
            assert holder is not None
            if time.monotonic() >= deadline:
                raise ClaimTimeoutError(
                    f"job {holder.job_id} (host {holder.host}, pid {holder.pid}, since "
                    f"{holder.claimed_at}) is still processing the inference steps from "
                    f"{end.node} of {output}; waited {policy.wait:.0f} s. Run this job again "
                    f"later (its claim expires at {holder.expires_at})"
                )
            log.info(
                "job %s waits for job %s, which holds the steps from %d",
                identity.job_id,
                holder.job_id,
                end.node,
            )
            time.sleep(_POLL_S)
            continue
        if store.exists(result_uri):
            # the same job id was run meanwhile by another process (we waited for it)
            raise JobExistsError(
                identity.job_id, result_uri, detail=" (written by a concurrent run)"
            )
        first = 0 if all_steps else end.node
        window = load_window(
            identity.inference,
            first,
            names,
            ref,
            cache_dir=cache_dir,
            progress=progress,
            max_steps=max_steps,
        )
        tested = len(window) >= identity.settings.n_samples
        if not (tested and int(window.steps.max()) >= end.node):
            return _Picked(window, None, first, end.node)
        claim = claims.try_claim(
            end.node,
            end.next_attempt,
            job_id=identity.job_id,
            last_step=int(window.steps.max()),
            lease_s=policy.lease_s,
        )
        if claim is not None:
            return _Picked(window, claim, first, end.node)
        log.info(
            "job %s lost the claim on step %d to another job; looking again",
            identity.job_id,
            end.node,
        )


def _analyse(
    identity: JobIdentity,
    ref: TrialData,
    picked: _Picked,
    names: Sequence[str],
    *,
    output: str,
    device: str | None,
    progress: ProgressCallback | None,
) -> tuple[JobResult, WindowScores | None]:
    """The job's result and, when the window was tested, every row's scores."""
    window, settings = picked.window, identity.settings
    if len(window) < settings.n_samples:
        reason = untested_reason(
            window, n_samples=settings.n_samples, first_step=picked.first_step, node=picked.node
        )
        log.info("job %s: %s", identity.job_id, reason)
        dims = {n: int(ref.layers[n].shape[1]) for n in names}
        return untested_result(identity, window, reason=reason, dimensions=dims), None
    analysis = analyse_window(
        ref,
        window,
        layers=names,
        settings=settings,
        baseline_cache=BaselineCache(output),
        device=device,
        progress=progress,
    )
    for warning in analysis.warnings:
        log.warning("job %s: %s", identity.job_id, warning)
    scores = replace(analysis.scores, job_id=identity.job_id)
    return tested_result(identity, window, analysis), scores


def _commit(
    claims: Claims,
    result: JobResult,
    scores: WindowScores | None,
    picked: _Picked,
    *,
    output: str,
    policy: ClaimPolicy,
    progress: ProgressCallback | None,
) -> None:
    """Write the scores, then results.json once; a job whose lease was taken over writes
    nothing."""
    result_uri = layout.results_uri(output, result.job_id)
    report(progress, "write", 0, 1, result_uri)
    if picked.claim is not None and not claims.still_owner(picked.claim):
        raise ClaimTimeoutError(
            f"job {result.job_id} ran longer than its lease ({policy.lease_s:.0f} s) and another "
            f"job took over the inference steps from {picked.node}; its result was not written"
        )
    if scores is not None:
        write_scores(output, scores)  # before results.json: a committed job has its scores
    if not store.write_json(result_uri, result.to_dict(), if_absent=True):
        raise JobExistsError(result.job_id, result_uri, detail=" (written by a concurrent run)")
