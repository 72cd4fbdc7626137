"""Choosing where torch computes: CPU or a CUDA GPU.

One rule for the whole library (statistics, training, attacks, serving, the demo): a
device is ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``), or ``"auto"`` for CUDA when present;
asking for CUDA on a machine without a GPU is an :class:`InputError`, never a silent
fallback. torch is imported on first use so that light modules (the SageMaker serving
contract) can import this one.
"""

from __future__ import annotations

from typing import Any

from ladis_core.errors import InputError

SUPPORTED_TYPES = ("cpu", "cuda")


def resolve_device(device: Any, *, default: str = "cpu") -> Any:
    """The ``torch.device`` for ``device`` (a string or a ``torch.device``).

    ``None`` means ``default``; ``"auto"`` means CUDA when available, else the CPU.
    """
    import torch

    if device is None:
        device = default
    if isinstance(device, str):
        device = device.strip().lower()
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device must be e.g. 'cpu' or 'cuda'; got {device!r}") from None
    if resolved.type not in SUPPORTED_TYPES:
        raise InputError(f"device must be e.g. 'cpu' or 'cuda'; got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device={device!r} was asked for but CUDA is not available on this machine; use 'cpu'"
        )
    return resolved
