"""A job's statistics protocol: its settings checked and turned into the options of
:mod:`ladis_core.stats`, and the rates read back out of a multi-layer result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ladis_core.errors import check
from ladis_core.monitoring.results import JobSettings

#: the kernels the statistics engine knows (``ladis_core.stats`` kernel names)
KERNELS = ("multi_rbf", "rbf")


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
    check(
        settings.kernel in KERNELS,
        f"kernel={settings.kernel!r} is not one of {', '.join(KERNELS)}",
    )


def stats_options(settings: JobSettings, device: str | None) -> dict[str, Any]:
    """The keyword options of :func:`ladis_core.stats.multi_layer_detection_rate` that
    ``settings`` stand for (every setting a result records is one the test used)."""
    return {
        "device": device,
        "n_samples": settings.n_samples,
        "n_repeats": settings.n_repeats,
        "alpha": float(settings.alpha),
        "n_permutations": settings.n_permutations,
        "seed": settings.seed,
        "kernel": settings.kernel,
        "standardize": bool(settings.standardize),
    }


def rates(outcome: Any, names: Sequence[str]) -> tuple[float, dict[str, float]]:
    """(combined rate, {layer: rate}) of a MultiLayerResult. With one layer the combined
    rate is that layer's (the max-statistic over one layer is the same test)."""
    per_layer = {n: float(outcome.layers[n].rate) for n in names}
    combined = per_layer[names[0]] if len(names) == 1 else float(outcome.combined.rate)
    return combined, per_layer
