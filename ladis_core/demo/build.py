"""Building a demo world: the order of the stages, and what a re-run keeps.

**Re-runs.** Each stage looks in the world first and skips what is there: a model →
no training, a reference trial with its stage note → no capture, an hour whose job result
exists → no traffic for it. A complete world (marker present, same options) is left alone.
A world without the marker is incomplete: it is resumed where it stopped, or, if its
traffic is inconsistent (requests captured after the last job, i.e. an hour cut short),
its traffic and jobs are replayed from the first hour. ``force`` deletes this endpoint's
objects first and rebuilds. Objects of other endpoints or other programs are never
deleted. The stages themselves are described in :mod:`ladis_core.demo`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core.demo.experiment import _experiment_stage
from ladis_core.demo.locations import (
    _delete_prefix,
    _endpoint_prefixes,
    _note_uri,
    check_world,
    load_summary,
    marker_uri,
)
from ladis_core.demo.options import DemoOptions
from ladis_core.demo.stages import (
    _attack_stage,
    _delete_downstream,
    _load_data,
    _model_stage,
    _natural_npz,
    _reference_stage,
)
from ladis_core.demo.summary import LayerExperiment, WorldSummary, _Clock
from ladis_core.demo.traffic import _hour_summaries, _traffic_resume_point, _traffic_stage
from ladis_core.errors import DataNotFoundError, InputError
from ladis_core.model.data import (
    DatasetSplits,
)
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.demo")


def build_world(
    world: str,
    *,
    options: DemoOptions | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> WorldSummary:
    """Build (or finish, or leave alone) the demo world at ``world``; see the module
    docstring for the stages. Returns what the world holds; the same summary is stored
    in the marker :func:`marker_uri`.

    Raises :class:`~ladis_core.errors.StorageError` when S3 cannot be reached,
    :class:`InputError` for a prefix holding something else, a complete world built with
    other options (rebuild it with ``force``), an image folder without images or an
    unavailable device.
    """
    from ladis_core.model.training import resolve_device

    options = options or DemoOptions()
    world = world.rstrip("/") + "/"
    endpoint = options.endpoint
    device = str(resolve_device(options.device))  # a missing GPU fails before anything is written
    clock = _Clock()
    report(progress, "check", 0, 1, world)
    started = time.perf_counter()
    check_world(world, allow_foreign=force)
    plan = options.plan()
    existing = None if force else load_summary(world, endpoint)
    if existing is not None:
        if existing.options == plan:
            report(progress, "check", 1, 1, "the world is complete")
            return replace(existing, skipped=["everything (the world is complete)"], timings={})
        raise InputError(
            f"{world} already holds a complete demo world for endpoint {endpoint!r} built with other "
            f"options ({_plan_difference(existing.options, plan)}); pass --force to rebuild it, or build "
            "into another --world"
        )
    report(progress, "check", 1, 1, world)
    clock.add("check", started)

    # the data are checked before anything is written or deleted (e.g. a folder without images)
    started = time.perf_counter()
    splits = _load_data(options, progress)
    clock.add("data", started)

    if force:
        removed = sum(_delete_prefix(p) for p in _endpoint_prefixes(world, endpoint))
        log.info("--force: removed %d objects of endpoint %s from %s", removed, endpoint, world)
    plan_uri = _note_uri(world, endpoint, "plan")
    try:
        previous_plan = store.read_json(plan_uri)
    except DataNotFoundError:
        previous_plan = None
    if previous_plan is not None and previous_plan != plan:
        removed = sum(_delete_prefix(p) for p in _endpoint_prefixes(world, endpoint))
        log.warning(
            "an unfinished world with other options was found; removed its %d objects", removed
        )
    store.write_json(plan_uri, plan)
    with _torch_threads(options.torch_threads):
        return _build(world, options, plan, splits, device, clock, progress)


def _plan_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = [
        f"{k}: {old.get(k)!r} → {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]
    return "; ".join(diffs[:4]) + (" …" if len(diffs) > 4 else "")


class _torch_threads:
    """Set torch's intra-op threads for a block and restore them afterwards."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self.before: int | None = None

    def __enter__(self) -> None:
        if self.threads is not None:
            import torch

            self.before = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        if self.before is not None:
            import torch

            torch.set_num_threads(self.before)


def _build(
    world: str,
    options: DemoOptions,
    plan: dict[str, Any],
    splits: DatasetSplits,
    device: str,
    clock: _Clock,
    progress: ProgressCallback | None,
) -> WorldSummary:
    endpoint = options.endpoint
    skipped: list[str] = []

    started = time.perf_counter()
    model, training = _model_stage(world, options, splits, device, skipped, progress)
    if "training" not in skipped:
        # a new model: whatever an earlier run derived from another model must go
        _delete_downstream(world, endpoint, keep_reference=False)
    clock.add("train", started)

    started = time.perf_counter()
    dataset_uri = layout.dataset_uri(world, endpoint)
    if store.exists(dataset_uri):
        skipped.append("dataset")
    else:
        store.write_bytes(
            dataset_uri, _natural_npz(splits.test), content_type="application/octet-stream"
        )
    clock.add("dataset", started)

    started = time.perf_counter()
    _reference_stage(world, options, model, splits.validation, skipped, progress)
    clock.add("reference", started)

    windows = options.windows
    first_hour = _traffic_resume_point(world, options)
    attacks_uri = _note_uri(world, endpoint, "attacks")
    started = time.perf_counter()
    adversarial: dict[tuple[str, float], np.ndarray] = {}
    if first_hour < options.hours or not store.exists(attacks_uri):
        adversarial, attack_summaries = _attack_stage(
            options, model, splits.test, windows, device, progress
        )
        store.write_json(attacks_uri, attack_summaries)
    else:
        attack_summaries = store.read_json(attacks_uri)
        skipped.append("attacks")
    clock.add("attacks", started)
    del model  # the endpoint loads its own copy from the world

    if first_hour >= options.hours:
        skipped.append("traffic")
    else:
        if first_hour > 0:
            skipped.append(f"traffic of hours 1–{first_hour}")
        store.delete(layout.experiment_uri(world, endpoint))  # it would describe other traffic
        _traffic_stage(
            world, options, splits.test, adversarial, first_hour, device, clock, progress
        )
    hours = _hour_summaries(world, options)

    started = time.perf_counter()
    experiment_uri = layout.experiment_uri(world, endpoint)
    if store.exists(experiment_uri):
        experiment = LayerExperiment.from_dict(store.read_json(experiment_uri))
        skipped.append("layer experiment")
    else:
        experiment = _experiment_stage(world, options, device, progress)
        store.write_json(experiment_uri, experiment.to_dict())
    clock.add("experiment", started)

    clock.timings["total"] = round(time.perf_counter() - clock.t0, 3)
    summary = WorldSummary(
        world=world,
        endpoint=endpoint,
        data_source=splits.source,
        classes=list(splits.class_names),
        input_shape=list(splits.input_shape),
        split={
            "train": len(splits.train),
            "validation": len(splits.validation),
            "test": len(splits.test),
        },
        seed=options.seed,
        test_accuracy=training["test_accuracy"],
        validation_accuracy=training.get("validation_accuracy"),
        train_accuracy=training.get("train_accuracy"),
        epochs=options.epochs,
        attacks=attack_summaries,
        hours=hours,
        experiment=experiment,
        options=plan,
        skipped=skipped,
        timings=dict(clock.timings),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # the marker last: a world without it is incomplete and is resumed on the next run
    store.write_json(marker_uri(world, endpoint), summary.to_dict())
    report(progress, "done", 1, 1, f"{world} complete")
    return summary
