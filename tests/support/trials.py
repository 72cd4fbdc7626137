"""Small real trials for tests: a one-layer model named like LADIS's (``ResNet``, whose
``avgpool`` output is the penultimate layer) captured by the real serving capture."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ladis_core import capture


class ResNet(nn.Module):
    """A stand-in classifier that is quick on CPU: (N, 3, H, W) → 4 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_model() -> ResNet:
    torch.manual_seed(0)
    return ResNet().eval()


def write_trial(
    out: str | Path, steps: int, *, first_value: float = 0.0, include_inputs: bool = False
) -> list[int]:
    """Append ``steps`` PREDICT steps to the trial at ``out`` (step ``i`` holds inputs of
    the value ``first_value + i``); returns the steps written."""
    written = []
    with capture.ServingCapture(
        tiny_model(), str(out), include_inputs=include_inputs, upload_interval_s=0
    ) as cap:
        for i in range(steps):
            written.append(cap.record(torch.full((1, 3, 2, 2), first_value + i))[1])
    return written


def index_files(trial: Path) -> list[Path]:
    """The index files of a local trial, in step order."""
    return sorted((trial / "index").rglob("*.json"))


def forge_event_name(index_file: Path, event_file_name: str) -> None:
    """Rewrite one index file so that it names another event file."""
    index = json.loads(index_file.read_text())
    index["meta"]["event_file_name"] = event_file_name
    index_file.write_text(json.dumps(index))
