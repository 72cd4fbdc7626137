"""The penultimate layer of any classifier, found by a forward pass and recorded in the
trial: torchvision's families (random weights, 32×32 inputs) and custom models with none
of their module names. Each capture is read back by LADIS and by smdebug's own reader."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from ladis_core import trials
from ladis_core.capture import capture_reference
from ladis_core.capture.penultimate import find_penultimate
from ladis_core.errors import InputError
from tests.support.architectures import ARCHITECTURES, SmallCNN, seeded


@pytest.mark.parametrize(
    ("name", "make", "tensor", "head", "width"), ARCHITECTURES, ids=[a[0] for a in ARCHITECTURES]
)
def test_penultimate_layer_is_found_recorded_and_read(name, make, tensor, head, width, tmp_path):
    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    model = seeded(make)
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
    model = seeded(SmallCNN)
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
        find_penultimate(seeded(lambda: nn.Conv2d(3, 4, 3)), input_shape=(3, 8, 8))
    with pytest.raises(InputError, match="does not accept input of shape"):
        find_penultimate(seeded(SmallCNN), input_shape=(1, 8, 8))
    flat = seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)))
    assert find_penultimate(flat).input_shape == (3, 8, 8)  # guessed: the only size it takes
