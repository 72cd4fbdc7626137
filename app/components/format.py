"""How numbers, times, classes, verdicts and provenance read on every page."""

from __future__ import annotations

from ladis_core.model.labels import epsilon_label
from ladis_core.monitoring.results import STATUS_OK, JobResult
from ladis_core.store import layout

#: colours used consistently across pages (colour-blind safe Okabe–Ito hues)
COLOURS = {
    "detection": "#0072B2",
    "baseline": "#7F7F7F",
    "threshold": "#D55E00",
    "incident": "#D55E00",
    "requests": "#B7C4CF",
    "natural": "#56B4E9",
    "suspect": "#D55E00",
    "inference": "#009E73",
    "selected": "#CC79A7",
}


def fmt_rate(value: float | None) -> str:
    """A 0–100 rate as ``"84 %"`` (``"—"`` when the window could not be tested)."""
    return "—" if value is None else f"{value:.0f} %"


def fmt_p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def fmt_share(share) -> str:
    """A share estimate's interval as ``"14–31 %"`` (``"—"`` when there is none)."""
    if share is None or not share.n_inputs:
        return "—"
    low, high = round(100 * share.low), round(100 * share.high)
    return f"{low} %" if low == high else f"{low}–{high} %"


def fmt_time(iso: str) -> str:
    """``2026-11-23T17:00:00+00:00`` → ``23 Nov 2026, 17:00 UTC`` (unchanged if unparsable)."""
    try:
        moment = layout.parse_time(iso)
    except (ValueError, AttributeError, TypeError):
        return str(iso)
    return moment.strftime("%d %b %Y, %H:%M UTC")


def class_label(job: JobResult, cls: int | None) -> str:
    if cls is None:
        return "—"
    name = job.class_names.get(str(cls))
    return f"{name} ({cls})" if name and name != str(cls) else str(cls)


def verdict_label(verdict: object | None) -> str:
    if verdict is None:
        return ""
    return {"confirmed": "confirmed", "dismissed": "dismissed", "needs-review": "needs review"}.get(
        getattr(verdict, "verdict", ""), str(getattr(verdict, "verdict", ""))
    )


def job_status(job: JobResult) -> str:
    if job.status != STATUS_OK:
        return "Not tested"
    return "Incident" if job.incident else "Normal"


def attack_label(sample) -> str:
    """What the recorded provenance says about a flagged input ("" when unknown)."""
    record = getattr(sample, "provenance", None) or {}
    attack = record.get("attack")
    if attack is None:
        return ""
    if attack == "none":
        return "natural"
    eps = record.get("epsilon")
    if not eps:
        return str(attack)
    return f"{attack} ε={epsilon_label(float(eps))}"
