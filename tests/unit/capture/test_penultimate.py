"""The penultimate layer of any classifier, found by a forward pass and recorded in the
trial: torchvision's families (random weights, 32×32 inputs) and custom models with none
of their module names. Each capture is read back by LADIS and by smdebug's own reader."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import models

from ladis_core import trials
from ladis_core.capture import capture_reference
from ladis_core.capture.penultimate import find_penultimate
from ladis_core.errors import InputError


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


def _seeded(make):
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


@pytest.mark.parametrize(
    ("name", "make", "tensor", "head", "width"), ARCHITECTURES, ids=[a[0] for a in ARCHITECTURES]
)
def test_penultimate_layer_is_found_recorded_and_read(name, make, tensor, head, width, tmp_path):
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    model = _seeded(make)
    found = find_penultimate(model, input_shape=(3, 32, 32))
    assert (found.tensor, found.head) == (tensor, head)
    images = torch.rand((6, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    out = tmp_path / "reference"
    summary = capture_reference(model, [images[:3], images[3:]], str(out), include_inputs=True)
    assert summary.penultimate == tensor and summary.steps == 2
    meta = trials.trial_meta(str(out))
    assert meta is not None and (meta.penultimate, meta.head) == (tensor, head)
    assert meta.output == f"{model._get_name()}_output_0" and meta.input_shape == (3, 32, 32)

    data = trials.load_trial(str(out), mode="EVAL", include_inputs=True)  # no layer named
    assert list(data.layers) == [tensor]
    assert data.layers[tensor].shape == (6, width)
    with torch.no_grad():
        expected = model(images).argmax(dim=1).numpy()
    np.testing.assert_array_equal(data.predicted_class, expected)
    np.testing.assert_allclose(data.inputs, images.numpy(), atol=1e-6)
    assert trials.default_layer(str(out), mode="EVAL") == tensor

    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    theirs = create_trial(str(out))
    first = theirs.tensor(tensor).value(0, mode=ModeKeys.EVAL)
    np.testing.assert_allclose(first.reshape(3, -1), data.layers[tensor][:3], rtol=1e-6)


def test_the_penultimate_module_can_be_named_and_bad_names_are_listed(tmp_path):
    model = _seeded(SmallCNN)
    out = tmp_path / "named"
    images = torch.rand((4, 3, 16, 16), generator=torch.Generator().manual_seed(2))
    summary = capture_reference(model, [images], str(out), penultimate="features.3")
    assert summary.penultimate == "features.3_output_0"
    meta = trials.trial_meta(str(out))
    assert meta is not None and not meta.detected
    assert trials.load_trial(str(out), mode="EVAL").layers["features.3_output_0"].shape == (
        4,
        16 * 16 * 16,
    )
    with pytest.raises(InputError, match=r"'avgpool' is not a module of SmallCNN.*features, "):
        capture_reference(model, [images], str(tmp_path / "bad"), penultimate="avgpool")
    assert not (tmp_path / "bad").exists()  # nothing written


def test_models_that_are_not_classifiers_are_refused():
    with pytest.raises(InputError, match=r"does not return logits of shape \(batch, classes\)"):
        find_penultimate(_seeded(lambda: nn.Conv2d(3, 4, 3)), input_shape=(3, 8, 8))
    with pytest.raises(InputError, match="does not accept input of shape"):
        find_penultimate(_seeded(SmallCNN), input_shape=(1, 8, 8))
    flat = _seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)))
    assert find_penultimate(flat).input_shape == (3, 8, 8)  # guessed: the only size it takes
