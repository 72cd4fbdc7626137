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
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ladis_core import store
from ladis_core.errors import ClaimTimeoutError, JobExistsError, LadisError, check
from ladis_core.monitoring.analysis import analyse_window
from ladis_core.monitoring.bookmark import Bookmark, _read_bookmark_hint, write_bookmark
from ladis_core.monitoring.claims import _Claim, _release, _still_owner, _try_claim, _walk
from ladis_core.monitoring.clock import _iso, _now, parse_time
from ladis_core.monitoring.jobs import SCORES_NAME
from ladis_core.monitoring.protocol import validate_settings
from ladis_core.monitoring.results import (
    IncidentRule,
    JobResult,
    JobSettings,
)
from ladis_core.monitoring.window import _load_window, _trial_cache, resolve_layers
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")


DEFAULT_LEASE_S = 900.0


_POLL_S = 1.0


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
        from ladis_core.monitoring import metrics

        try:
            metrics.publish_job_metrics(
                result, enabled=True, namespace=namespace or metrics.DEFAULT_NAMESPACE
            )
        except LadisError as exc:
            # the result is written and the bookmark moved: report, do not undo
            log.error("job %s: %s", job_id, exc)
    return result
