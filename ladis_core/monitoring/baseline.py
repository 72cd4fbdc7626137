"""The baseline detection rate: the reference split in halves, several times, cached per
reference and settings under ``<output>/_state/baseline/``.

One split is a noisy estimate (on the demo world the one-split baseline of a layer ranged
from 1 % to 12 %), so the rate is the mean over :data:`BASELINE_SPLITS` independent random
splits, reported with the lowest and highest of them."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ladis_core import store
from ladis_core.errors import DataNotFoundError, LadisError, StorageError
from ladis_core.monitoring.claims import STATE_DIR
from ladis_core.monitoring.protocol import rates, stats_options
from ladis_core.monitoring.results import JobSettings
from ladis_core.store import layout
from ladis_core.trials import TrialData

log = logging.getLogger("ladis.monitor")

#: random halvings of the reference the baseline rate is averaged over
BASELINE_SPLITS = 5


@dataclass(frozen=True)
class BaselineRates:
    """Baseline detection rates in percent: ``combined`` and one per layer (means over
    ``splits`` reference splits), and the lowest and highest combined rate of a split."""

    combined: float
    layers: dict[str, float]
    low: float | None = None
    high: float | None = None
    splits: int = 1

    @property
    def range(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)


class BaselineCache:
    """Baseline rates cached under ``<output>/_state/baseline/<key>.json``.

    The reference does not change between jobs, so its rates are computed once per key:
    the reference (URI, rows, steps), the layers and every setting; a re-captured
    reference or other settings get a new key. The cache is only an optimisation: an
    unreadable entry is recomputed and a store that refuses writes does not stop a job.

    A cached entry is untrusted like everything in storage (whoever writes it could raise
    the alert threshold until no job is ever an incident): it is used only when it names
    the reference it was computed on (URI, rows and a digest of the rows themselves) and
    its rates are plausible for a false-positive rate at ``alpha`` with ``n_repeats``
    repetitions (:func:`plausible_baseline`); otherwise the rates are computed again.
    The bound applies to the means (what the threshold is computed from), not to the
    highest single split: the R tests of one split share its two halves, so one split
    scatters far more than R independent tests would (1 % to 29 % on the demo world).
    """

    def __init__(self, output: str) -> None:
        self.output = output.rstrip("/")

    def uri(self, key: str) -> str:
        return layout.join(self.output, STATE_DIR, "baseline", f"{key}.json")

    def get(
        self,
        key: str,
        names: Sequence[str],
        *,
        reference: TrialData,
        settings: JobSettings,
    ) -> BaselineRates | None:
        try:
            cached = store.read_json(self.uri(key))
            rates = BaselineRates(
                float(cached["combined"]),
                {n: float(cached["layers"][n]) for n in names},
                low=float(cached["low"]),
                high=float(cached["high"]),
                splits=int(cached["splits"]),
            )
            claims = (cached["reference"], cached["rows"], cached["digest"])
        except (DataNotFoundError, StorageError, KeyError, TypeError, ValueError):
            return None
        bound = plausible_baseline(settings)
        if (
            claims != (reference.uri, len(reference), reference_digest(reference, names))
            or not all(0.0 <= rate <= bound for rate in (rates.combined, *rates.layers.values()))
            or not (
                0.0 <= rates.low <= rates.combined <= rates.high <= 100.0
                and rates.splits == BASELINE_SPLITS
            )
        ):
            log.warning(
                "the cached baseline %s does not belong to %s or is not a plausible "
                "false-positive rate (at most %.1f%%); it is ignored and recomputed",
                self.uri(key),
                reference.uri,
                bound,
            )
            return None
        return rates

    def put(
        self, key: str, value: BaselineRates, *, reference: TrialData, names: Sequence[str]
    ) -> None:
        document = {
            "combined": value.combined,
            "layers": value.layers,
            "low": value.low,
            "high": value.high,
            "splits": value.splits,
            "reference": reference.uri,
            "rows": len(reference),
            "digest": reference_digest(reference, names),
        }
        try:
            store.write_json(self.uri(key), document, if_absent=True)
        except LadisError as exc:
            log.warning("could not cache the baseline rates at %s: %s", self.uri(key), exc)


def plausible_baseline(settings: JobSettings) -> float:
    """The highest baseline rate (percent) accepted from the cache: a baseline estimates
    the false-positive rate, at most ``alpha`` for an exact test, so its estimate from
    ``R`` repetitions lies below ``alpha + 4·sqrt(alpha(1 - alpha)/R)`` (plus one
    repetition's worth) unless the reference itself is broken."""
    alpha, repeats = settings.alpha, max(1, settings.n_repeats)
    return min(
        100.0, 100.0 * (alpha + 4.0 * math.sqrt(alpha * (1 - alpha) / repeats)) + 100.0 / repeats
    )


def reference_digest(reference: TrialData, names: Sequence[str]) -> str:
    """A digest of the reference rows the baseline is computed on: steps, predicted
    classes and every tested layer."""
    digest = hashlib.sha256()
    for array in (
        reference.steps,
        reference.predicted_class,
        *(reference.layers[n] for n in names),
    ):
        value = np.ascontiguousarray(array)
        digest.update(str((value.dtype.str, value.shape)).encode())
        digest.update(value.data)
    return digest.hexdigest()


def baseline_key(reference: TrialData, names: Sequence[str], settings: JobSettings) -> str:
    """The cache key of the baseline of ``reference`` for ``names`` and ``settings``."""
    steps = reference.steps
    payload = json.dumps(
        {
            "reference": reference.uri,
            "rows": int(steps.shape[0]),
            "steps": [int(steps.min()), int(steps.max())] if steps.size else [],
            "layers": list(names),
            "settings": {k: v for k, v in settings.__dict__.items() if k != "layers"},
            "version": 3,  # 2: entries carry the reference digest; 3: several splits
            "splits": BASELINE_SPLITS,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def baseline_rates(
    reference: TrialData,
    names: Sequence[str],
    settings: JobSettings,
    *,
    cache: BaselineCache | None = None,
    device: str | None = None,
) -> BaselineRates:
    """Baseline detection rates (combined, per layer) of ``reference``: the reference
    split in halves, one half playing the inference window, averaged over
    :data:`BASELINE_SPLITS` splits; from ``cache`` when it has them (and stored there
    otherwise)."""
    key = baseline_key(reference, names, settings)
    if cache is not None:
        cached = cache.get(key, names, reference=reference, settings=settings)
        if cached is not None:
            return cached
    runs = [
        _one_split(reference, names, settings, seed, device)
        for seed in split_seeds(settings.seed, BASELINE_SPLITS)
    ]
    value = average_splits(runs, names)
    if cache is not None:
        cache.put(key, value, reference=reference, names=names)
    return value


def split_seeds(seed: int | None, count: int) -> list[int | None]:
    """The seeds of ``count`` reference splits: the job's seed first (so the first split is
    the one a single-split baseline used), then seeds derived from it."""
    if seed is None:
        return [None] * count
    derived = np.random.SeedSequence([int(seed), 15]).generate_state(count - 1).tolist()
    return [int(seed), *(int(s) for s in derived)]


def average_splits(
    runs: Sequence[tuple[float, dict[str, float]]], names: Sequence[str]
) -> BaselineRates:
    """Mean rates over the splits, with the lowest and highest combined rate."""
    combined = [c for c, _ in runs]
    return BaselineRates(
        combined=float(np.mean(combined)),
        layers={n: float(np.mean([layers[n] for _, layers in runs])) for n in names},
        low=float(min(combined)),
        high=float(max(combined)),
        splits=len(runs),
    )


def _one_split(
    reference: TrialData,
    names: Sequence[str],
    settings: JobSettings,
    seed: int | None,
    device: str | None,
) -> tuple[float, dict[str, float]]:
    """(combined rate, per-layer rates) of one random halving of the reference."""
    from ladis_core import stats

    options = {**stats_options(settings, device), "seed": seed}
    outcome = stats.multi_layer_detection_rate(
        {n: reference.layers[n] for n in names},
        None,
        baseline=True,
        reference_classes=reference.predicted_class if settings.class_matched else None,
        **options,
    )
    return rates(outcome, names)
