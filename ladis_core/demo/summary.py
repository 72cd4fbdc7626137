"""What a built demo world holds: per-hour and per-layer results, accuracies and timings,
stored in its marker ``demo/<endpoint>/world.json``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ladis_core._version import __version__
from ladis_core.model.labels import epsilon_label


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
    """Detection rate per captured layer (docs/product.md, "Why layers"), in percent.

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
                f"  {a['attack'].upper():4} ε={epsilon_label(a['epsilon']):>7}: success {a['success_rate']:5.1f}%, "
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


class _Clock:
    """Seconds spent per stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def add(self, stage: str, started: float) -> None:
        self.timings[stage] = round(self.timings.get(stage, 0.0) + time.perf_counter() - started, 3)
