"""Cheap real trials for fleet tests: captured once by the project's capture, then
copied into as many endpoints as a test wants, one window of requests at a time.

The model is a small seeded convolutional classifier named like LADIS's (``ResNet``,
whose ``avgpool`` output is the penultimate layer), so capture and monitoring treat it
as they treat a ResNet, at a fraction of the cost; the images are 8×8 digits.

- the reference: 240 natural digits in 6 EVAL steps;
- the requests: windows of ``WINDOW`` natural digits (clean) or noisy ones (shifted),
  ``PER_REQUEST`` images per PREDICT step (a client sending batches), in one local
  inference trial whose steps are uploaded window by window (event files first, then
  index files, as capture does).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladis_core import store
from ladis_core.fleet.config import parse_config
from ladis_core.monitoring.results import JobSettings

WINDOW = 30  # rows (images) per window
PER_REQUEST = 5  # images per request: a window is 6 PREDICT steps
N, R, B = 20, 20, 200  # quick settings: a window takes well under a second
SETTINGS = JobSettings(n_samples=N, n_repeats=R, n_permutations=B, seed=0)


@dataclass(frozen=True)
class FleetTrials:
    """A local reference trial and a local inference trial whose steps are windows:
    ``clean[k]`` / ``shifted[k]`` are the step ranges of clean / shifted window k."""

    reference: Path
    inference: Path
    clean: tuple[range, ...]
    shifted: tuple[range, ...]


def build_trials(root: Path, *, pattern: str = "CCSSCCC", window: int = WINDOW) -> FleetTrials:
    """Capture the reference and one window of requests per letter of ``pattern``
    (``C`` clean, ``S`` shifted) of ``window`` images, in that order: an endpoint given
    windows in step order sees them as successive hours of traffic."""
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    import torch

    from ladis_core.capture import ServingCapture, capture_reference
    from ladis_core.model.data import digits_dataset

    images = digits_dataset(size=8, channels=3).images.astype(np.float32)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(images))
    reference = images[order[:240]]
    windows, clean, shifted, steps = [], [], [], window // PER_REQUEST
    for k, letter in enumerate(pattern):
        # digits repeat once the 1,557 left over are used up (a long benchmark's traffic)
        rows = images[order[240 + (np.arange(k * window, (k + 1) * window) % (len(order) - 240))]]
        if letter == "S":
            rows = np.clip(rows + rng.normal(0, 0.5, rows.shape), 0, 1).astype(np.float32)
        windows.append(rows)
        (shifted if letter == "S" else clean).append(range(k * steps, (k + 1) * steps))
    trials = FleetTrials(root / "reference", root / "inference", tuple(clean), tuple(shifted))
    model = small_model()
    batches = [torch.from_numpy(reference[i : i + 40]) for i in range(0, 240, 40)]
    capture_reference(model, batches, str(trials.reference), layers=[], include_inputs=False)
    with ServingCapture(
        model, str(trials.inference), include_inputs=False, upload_interval_s=0
    ) as cap:
        requests = np.concatenate(windows)
        for start in range(0, len(requests), PER_REQUEST):
            cap.record(torch.from_numpy(requests[start : start + PER_REQUEST]))
    return trials


def small_model():
    """A seeded (N, 3, H, W) → 10 classifier whose penultimate layer is ``avgpool``."""
    import torch
    from torch import nn

    class ResNet(nn.Module):  # named like LADIS's model, so the tensor names match
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
            self.relu = nn.ReLU()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.avgpool(self.relu(self.conv1(x))), 1))

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ResNet().eval()


def _step_of(relative: str) -> int | None:
    if not relative.startswith(("events/", "index/")):
        return None
    head = relative.rsplit("/", 1)[-1].split("_", 1)[0]
    return int(head) if head.isdigit() else None


def upload(local: Path, uri: str, steps: range | None = None) -> None:
    """Copy a local trial (or only the global ``steps``) to ``uri``: event files first,
    then index files, then the rest."""
    chosen = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        relative = path.relative_to(local).as_posix()
        step = _step_of(relative)
        if steps is None or step is None or step in steps:
            chosen.append((relative, path))
    with ThreadPoolExecutor(8) as pool:
        for prefix in ("events/", "index/", ""):
            batch = [
                (r, p)
                for r, p in chosen
                if r.startswith(prefix) and (prefix or not r.startswith(("events/", "index/")))
            ]
            list(
                pool.map(lambda rp: store.write_bytes(f"{uri}/{rp[0]}", rp[1].read_bytes()), batch)
            )


def endpoint_names(count: int) -> list[str]:
    return [f"ep{k}" for k in range(count)]


def fleet_toml(
    world: str, names: list[str], *, extra: str = "", settings: JobSettings = SETTINGS
) -> str:
    """A fleet.toml over ``world``'s layout for ``names`` with quick test settings."""
    lines = [
        "[fleet]",
        f'world = "{world}"',
        'every = "1h"',
        'retry_backoff = "0.2s"',
        "",
        "[defaults]",
        f"n_samples = {settings.n_samples}",
        f"n_repeats = {settings.n_repeats}",
        f"n_permutations = {settings.n_permutations}",
        "",
    ]
    for name in names:
        lines += ["[[endpoint]]", f'name = "{name}"', ""]
    return "\n".join(lines) + extra


def parse(text: str):
    return parse_config(text, source="fleet.toml")
