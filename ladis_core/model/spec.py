"""The classifier LADIS watches: architecture, saving and loading.

The model directory layout (``model.pt`` state dict + ``model.json`` spec) is what the
serving endpoint's ``model_fn(model_dir)`` loads, locally or from
``layout.model_uri(world, endpoint)`` in S3 (the same layout a SageMaker ``model.tar.gz``
unpacks to). Inputs are images in [0, 1] of shape (N, C, H, W); normalisation is the
model's first module, so attacks and captures work in pixel space.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ladis_core.errors import DataNotFoundError, InputError

ARCHITECTURES = ("resnet18_small", "resnet18")
SPEC_NAME = "model.json"
WEIGHTS_NAME = "model.pt"


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a trained model and interpret its outputs."""

    architecture: str = "resnet18_small"
    num_classes: int = 10
    input_shape: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"architecture={self.architecture!r} is not one of {ARCHITECTURES}")
        if len(self.input_shape) != 3:
            raise InputError(f"input_shape={self.input_shape!r} must be (channels, height, width)")
        channels = self.input_shape[0]
        if len(self.mean) != channels or len(self.std) != channels:
            raise InputError(f"mean/std need {channels} values (one per channel)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, *, source: str = SPEC_NAME) -> ModelSpec:
        try:
            data = json.loads(text)
            data["input_shape"] = tuple(data["input_shape"])
            data["mean"] = tuple(data["mean"])
            data["std"] = tuple(data["std"])
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source} is not a valid model spec ({exc})") from None


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a module, so the model accepts [0, 1] pixels."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ResNet(nn.Module):
    """A torchvision ResNet18 behind a normalisation layer.

    The class is named ``ResNet`` on purpose: smdebug names the model output
    ``ResNet_output_0`` after it, as in SageMaker's own examples. Sub-module names are those
    of torchvision (``layer1.0``, …, ``avgpool``, ``fc``) so layer regexes carry over.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=spec.num_classes)
        if spec.input_shape[0] != 3:
            net.conv1 = nn.Conv2d(
                spec.input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False
            )
        if spec.architecture == "resnet18_small":
            # 32×32 inputs: a 7×7/2 stem plus max-pool would leave 8×8 maps after the stem
            net.conv1 = nn.Conv2d(
                spec.input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False
            )
            net.maxpool = nn.Identity()
        self.normalize = Normalize(spec.mean, spec.std)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.avgpool, self.fc = net.avgpool, net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for ``spec`` (weights from torch's default init)."""
    return ResNet(spec)


def save_model(model: nn.Module, spec: ModelSpec, directory: str | Path) -> Path:
    """Write ``model.pt`` and ``model.json`` into ``directory``; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / WEIGHTS_NAME)
    (directory / SPEC_NAME).write_text(spec.to_json())
    return directory


def load_model(
    directory: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Load a model saved by :func:`save_model`, in eval mode on ``device``."""
    directory = Path(directory)
    spec_path, weights_path = directory / SPEC_NAME, directory / WEIGHTS_NAME
    if not spec_path.is_file() or not weights_path.is_file():
        raise DataNotFoundError(f"no model in {directory}: expected {SPEC_NAME} and {WEIGHTS_NAME}")
    spec = ModelSpec.from_json(spec_path.read_text(), source=str(spec_path))
    model = build_model(spec)
    try:
        state = torch.load(weights_path, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, EOFError, OSError) as exc:
        raise InputError(
            f"{weights_path} does not hold weights for {spec.architecture}: {exc}"
        ) from None
    return model.to(device).eval(), spec
