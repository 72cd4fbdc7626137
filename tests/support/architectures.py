"""Classifiers of every family the capture must handle: torchvision's (random weights,
32×32 inputs) and custom models with none of the usual module names."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models


class SmallCNN(nn.Module):
    """No module named avgpool, fc or classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class Wrapped(nn.Module):
    """A wrapper whose only child runs the whole classifier: it is not the head."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = SmallCNN()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * 2 - 1)


class TokenHead(nn.Module):
    """The penultimate tensor is made by a function (mean over tokens), not a module."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 12, 4, stride=4)
        self.mix = nn.Linear(12, 12)
        self.out = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.mix(self.embed(x).flatten(2).transpose(1, 2))
        return self.out(tokens.mean(dim=1))


def seeded(make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` with weights from seed 0, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return make().eval()


# (name, builder, penultimate tensor, head, values per input)
ARCHITECTURES = [
    ("resnet18", lambda: models.resnet18(num_classes=10), "avgpool_output_0", "fc", 512),
    (
        "mobilenet_v3_small",
        lambda: models.mobilenet_v3_small(num_classes=10),
        "avgpool_output_0",
        "classifier",
        576,
    ),
    (
        "efficientnet_b0",
        lambda: models.efficientnet_b0(num_classes=10),
        "avgpool_output_0",
        "classifier",
        1280,
    ),
    (
        "convnext_tiny",
        lambda: models.convnext_tiny(num_classes=10),
        "avgpool_output_0",
        "classifier",
        768,
    ),
    (
        "vit_b_16",
        lambda: models.vit_b_16(num_classes=10, image_size=32),
        "heads_input_0",
        "heads",
        768,
    ),
    ("custom_cnn", SmallCNN, "pool_output_0", "head", 16),
    ("wrapped_cnn", Wrapped, "inner.pool_output_0", "inner.head", 16),
    ("token_head", TokenHead, "out_input_0", "out", 12),
]
