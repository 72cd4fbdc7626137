"""The embedded demo world: a trained model, real attacks, a day of traffic, hourly jobs.

:func:`build_world` builds, in an S3 prefix or a local folder, everything the dashboard
shows, with the real pipeline (SPEC section 5)::

    data      scikit-learn digits (or an image folder), fixed seeded split
    train     torchvision ResNet18, weights → models/<endpoint>/
    dataset   the natural pool the traffic is drawn from → datasets/<endpoint>/natural.npz
    reference validation pass under the Debugger hook (EVAL) → trials/<endpoint>/reference
    attacks   PGD (L∞, random start) at a small and a larger ε, FGSM, on the natural pool
    traffic   simulated hours of requests through the real HTTP endpoint with capture on,
              each with provenance (X-Ladis-Provenance) → trials/<endpoint>/inference,
              trials/<endpoint>/provenance
    monitor   after every hour, a monitoring job scheduled at the end of that hour
              → monitoring/<endpoint>/<job-id>/results.json
    layers    the layer experiment (SPEC section 1): detection rate per captured layer,
              natural and attacked traffic against the reference, plus the clean baseline
              → experiments/<endpoint>/layers.json
    marker    demo/<endpoint>/world.json, written LAST: what was built, seeds, accuracy,
              attack success rates, per-hour and per-layer rates, timings

**Re-runs.** Each stage looks in the world first and skips what is there: a model →
no training, a reference trial with its stage note → no capture, an hour whose job result
exists → no traffic for it. A complete world (marker present, same options) is left alone.
A world without the marker is incomplete: it is resumed where it stopped, or, if its
traffic is inconsistent (requests captured after the last job, i.e. an hour cut short),
its traffic and jobs are replayed from the first hour. ``force`` deletes this endpoint's
objects first and rebuilds. Objects of other endpoints or other programs are never
deleted.

**Reproducibility.** Every random choice comes from the seed: the split, the weights
(:func:`ladis_core.model.training.seeded_model`), batches, PGD's random start, which pool
images each hour sends (``np.random.default_rng([seed, hour])``, so a resumed hour sends
what a full run would) and the statistics. The day is a fixed date
(:data:`DEMO_START`), so job ids are the same in every build.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core._version import __version__
from ladis_core.errors import DataNotFoundError, InputError, check
from ladis_core.model.data import (
    DEFAULT_FRACTIONS,
    DatasetSplits,
    ImageDataset,
    load_digits,
    load_image_folder,
)
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.demo")

#: the simulated day starts here (UTC); job ids are derived from it, so worlds are stable
DEMO_START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
DEFAULT_ENDPOINT = "digits-resnet18"
MARKER_NAME = "world.json"
#: the residual block outputs of a ResNet18 (capture regex, see ladis_core.capture)
RESIDUAL_BLOCKS = (r"layer[1-4]\.[01]",)
#: top-level folders that mark a prefix as a LADIS world
WORLD_FOLDERS = ("models", "datasets", "trials", "monitoring", "experiments", "demo")
ATTACK_NONE = "none"
_WIPE_WORKERS = 16


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class TrafficWindow:
    """What one simulated hour sends: natural pool images, a ``share`` of them attacked.

    ``attack``: ``"none"``, ``"pgd"`` or ``"fgsm"``; ``epsilon`` in pixel units ([0, 1]
    scale); ``share`` in [0, 1] (1 = every request of the hour is adversarial).
    """

    attack: str = ATTACK_NONE
    epsilon: float = 0.0
    share: float = 0.0

    def __post_init__(self) -> None:
        check(
            self.attack in (ATTACK_NONE, "pgd", "fgsm"),
            f"attack={self.attack!r} is not none, pgd or fgsm",
        )
        check(0.0 <= self.share <= 1.0, f"share={self.share} must be between 0 and 1")
        check(0.0 <= self.epsilon <= 1.0, f"epsilon={self.epsilon} must be between 0 and 1")
        check(
            (self.attack == ATTACK_NONE) == (self.share == 0.0),
            f"a window with attack={self.attack!r} needs 0 < share (and share > 0 needs an attack)",
        )

    @property
    def adversarial(self) -> bool:
        return self.attack != ATTACK_NONE

    @property
    def key(self) -> tuple[str, float]:
        """(attack, ε) — the precomputed adversarial set this window draws from."""
        return (self.attack, round(self.epsilon, 8))

    def describe(self) -> str:
        if not self.adversarial:
            return "natural"
        what = f"{self.attack.upper()} ε={_eps_text(self.epsilon)}"
        return what if self.share >= 1.0 else f"{self.share:.0%} {what}"


def _eps_text(epsilon: float) -> str:
    """``8/255`` when ε is a whole number of grey levels, else the number."""
    levels = epsilon * 255
    return f"{round(levels)}/255" if abs(levels - round(levels)) < 1e-6 else f"{epsilon:.4g}"


def default_story(
    hours: int, *, small_epsilon: float, large_epsilon: float
) -> tuple[TrafficWindow, ...]:
    """The day's plot: natural hours with these incidents spread evenly among them —
    a fully adversarial hour at the small (invisible) ε, an hour 30 % contaminated at the
    larger ε, a fully adversarial hour at the larger ε, and one of FGSM. Short days keep
    the first incidents of that list (at least one natural hour before and after each)."""
    check(hours >= 1, f"hours={hours} must be at least 1")
    events = [
        TrafficWindow("pgd", small_epsilon, 1.0),
        TrafficWindow("pgd", large_epsilon, 0.3),
        TrafficWindow("pgd", large_epsilon, 1.0),
        TrafficWindow("fgsm", large_epsilon, 1.0),
    ]
    k = min(len(events), (hours - 1) // 2)
    story = [TrafficWindow() for _ in range(hours)]
    for j in range(k):
        story[int(round((j + 1) * hours / (k + 1)))] = events[j]
    return tuple(story)


@dataclass(frozen=True)
class DemoOptions:
    """Everything that decides what the demo world holds. Presets: :meth:`full` (the
    default), :meth:`quick` and :meth:`tiny` (for tests)."""

    endpoint: str = DEFAULT_ENDPOINT
    seed: int = 0
    #: an image folder with one sub-folder per class (``None``: scikit-learn's digits)
    data_dir: str | None = None
    image_size: int = 32
    max_per_class: int | None = None
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    architecture: str = "resnet18"
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.05
    #: simulated hours of traffic, one monitoring job after each
    hours: int = 24
    #: requests per hour are drawn uniformly from this range (inclusive)
    requests_per_hour: tuple[int, int] = (200, 300)
    small_epsilon: float = 8 / 255
    large_epsilon: float = 16 / 255
    pgd_steps: int = 10
    #: one window per hour; ``None``: :func:`default_story`
    story: tuple[TrafficWindow, ...] | None = None
    #: layer regexes captured besides inputs, penultimate layer and outputs
    capture_layers: tuple[str, ...] = RESIDUAL_BLOCKS
    #: layers the hourly jobs test (module or tensor names); the combined rate is the
    #: max-statistic. Deep layers only: on the digits, adding layer3.1 lifted natural hours
    #: from a mean of 4.8 % (max 12 %) to 7.3 % (max 21 %) at no gain in power.
    monitor_layers: tuple[str, ...] = ("layer4.0", "avgpool", "ResNet_output_0")
    n_samples: int = 100
    n_repeats: int = 100
    n_permutations: int = 1000
    alpha: float = 0.05
    #: repetitions of the per-layer experiment (same n, α and permutations as the jobs)
    experiment_repeats: int = 100
    #: parallel clients sending an hour's requests
    concurrency: int = 1
    device: str = "cpu"
    #: torch intra-op threads while building (``None``: torch's default)
    torch_threads: int | None = None
    start: datetime = DEMO_START

    def __post_init__(self) -> None:
        check(
            bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", self.endpoint)),
            f"endpoint={self.endpoint!r}: use letters, digits, '.', '_' or '-' (at most 63)",
        )
        check(self.hours >= 1, f"hours={self.hours} must be at least 1")
        lo, hi = self.requests_per_hour
        check(
            1 <= lo <= hi,
            f"requests_per_hour={self.requests_per_hour} must be (low, high) with 1 ≤ low ≤ high",
        )
        check(
            lo >= self.n_samples,
            f"requests_per_hour={self.requests_per_hour}: every hour needs at least n_samples={self.n_samples} "
            "requests, or its job cannot test it",
        )
        check(self.epochs >= 1, f"epochs={self.epochs} must be at least 1")
        check(self.image_size >= 8, f"image_size={self.image_size} must be at least 8 pixels")
        check(
            self.story is None or len(self.story) == self.hours,
            f"story has {len(self.story or ())} windows but hours={self.hours}",
        )
        check(self.concurrency >= 1, f"concurrency={self.concurrency} must be at least 1")
        check(
            self.torch_threads is None or self.torch_threads >= 1,
            f"torch_threads={self.torch_threads} must be ≥ 1",
        )
        check(
            self.device in ("cpu", "cuda") or self.device.startswith("cuda:"),
            f"device={self.device!r} must be cpu or cuda",
        )

    @classmethod
    def full(cls, **changes: Any) -> DemoOptions:
        """24 hours of 200–300 requests, 10 epochs, R = 100 and B = 1,000 (the default)."""
        return cls(**changes)

    @classmethod
    def quick(cls, **changes: Any) -> DemoOptions:
        """6 hours of 120 requests, 4 epochs, lighter statistics (R = 50, B = 500)."""
        base: dict[str, Any] = dict(
            epochs=4,
            hours=6,
            requests_per_hour=(120, 120),
            n_repeats=50,
            n_permutations=500,
            experiment_repeats=50,
        )
        return cls(**{**base, **changes})

    @classmethod
    def tiny(cls, **changes: Any) -> DemoOptions:
        """For tests: 16×16 images, 2 epochs, 3 hours of 110 requests, R = 20, B = 200."""
        base: dict[str, Any] = dict(
            image_size=16,
            epochs=3,
            learning_rate=0.02,
            hours=3,
            requests_per_hour=(110, 110),
            n_repeats=20,
            n_permutations=200,
            experiment_repeats=20,
            pgd_steps=5,
            capture_layers=(r"layer[34]\.1",),
            monitor_layers=("avgpool",),
        )
        return cls(**{**base, **changes})

    @property
    def windows(self) -> tuple[TrafficWindow, ...]:
        if self.story is not None:
            return self.story
        return default_story(
            self.hours, small_epsilon=self.small_epsilon, large_epsilon=self.large_epsilon
        )

    def job_time(self, hour: int) -> datetime:
        """When the job of ``hour`` (0-based) is scheduled: the end of that hour."""
        return self.start + timedelta(hours=hour + 1)

    def job_id(self, hour: int) -> str:
        return layout.job_id_for(self.job_time(hour))

    def plan(self) -> dict[str, Any]:
        """The options that decide the world's content (not how fast it is built)."""
        skip = {"concurrency", "device", "torch_threads"}
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            if f.name == "story":
                value = [asdict(w) for w in self.windows]
            elif isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return json.loads(json.dumps(out))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HourSummary:
    """One simulated hour and the monitoring job that ran after it (rates in percent)."""

    hour: int
    job_id: str
    story: str
    attack: str
    epsilon: float
    share: float
    requests: int
    adversarial_requests: int
    detection_rate: float | None
    baseline_detection_rate: float | None
    incident: bool
    status: str
    layer_rates: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerExperiment:
    """Detection rate per captured layer (SPEC section 1), in percent.

    ``columns``: ``"baseline"`` (reference halves), ``"natural"`` (natural traffic vs the
    reference), then one per attack in the traffic (``"PGD ε=8/255"``, …), each against
    the reference. ``rates[column][layer]``; ``combined[column]``: the max-statistic
    decision over all layers; ``rows[column]``: distinct images tested.
    """

    layers: list[str]
    dimensions: dict[str, int]
    columns: list[str]
    rates: dict[str, dict[str, float]]
    combined: dict[str, float]
    rows: dict[str, int]
    settings: dict[str, Any]

    def table(self) -> str:
        """A plain-text table: one row per layer, one column per comparison."""
        width = max(len(name) for name in [*self.layers, "layer", "combined"])
        heads = [c if len(c) >= 8 else c.rjust(8) for c in self.columns]
        lines = [f"{'layer'.ljust(width)}  {'dim':>6}  " + "  ".join(heads)]
        for name in self.layers:
            cells = [
                f"{self.rates[c][name]:.0f}%".rjust(len(h))
                for c, h in zip(self.columns, heads, strict=True)
            ]
            lines.append(f"{name.ljust(width)}  {self.dimensions[name]:>6}  " + "  ".join(cells))
        cells = [
            f"{self.combined[c]:.0f}%".rjust(len(h))
            for c, h in zip(self.columns, heads, strict=True)
        ]
        lines.append(f"{'combined'.ljust(width)}  {'':>6}  " + "  ".join(cells))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerExperiment:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class WorldSummary:
    """What :func:`build_world` built (also the content of the world marker).

    Accuracies, success and detection rates are percentages. ``skipped``: stages found
    in the world and not redone by this call; ``timings``: seconds per stage of this call.
    """

    world: str
    endpoint: str
    data_source: str
    classes: list[str]
    input_shape: list[int]
    split: dict[str, int]
    seed: int
    test_accuracy: float
    validation_accuracy: float | None
    train_accuracy: float | None
    epochs: int
    attacks: list[dict[str, Any]]
    hours: list[HourSummary]
    experiment: LayerExperiment | None
    options: dict[str, Any]
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    built_at: str = ""
    ladis_version: str = __version__

    @property
    def incidents(self) -> list[str]:
        return [h.job_id for h in self.hours if h.incident]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["experiment"] = self.experiment.to_dict() if self.experiment else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldSummary:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["hours"] = [HourSummary(**h) for h in data.get("hours", [])]
        exp = data.get("experiment")
        values["experiment"] = LayerExperiment.from_dict(exp) if exp else None
        return cls(**values)

    def closing_note(self) -> str:
        """The figures a person wants at the end of a build, as plain text."""
        lines = [
            f"LADIS demo world {self.world} — endpoint {self.endpoint}",
            f"data: {self.data_source}, {len(self.classes)} classes, "
            f"{'×'.join(str(v) for v in self.input_shape)}, split {self.split}",
            f"model: test accuracy {self.test_accuracy:.1f}%"
            + (
                f", validation {self.validation_accuracy:.1f}%"
                if self.validation_accuracy is not None
                else ""
            )
            + f" ({self.epochs} epochs)",
            "attacks on the natural pool (success = correctly classified images now misclassified):",
        ]
        for a in self.attacks:
            lines.append(
                f"  {a['attack'].upper():4} ε={_eps_text(a['epsilon']):>7}: success {a['success_rate']:5.1f}%, "
                f"accuracy {a['clean_accuracy']:.1f}% → {a['adversarial_accuracy']:.1f}%"
            )
        lines.append("hourly monitoring jobs (detection rate vs baseline; * = incident):")
        for h in self.hours:
            rate = "   n/a" if h.detection_rate is None else f"{h.detection_rate:5.0f}%"
            base = (
                "n/a" if h.baseline_detection_rate is None else f"{h.baseline_detection_rate:.0f}%"
            )
            lines.append(
                f"  {h.job_id}  {h.story:<20} {h.requests:4d} requests  rate {rate}  "
                f"baseline {base:>4}  {'*' if h.incident else ''}"
            )
        if self.experiment is not None:
            lines.append(
                f"layer experiment (detection rate, n={self.experiment.settings.get('n_samples')}, "
                f"R={self.experiment.settings.get('n_repeats')}, α={self.experiment.settings.get('alpha')}):"
            )
            lines.extend("  " + line for line in self.experiment.table().splitlines())
        if self.timings:
            lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        if self.skipped:
            lines.append("already in the world (skipped): " + ", ".join(self.skipped))
        return "\n".join(lines)


# --------------------------------------------------------------------------- locations


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


# --------------------------------------------------------------------------- the build


class _Clock:
    """Seconds spent per stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def add(self, stage: str, started: float) -> None:
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - started, 3)


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


# --------------------------------------------------------------------------- stages


def _delete_downstream(world: str, endpoint: str, *, keep_reference: bool) -> None:
    """Remove what is derived from the model: traffic, jobs, experiment, attack notes and
    (unless ``keep_reference``) the reference trial."""
    prefixes = [
        layout.inference_trial_uri(world, endpoint),
        layout.provenance_uri(world, endpoint),
        layout.monitoring_uri(world, endpoint),
    ]
    if not keep_reference:
        prefixes.append(layout.reference_trial_uri(world, endpoint))
    removed = sum(_delete_prefix(p) for p in prefixes)
    notes = ["attacks"] + ([] if keep_reference else ["reference"])
    for note in notes:
        store.delete(_note_uri(world, endpoint, note))
    store.delete(layout.experiment_uri(world, endpoint))
    if removed:
        log.warning(
            "removed %d objects of %s derived from an earlier model or traffic", removed, endpoint
        )


def _load_data(options: DemoOptions, progress: ProgressCallback | None) -> DatasetSplits:
    report(progress, "data", 0, 1, options.data_dir or "scikit-learn digits")
    if options.data_dir:
        splits = load_image_folder(
            options.data_dir,
            size=options.image_size,
            seed=options.seed,
            fractions=options.fractions,
            max_per_class=options.max_per_class,
            progress=progress,
        )
    else:
        splits = load_digits(
            size=options.image_size, seed=options.seed, fractions=options.fractions
        )
    need = 2 * options.n_samples
    check(
        len(splits.validation) >= need,
        f"{splits.source} gives {len(splits.validation)} validation images; the monitoring baseline needs at "
        f"least {need} (2 × n_samples={options.n_samples}): add images or lower n_samples",
    )
    check(
        len(splits.test) >= options.n_samples,
        f"{splits.source} gives {len(splits.test)} test images to send as traffic; at least "
        f"n_samples={options.n_samples} are needed",
    )
    report(progress, "data", 1, 1, splits.describe())
    return splits


def _model_stage(
    world: str,
    options: DemoOptions,
    splits: DatasetSplits,
    device: str,
    skipped: list[str],
    progress: ProgressCallback | None,
) -> tuple[Any, dict[str, Any]]:
    """Train and store the model, or load the stored one. Returns it with its accuracies."""
    from ladis_core.model.spec import ModelSpec, load_model, save_model
    from ladis_core.model.store import resolve_model_dir
    from ladis_core.model.training import TrainingOptions, accuracy, seeded_model, train_model

    model_uri = layout.model_uri(world, options.endpoint)
    note_uri = _note_uri(world, options.endpoint, "training")
    if store.exists(layout.join(model_uri, "model.json")) and store.exists(
        layout.join(model_uri, "model.pt")
    ):
        with tempfile.TemporaryDirectory(prefix="ladis-model-") as cache:
            model, _spec = load_model(resolve_model_dir(model_uri, cache_dir=cache), device=device)
        try:
            training = store.read_json(note_uri)
        except DataNotFoundError:
            training = {"test_accuracy": accuracy(model, splits.test, device=device)}
        skipped.append("training")
        return model, training

    spec = ModelSpec(
        architecture=options.architecture,
        num_classes=len(splits.class_names),
        input_shape=splits.input_shape,
        mean=tuple([0.5] * splits.input_shape[0]),
        std=tuple([0.5] * splits.input_shape[0]),
        class_names=list(splits.class_names),
    )
    model = seeded_model(spec, seed=options.seed)
    result = train_model(
        model,
        splits.train,
        validation=splits.validation,
        device=device,
        progress=progress,
        options=TrainingOptions(
            epochs=options.epochs,
            batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            seed=options.seed,
        ),
    )
    test_accuracy = accuracy(model, splits.test, device=device)
    log.info(
        "trained %s in %.0f s: test accuracy %.1f%%",
        options.architecture,
        result.seconds,
        test_accuracy,
    )
    with tempfile.TemporaryDirectory(prefix="ladis-model-") as tmp:
        save_model(model.cpu(), spec, tmp)
        model.to(device)
        # weights before the spec: the spec's presence is what marks a stored model
        store.write_bytes(layout.join(model_uri, "model.pt"), (Path(tmp) / "model.pt").read_bytes())
        store.write_bytes(
            layout.join(model_uri, "model.json"),
            (Path(tmp) / "model.json").read_bytes(),
            content_type="application/json",
        )
    training = {
        "test_accuracy": test_accuracy,
        "validation_accuracy": result.validation_accuracy,
        "train_accuracy": result.train_accuracy,
        "epochs": result.epochs,
        "seconds": round(result.seconds, 2),
        "losses": result.losses,
    }
    store.write_json(note_uri, training)
    return model, training


def _natural_npz(pool: ImageDataset) -> bytes:
    """The natural pool as ``natural.npz``: images float32 (N, C, H, W), labels int64 (N,),
    class_names (str), dataset_indices int64 (N,) (rows in the source data set)."""
    buffer = BytesIO()
    np.savez_compressed(
        buffer,
        images=pool.images,
        labels=pool.labels,
        class_names=np.array(pool.class_names),
        dataset_indices=pool.indices,
    )
    return buffer.getvalue()


def _reference_stage(
    world: str,
    options: DemoOptions,
    model: Any,
    validation: ImageDataset,
    skipped: list[str],
    progress: ProgressCallback | None,
) -> None:
    """The final validation pass under the EVAL-mode hook → the reference trial.

    The reference must describe the deployed weights, so it is the validation pass after
    the last epoch (earlier epochs' passes would mix older models in)."""
    from ladis_core.capture import capture_reference

    note_uri = _note_uri(world, options.endpoint, "reference")
    if store.exists(note_uri):
        skipped.append("reference capture")
        return
    batch = 50
    batches = [validation.images[i : i + batch] for i in range(0, len(validation), batch)]
    summary = capture_reference(
        model,
        batches,
        layout.reference_trial_uri(world, options.endpoint),
        layers=options.capture_layers,
        include_inputs=True,
        overwrite=True,
        progress=progress,
    )
    store.write_json(
        note_uri,
        {"steps": summary.steps, "rows": len(validation), "tensors": list(summary.tensors)},
    )


def _attack_stage(
    options: DemoOptions,
    model: Any,
    pool: ImageDataset,
    windows: Sequence[TrafficWindow],
    device: str,
    progress: ProgressCallback | None,
) -> tuple[dict[tuple[str, float], np.ndarray], list[dict[str, Any]]]:
    """Every (attack, ε) of the story, run once on the whole natural pool."""
    from ladis_core.model.attacks import attack

    keys = sorted(
        {w.key for w in windows if w.adversarial}, key=lambda k: (k[0] != "pgd", k[1], k[0])
    )
    images: dict[tuple[str, float], np.ndarray] = {}
    summaries = []
    for number, (method, epsilon) in enumerate(keys):
        result = attack(
            model,
            pool.images,
            pool.labels,
            method=method,
            epsilon=epsilon,
            steps=options.pgd_steps,
            seed=options.seed + number,
            device=device,
            progress=progress,
        )
        images[(method, epsilon)] = result.images
        summaries.append(result.summary())
        log.info("%s ε=%s: success rate %.1f%%", method, _eps_text(epsilon), result.success_rate)
    return images, summaries


def _hour_plan(options: DemoOptions, hour: int, pool_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(source indices (k,), adversarial mask (k,)) of the requests of ``hour``.

    Drawn from ``np.random.default_rng([seed, hour])`` only, so an hour always sends the
    same requests. Images are drawn without replacement within the hour (so a window
    holds no duplicate rows) as long as the pool is large enough."""
    # one generator per decision, so the count and the mask do not depend on the pool size
    count_rng, source_rng, mask_rng = (
        np.random.default_rng([options.seed, hour, k]) for k in range(3)
    )
    lo, hi = options.requests_per_hour
    count = int(count_rng.integers(lo, hi + 1))
    sources = source_rng.choice(pool_size, size=count, replace=count > pool_size)
    window = options.windows[hour]
    mask = np.zeros(count, dtype=bool)
    n_adv = int(round(window.share * count))
    if n_adv:
        mask[mask_rng.choice(count, size=n_adv, replace=False)] = True
    return sources.astype(np.int64), mask


def _traffic_resume_point(world: str, options: DemoOptions) -> int:
    """The first hour to replay. Hours whose job result exists are done; if steps were
    captured after the last finished hour (a run cut short mid-hour), the traffic and
    jobs are removed and replayed from the first hour."""
    from ladis_core import trials
    from ladis_core.monitoring.results import JobResult

    monitoring = layout.monitoring_uri(world, options.endpoint)
    done = 0
    last_step: int | None = None
    for hour in range(options.hours):
        uri = layout.results_uri(monitoring, options.job_id(hour))
        if not store.exists(uri):
            break
        job = JobResult.from_dict(store.read_json(uri), source=uri)
        last_step = job.last_step if job.last_step is not None else last_step
        done = hour + 1
    inference = layout.inference_trial_uri(world, options.endpoint)
    captured = trials.last_step(inference, mode="PREDICT")
    if captured == last_step:
        return done
    log.warning(
        "the traffic in %s stops mid-hour (last captured step %s, last monitored step %s): replaying the day",
        world,
        captured,
        last_step,
    )
    _delete_downstream(world, options.endpoint, keep_reference=True)
    return 0


def _traffic_stage(
    world: str,
    options: DemoOptions,
    pool: ImageDataset,
    adversarial: dict[tuple[str, float], np.ndarray],
    first_hour: int,
    device: str,
    clock: _Clock,
    progress: ProgressCallback | None,
) -> None:
    """Serve the model from the world with capture on, replay the hours from
    ``first_hour`` through it, and run the monitoring job after each hour."""
    from ladis_core.monitoring import run_job
    from ladis_core.monitoring.results import JobSettings
    from ladis_core.serving import invoke, start_server

    endpoint = options.endpoint
    reference = layout.reference_trial_uri(world, endpoint)
    inference = layout.inference_trial_uri(world, endpoint)
    monitoring = layout.monitoring_uri(world, endpoint)
    settings = JobSettings(
        n_samples=options.n_samples,
        n_repeats=options.n_repeats,
        alpha=options.alpha,
        n_permutations=options.n_permutations,
        seed=options.seed,
    )
    hours = options.hours
    with (
        tempfile.TemporaryDirectory(prefix="ladis-endpoint-") as cache,
        start_server(
            layout.model_uri(world, endpoint),
            capture_uri=inference,
            provenance_uri=layout.provenance_uri(world, endpoint),
            layers=options.capture_layers,
            device=device,
            cache_dir=cache,
        ) as server,
    ):
        for hour in range(first_hour, hours):
            window = options.windows[hour]
            job_id = options.job_id(hour)
            sources, mask = _hour_plan(options, hour, len(pool))
            started = time.perf_counter()
            report(
                progress,
                "traffic",
                hour,
                hours,
                f"hour {hour + 1}/{hours} ({job_id}): {window.describe()}",
            )

            def send(
                i: int, *, _sources=sources, _mask=mask, _window=window, _job_id=job_id
            ) -> int:
                source = int(_sources[i])
                attacked = bool(_mask[i])
                image = adversarial[_window.key][source] if attacked else pool.images[source]
                answer = invoke(
                    server.url,
                    image,
                    provenance={
                        "source_index": source,
                        "true_label": int(pool.labels[source]),
                        "attack": _window.attack if attacked else ATTACK_NONE,
                        "epsilon": float(_window.epsilon) if attacked else 0.0,
                        "hour": _job_id,
                    },
                )
                return int(answer["step"])

            with ThreadPoolExecutor(max_workers=options.concurrency) as pool_exec:
                for done, _step in enumerate(pool_exec.map(send, range(len(sources))), 1):
                    if done % 20 == 0 or done == len(sources):
                        report(progress, "requests", done, len(sources), f"hour {hour + 1}/{hours}")
            # every captured step and its provenance are in the world before the job runs
            server.served.capture.flush()
            server.flush()
            clock.add("traffic", started)

            started = time.perf_counter()
            report(progress, "monitor", hour, hours, f"job {job_id}")
            result = run_job(
                reference=reference,
                inference=inference,
                output=monitoring,
                at=options.job_time(hour),
                layers=list(options.monitor_layers),
                settings=settings,
                endpoint=endpoint,
            )
            rate = "n/a" if result.detection_rate is None else f"{result.detection_rate:.0f}%"
            report(
                progress,
                "monitor",
                hour + 1,
                hours,
                f"job {job_id}: {result.requests} requests, {window.describe()}, detection rate {rate}"
                + (" — INCIDENT" if result.incident else ""),
            )
            clock.add("monitor", started)
        report(progress, "traffic", hours, hours, "day replayed")


def _hour_summaries(world: str, options: DemoOptions) -> list[HourSummary]:
    from ladis_core.monitoring.results import JobResult

    monitoring = layout.monitoring_uri(world, options.endpoint)
    out = []
    for hour, window in enumerate(options.windows):
        job_id = options.job_id(hour)
        uri = layout.results_uri(monitoring, job_id)
        job = JobResult.from_dict(store.read_json(uri), source=uri)
        _, mask = _hour_plan(options, hour, 1)  # the count and mask do not depend on the pool
        out.append(
            HourSummary(
                hour=hour,
                job_id=job_id,
                story=window.describe(),
                attack=window.attack,
                epsilon=window.epsilon,
                share=window.share,
                requests=job.requests,
                adversarial_requests=int(mask.sum()),
                detection_rate=job.detection_rate,
                baseline_detection_rate=job.baseline_detection_rate,
                incident=job.incident,
                status=job.status,
                layer_rates={name: layer.detection_rate for name, layer in job.layers.items()},
            )
        )
    return out


def _experiment_stage(
    world: str, options: DemoOptions, device: str, progress: ProgressCallback | None
) -> LayerExperiment:
    """Detection rate per captured layer: the reference (natural validation data) against
    the natural traffic and against each attack in the traffic, plus the baseline.

    Rows come from the captured trials, grouped by the provenance of every request; an
    image sent several times is used once per comparison (duplicates would make two
    samples look more alike than independent draws)."""
    from ladis_core import stats, trials

    endpoint = options.endpoint
    reference_uri = layout.reference_trial_uri(world, endpoint)
    inference_uri = layout.inference_trial_uri(world, endpoint)
    names = trials.list_layers(reference_uri, mode="EVAL")
    report(progress, "experiment", 0, 1, f"{len(names)} layers")
    ref = trials.load_trial(reference_uri, mode="EVAL", layers=names, include_inputs=True)
    inf = trials.load_trial(
        inference_uri, mode="PREDICT", layers=names, include_inputs=True, progress=progress
    )
    provenance = trials.load_provenance(layout.provenance_uri(world, endpoint))
    check(bool(provenance), f"no provenance under {layout.provenance_uri(world, endpoint)}")

    input_name = "input"
    ref_layers = {input_name: ref.inputs.reshape(len(ref), -1), **ref.layers}  # type: ignore[union-attr]
    inf_layers = {input_name: inf.inputs.reshape(len(inf), -1), **inf.layers}  # type: ignore[union-attr]
    layer_names = [input_name, *names]

    groups: dict[str, list[int]] = {"natural": []}
    seen: dict[str, set[int]] = {"natural": set()}
    for row, step in enumerate(inf.steps.tolist()):
        record = provenance.get(int(step))
        if record is None:
            continue
        attack = str(record.get("attack", ATTACK_NONE))
        column = (
            "natural"
            if attack == ATTACK_NONE
            else f"{attack.upper()} ε={_eps_text(float(record['epsilon']))}"
        )
        groups.setdefault(column, [])
        seen.setdefault(column, set())
        source = int(record.get("source_index", -1))
        if source in seen[column]:
            continue
        seen[column].add(source)
        groups[column].append(row)

    common = dict(
        n_samples=options.n_samples,
        n_repeats=options.experiment_repeats,
        alpha=options.alpha,
        n_permutations=options.n_permutations,
        seed=options.seed,
        device=device,
    )
    rates: dict[str, dict[str, float]] = {}
    combined: dict[str, float] = {}
    rows: dict[str, int] = {}
    columns = ["baseline"]
    baseline = stats.multi_layer_detection_rate(
        ref_layers, baseline=True, reference_classes=ref.predicted_class, **common
    )
    rates["baseline"], combined["baseline"], rows["baseline"] = (
        baseline.rates,
        baseline.combined.rate,
        len(ref) // 2,
    )
    ordered = ["natural", *sorted(c for c in groups if c != "natural")]
    for number, column in enumerate(ordered, 1):
        picked = np.asarray(groups[column], dtype=np.int64)
        report(progress, "experiment", number, len(ordered) + 1, f"{column}: {len(picked)} images")
        if len(picked) < options.n_samples:
            log.warning(
                "layer experiment: %s has %d distinct images (< n=%d); left out",
                column,
                len(picked),
                options.n_samples,
            )
            continue
        result = stats.multi_layer_detection_rate(
            ref_layers,
            {n: inf_layers[n][picked] for n in layer_names},
            reference_classes=ref.predicted_class,
            inference_classes=inf.predicted_class[picked],
            **common,
        )
        columns.append(column)
        rates[column], combined[column], rows[column] = (
            result.rates,
            result.combined.rate,
            len(picked),
        )
    report(progress, "experiment", 1, 1, "done")
    return LayerExperiment(
        layers=layer_names,
        dimensions={n: int(ref_layers[n].shape[1]) for n in layer_names},
        columns=columns,
        rates={c: {n: float(v) for n, v in rates[c].items()} for c in columns},
        combined={c: float(combined[c]) for c in columns},
        rows=rows,
        settings={k: v for k, v in common.items() if k != "device"}
        | {
            "class_matched": True,
            "kernel": "multi_rbf",
            "combination": "max-statistic",
            "reference": reference_uri,
            "inference": inference_uri,
        },
    )
