"""The monitoring job's result: one typed object, one JSON document per job.

A :class:`JobResult` is written once to ``<monitoring>/<job-id>/results.json`` by the
monitoring job (or by "save as job" in the dashboard) and read by the dashboard and the
report. Percentages are 0–100. Rates are ``None`` when the window could not be tested
(``status == "insufficient_data"``, with a ``reason``), never a false 0 %.

Schema 2 adds the window test (``window_test``: the p-value that decides the incident, the
estimated share of crafted inputs, the per-class view), the baseline's range over several
reference splits and ``warnings``. Schema-1 results (decided by the detection-rate rule)
load unchanged: their ``window_test`` is ``None`` and their rule's ``basis`` is
``"detection-rate"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ladis_core.errors import InputError
from ladis_core.monitoring.evidence import WindowEvidence

SCHEMA_VERSION = 2
STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class LayerResult:
    """Detection results of one layer in one job."""

    detection_rate: float | None
    baseline_detection_rate: float | None = None
    median_p_value: float | None = None
    #: the R p-values of the detection-rate protocol, shape (n_repeats,)
    p_values: list[float] = field(default_factory=list)
    #: number of features of the (flattened) layer representation
    dimension: int | None = None


@dataclass(frozen=True)
class TopSample:
    """One of the most suspicious inference inputs of a job (best first in the list)."""

    step: int
    score: float
    predicted_class: int | None = None
    #: calibrated empirical p-value against held-out reference rows (small = suspicious)
    p_value: float | None = None


WINDOW_TEST = "window-test"
DETECTION_RATE = "detection-rate"


@dataclass(frozen=True)
class IncidentRule:
    """When a job is an incident.

    ``basis = "window-test"`` (the default): the window test's p-value is below ``alpha``
    (a false-alarm rate of at most ``alpha`` per natural window). ``"detection-rate"``
    (results written before the window test): the detection rate exceeds the baseline
    rate by more than ``margin_points`` percentage points and is at least ``min_rate``
    percent. The detection-rate threshold is drawn on charts either way.
    """

    margin_points: float = 25.0
    min_rate: float = 20.0
    alpha: float = 0.01
    basis: str = WINDOW_TEST

    def threshold(self, baseline_rate: float | None) -> float:
        """The detection rate (percent) above which the detection-rate rule alarms."""
        return max(self.min_rate, (baseline_rate or 0.0) + self.margin_points)

    def is_incident(self, detection_rate: float | None, baseline_rate: float | None) -> bool:
        """The detection-rate rule's verdict (the basis of results before the window test)."""
        return detection_rate is not None and detection_rate > self.threshold(baseline_rate)

    def decide(
        self,
        window_p_value: float | None,
        detection_rate: float | None,
        baseline_rate: float | None,
    ) -> bool:
        """Whether a tested window is an incident under this rule."""
        if self.basis == DETECTION_RATE:
            return self.is_incident(detection_rate, baseline_rate)
        return window_p_value is not None and window_p_value < self.alpha

    def describe(self) -> str:
        if self.basis == DETECTION_RATE:
            return f"detection rate > max({self.min_rate:g}%, baseline + {self.margin_points:g} points)"
        return f"window test p < {self.alpha:g}"


@dataclass(frozen=True)
class JobSettings:
    """Everything needed to reproduce a job's numbers."""

    n_samples: int = 100
    n_repeats: int = 100
    alpha: float = 0.05
    n_permutations: int = 1000
    seed: int | None = 0
    kernel: str = "multi_rbf"
    class_matched: bool = True
    standardize: bool = False
    combination: str = "max-statistic"
    layers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobResult:
    """The result of one monitoring job (or one saved on-demand test)."""

    job_id: str
    endpoint: str
    scheduled_at: str
    started_at: str
    finished_at: str
    reference: str
    inference: str
    first_step: int | None
    last_step: int | None
    requests: int
    detection_rate: float | None
    baseline_detection_rate: float | None
    layers: dict[str, LayerResult]
    incident: bool
    incident_rule: IncidentRule
    settings: JobSettings
    top_samples: list[TopSample] = field(default_factory=list)
    status: str = STATUS_OK
    reason: str | None = None
    #: how the per-layer decisions are combined into ``detection_rate``
    combined_method: str = "max-statistic"
    #: predicted-class histogram of the window, {class index (str): count}
    class_counts: dict[str, int] = field(default_factory=dict)
    #: class index (str) -> human name, when known
    class_names: dict[str, str] = field(default_factory=dict)
    score_method: str = "witness-pvalue"
    source: str = "monitor"
    ladis_version: str = ""
    schema_version: int = SCHEMA_VERSION
    #: the window test that decides ``incident`` (None: written before it, or untested)
    window_test: WindowEvidence | None = None
    #: lowest and highest combined baseline rate over ``baseline_splits`` reference splits
    baseline_range: tuple[float, float] | None = None
    baseline_splits: int = 1
    #: what the analysis noticed (rows left out, too few reference rows ...)
    warnings: list[str] = field(default_factory=list)

    @property
    def alert_threshold(self) -> float:
        return self.incident_rule.threshold(self.baseline_detection_rate)

    @property
    def window_p_value(self) -> float | None:
        return None if self.window_test is None else self.window_test.p_value

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["incident_rule"]["description"] = self.incident_rule.describe()
        out["alert_threshold"] = self.alert_threshold
        out["window_test"] = None if self.window_test is None else self.window_test.to_dict()
        out["baseline_range"] = None if self.baseline_range is None else list(self.baseline_range)
        return _finite(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "results") -> JobResult:
        """Build from a parsed ``results.json``; a corrupt document raises
        :class:`InputError` naming ``source`` and the bad field."""
        if not isinstance(data, dict):
            raise InputError(f"{source}: expected a JSON object, got {type(data).__name__}")
        try:
            rule = dict(data.get("incident_rule") or {})
            rule.pop("description", None)
            rule.setdefault("basis", DETECTION_RATE)  # schema 1: decided by the rate
            window = data.get("window_test")
            spread = data.get("baseline_range")
            settings = dict(data.get("settings") or {})
            return cls(
                job_id=str(data["job_id"]),
                endpoint=str(data.get("endpoint", "")),
                scheduled_at=str(data["scheduled_at"]),
                started_at=str(data.get("started_at", "")),
                finished_at=str(data.get("finished_at", "")),
                reference=str(data["reference"]),
                inference=str(data["inference"]),
                first_step=_opt_int(data.get("first_step")),
                last_step=_opt_int(data.get("last_step")),
                requests=int(data["requests"]),
                detection_rate=_opt_float(data.get("detection_rate")),
                baseline_detection_rate=_opt_float(data.get("baseline_detection_rate")),
                layers={
                    str(name): LayerResult(
                        **{k: v for k, v in dict(layer).items() if k in _LAYER_FIELDS}
                    )
                    for name, layer in dict(data.get("layers") or {}).items()
                },
                incident=bool(data["incident"]),
                incident_rule=_rule(rule),
                settings=JobSettings(
                    **{k: v for k, v in settings.items() if k in _SETTINGS_FIELDS}
                ),
                top_samples=[
                    TopSample(**{k: v for k, v in dict(s).items() if k in _SAMPLE_FIELDS})
                    for s in data.get("top_samples") or []
                ],
                status=str(data.get("status", STATUS_OK)),
                reason=data.get("reason"),
                combined_method=str(data.get("combined_method", "max-statistic")),
                class_counts={
                    str(k): int(v) for k, v in dict(data.get("class_counts") or {}).items()
                },
                class_names={
                    str(k): str(v) for k, v in dict(data.get("class_names") or {}).items()
                },
                score_method=str(data.get("score_method", "witness-pvalue")),
                source=str(data.get("source", "monitor")),
                ladis_version=str(data.get("ladis_version", "")),
                schema_version=int(data.get("schema_version", 1)),
                window_test=None if window is None else WindowEvidence.from_dict(window),
                baseline_range=None if spread is None else (float(spread[0]), float(spread[1])),
                baseline_splits=int(data.get("baseline_splits", 1)),
                warnings=[str(w) for w in data.get("warnings") or []],
            )
        except KeyError as exc:
            raise InputError(f"{source}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise InputError(f"{source}: malformed result ({exc})") from None

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "results.json") -> JobResult:
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=source)


_LAYER_FIELDS = set(LayerResult.__dataclass_fields__)
_SAMPLE_FIELDS = set(TopSample.__dataclass_fields__)
_RULE_FIELDS = set(IncidentRule.__dataclass_fields__)
_SETTINGS_FIELDS = set(JobSettings.__dataclass_fields__)


def _rule(data: dict[str, Any]) -> IncidentRule:
    basis = str(data.get("basis", WINDOW_TEST))
    if basis not in (WINDOW_TEST, DETECTION_RATE):
        raise ValueError(f"unknown incident rule basis {basis!r}")
    numbers = {k: float(v) for k, v in data.items() if k in _RULE_FIELDS and k != "basis"}
    return IncidentRule(**numbers, basis=basis)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: Any) -> Any:
    """Replace NaN/inf by ``None`` so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
