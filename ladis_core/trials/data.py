"""What a trial read returns: :class:`TrialData` (one row per sample), the smdebug modes,
and the message for a trial that has no steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ladis_core.errors import InputError

MODES = ("TRAIN", "EVAL", "PREDICT", "GLOBAL")


@dataclass(frozen=True, eq=False)
class TrialData:
    """The tensors of one trial in one mode, one row per sample.

    A step that recorded a batch of k inputs gives k consecutive rows; ``steps`` repeats
    its step number k times. Rows are in step order.

    - ``steps``: int64 ndarray of shape (n,), the mode step of every row.
    - ``layers``: ``{name: float32 ndarray of shape (n, d)}``, each sample's tensor
      flattened (e.g. ``avgpool_output_0`` → (n, 512)), in the order asked for.
    - ``predicted_class``: int64 ndarray of shape (n,), argmax of the model output.
    - ``inputs``: float32 ndarray of shape (n, C, H, W) (the model inputs, in [0, 1] for
      LADIS models), or ``None`` unless asked for.
    - ``output_name``: the model output tensor the classes come from (``ResNet_output_0``).
    """

    uri: str
    mode: str
    steps: np.ndarray
    layers: dict[str, np.ndarray]
    predicted_class: np.ndarray
    inputs: np.ndarray | None = None
    output_name: str = ""
    layer_names: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @property
    def step_count(self) -> int:
        """Number of distinct steps (requests, for an inference trial)."""
        return int(np.unique(self.steps).size)

    @property
    def first_step(self) -> int | None:
        return int(self.steps[0]) if len(self) else None

    @property
    def last_step(self) -> int | None:
        return int(self.steps[-1]) if len(self) else None


def _check_mode(mode: str) -> str:
    text = str(mode).strip().upper()
    if text not in MODES:
        raise InputError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    return text


def _no_steps_message(uri: str, mode: str | None) -> str:
    what = "steps" if mode is None else f"{mode} steps"
    return (
        f"no trial {what} at {uri}: the trial is missing or empty; check the URI (the folder "
        "holding index/ and events/) and that capture has run"
    )
