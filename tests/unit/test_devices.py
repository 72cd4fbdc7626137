"""One device rule for the whole library (ladis_core.devices)."""

from __future__ import annotations

import pytest
import torch

from ladis_core.devices import resolve_device
from ladis_core.errors import InputError


def test_none_means_the_default_and_auto_follows_the_hardware():
    assert resolve_device(None) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None, default="auto").type == expected
    assert resolve_device(" AUTO ").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("device", ["tpu:7", "mps", "banana"])
def test_unsupported_devices_are_named(device):
    with pytest.raises(InputError, match=f"got '{device}'"):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_an_error_not_a_fallback():
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda")
