"""On-demand tests: the monitoring job's analysis on a window the analyst chooses.

:func:`run_test` tests any step window of any inference trial against any reference
trial, with any settings, and returns a :class:`~ladis_core.monitoring.results.JobResult` built by
the monitoring job's own analysis (:mod:`ladis_core.monitoring`), so the numbers and the
format are exactly those of a scheduled job. Nothing is written (no bookmark, no claim);
:func:`save_job` writes the result next to the scheduled jobs when the analyst wants it
kept (``source = "on-demand"``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ladis_core import store
from ladis_core.errors import LadisError, StorageError, check
from ladis_core.monitoring.results import IncidentRule, JobResult, JobSettings
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

if TYPE_CHECKING:
    from ladis_core.access.sources import SourcePolicy
    from ladis_core.monitoring.limits import CostCaps

SOURCE = "on-demand"


def on_demand_job_id(moment: datetime | None = None) -> str:
    """A job id for an on-demand test run at ``moment`` (default now), in the scheduled
    jobs' format so every reader lists it. Scheduled jobs run on round hours; an
    on-demand test that falls on one exactly is moved one second on so it cannot take a
    scheduled job's id."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    if moment.minute == 0 and moment.second == 0:
        moment += timedelta(seconds=1)
    return layout.job_id_for(moment)


def run_test(
    *,
    reference: str,
    inference: str,
    layers: list[str] | tuple[str, ...] | None = None,
    after_step: int | None = None,
    until_step: int | None = None,
    settings: JobSettings | None = None,
    rule: IncidentRule | None = None,
    endpoint: str | None = None,
    monitoring: str | None = None,
    reference_data: Any | None = None,
    at: datetime | None = None,
    sources: SourcePolicy | None = None,
    caps: CostCaps | None = None,
    progress: ProgressCallback | None = None,
) -> JobResult:
    """Test the inference steps ``after_step < step ≤ until_step`` against the reference.

    ``reference`` / ``inference``: trial URIs (EVAL / PREDICT). ``layers``: tensor or
    module names (default: the penultimate layer). ``settings``: n, R, α, B, seed, class
    matching (``settings.layers`` is ignored). ``monitoring``: the endpoint's monitoring
    prefix; when given, the baseline rate cached there by the scheduled jobs (same
    reference and settings) is reused, which makes a default test fast.
    ``reference_data``: an already loaded reference :class:`~ladis_core.trials.TrialData`
    holding the layers (skips reading it again). ``sources``: when given, both trials
    must lie inside the allowed sources (checked before anything is read); ``caps``: when
    given, n, R, B, the layers and the window's steps must stay within them.

    Raises :class:`~ladis_core.errors.InputError` when the window has fewer rows than
    ``settings.n_samples`` (nothing to test), or for an unknown layer;
    :class:`~ladis_core.errors.DataNotFoundError` when a trial is missing;
    :class:`~ladis_core.errors.SourceNotAllowedError` and
    :class:`~ladis_core.errors.CostLimitError` for a trial or a cost outside the limits.
    """
    from ladis_core import trials
    from ladis_core.monitoring.analysis import analyse_window
    from ladis_core.monitoring.assembly import JobIdentity, class_names_for, tested_result
    from ladis_core.monitoring.baseline import BaselineCache
    from ladis_core.monitoring.job import derive_endpoint
    from ladis_core.monitoring.protocol import validate_settings
    from ladis_core.monitoring.window import Window, check_shapes

    settings = settings or JobSettings()
    validate_settings(settings)
    if sources is not None:
        sources.check(reference, what="the reference trial")
        sources.check(inference, what="the inference trial")
    if caps is not None:
        caps.check(settings, after_step=after_step, until_step=until_step, layers=len(layers or ()))
    if after_step is not None and until_step is not None:
        check(
            until_step > after_step,
            f"the window is empty: last step {until_step} is not after {after_step}",
        )
    started = datetime.now(UTC)
    scheduled = at or started

    report(progress, "layers", 0, 1)
    names = resolve_layers(reference, inference, layers)
    if caps is not None:
        caps.check(settings, after_step=after_step, until_step=until_step, layers=len(names))
    report(progress, "layers", 1, 1, ", ".join(names))

    report(progress, "reference", 0, 1, reference)
    ref = reference_data
    if ref is None or any(n not in ref.layers for n in names):
        ref = trials.load_trial(reference, mode="EVAL", layers=names)
    need = 2 * settings.n_samples
    check(
        len(ref) >= need,
        f"the reference trial {reference} has {len(ref)} rows; n={settings.n_samples} "
        f"needs at least {need} (two halves for the baseline): lower n",
    )
    report(progress, "reference", 1, 1, f"{len(ref)} rows")

    report(progress, "inference", 0, 1, inference)
    data = trials.load_trial(
        inference, mode="PREDICT", layers=names, after_step=after_step, until_step=until_step
    )
    window = Window.from_trial(data, names)
    span = _describe_window(after_step, until_step)
    check(
        len(window) >= settings.n_samples,
        f"the window {span} of {inference} has {len(window)} rows; n={settings.n_samples} needs "
        "at least that many: widen the window or lower n",
    )
    check_shapes(ref, data, names)
    report(progress, "inference", 1, 1, f"{len(window)} rows")

    identity = JobIdentity(
        job_id=on_demand_job_id(scheduled),
        endpoint=endpoint or derive_endpoint(monitoring or "", inference),
        scheduled=scheduled,
        started=started,
        reference=reference,
        inference=inference,
        rule=rule or IncidentRule(),
        settings=replace(settings, layers=list(names)),
        class_names=class_names_for(reference),
        source=SOURCE,
    )
    options = dict(layers=names, settings=identity.settings, progress=progress)
    try:
        cache = BaselineCache(monitoring) if monitoring else None
        analysis = analyse_window(ref, window, baseline_cache=cache, **options)
    except StorageError:
        if not monitoring:
            raise
        # the baseline cache is only an optimisation: a read-only store must not stop a test
        analysis = analyse_window(ref, window, baseline_cache=None, **options)
    return tested_result(identity, window, analysis)


def resolve_layers(
    reference: str, inference: str, layers: list[str] | tuple[str, ...] | None
) -> list[str]:
    """Tensor names for ``layers`` present in both trials; default: the penultimate layer.
    The monitoring job's own rule (:func:`ladis_core.monitoring.resolve_layers`), so a test
    run here names layers exactly as a scheduled job would."""
    from ladis_core.monitoring.window import resolve_layers

    return resolve_layers(reference, inference, layers)


def save_job(result: JobResult, monitoring: str) -> str:
    """Write ``result`` as ``<monitoring>/<job-id>/results.json`` (written once, like a
    scheduled job) and return that URI. A job with the same id raises
    :class:`~ladis_core.errors.LadisError` (run the test again for a new id)."""
    uri = layout.results_uri(monitoring.rstrip("/"), result.job_id)
    if not store.write_json(uri, result.to_dict(), if_absent=True):
        raise LadisError(
            f"a job {result.job_id} already exists at {uri}; run the test again to get a new id"
        )
    return uri


def _describe_window(after_step: int | None, until_step: int | None) -> str:
    first = "the first step" if after_step is None else f"step {after_step + 1}"
    last = "the last step" if until_step is None else f"step {until_step}"
    return f"from {first} to {last}"
