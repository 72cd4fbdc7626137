"""What a demo world is built from: its options and its story of traffic windows."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from ladis_core.errors import check
from ladis_core.model.data import (
    DEFAULT_FRACTIONS,
)
from ladis_core.model.labels import epsilon_label
from ladis_core.store import layout
from ladis_core.trials.names import RESIDUAL_BLOCKS

#: the simulated day starts here (UTC); job ids are derived from it, so worlds are stable
DEMO_START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


DEFAULT_ENDPOINT = "digits-resnet18"


ATTACK_NONE = "none"


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
        what = f"{self.attack.upper()} ε={epsilon_label(self.epsilon)}"
        return what if self.share >= 1.0 else f"{self.share:.0%} {what}"


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
