"""A capture staged locally: steps written into a fresh folder (by smdebug's hook, or by
the native writer of :mod:`~ladis_core.capture.writer`), published to the trial; and the
recovery of steps that a killed capture left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ladis_core import store
from ladis_core._process import host_identity, pid_alive
from ladis_core.capture.folders import new_staging_folder, orphan_candidates
from ladis_core.capture.hooks import (
    _MODES,
    _close_smdebug_hook,
    _detach,
    _generic_tensor_patterns,
    _new_hook,
    _smdebug,
)
from ladis_core.capture.plan import CapturePlan, plan_capture
from ladis_core.capture.publishing import (
    _check_target,
    _clear_target,
    _Publisher,
    _target_has_objects,
)
from ladis_core.errors import CaptureConflictError, InputError, LadisError, StorageError
from ladis_core.progress import ProgressCallback
from ladis_core.trials.meta import Preprocessing, TrialMeta, write_trial_meta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureSummary:
    """What one capture session published.

    ``steps``: number of steps written to ``uri`` in this session; ``first_step`` /
    ``last_step``: their mode steps (``None`` if none); ``tensors``: the tensor names
    each step holds; ``penultimate``: the penultimate layer's tensor (recorded in the
    trial's ``ladis.json``; empty for a hook made without the model).
    """

    uri: str
    mode: str
    steps: int
    first_step: int | None
    last_step: int | None
    tensors: tuple[str, ...]
    penultimate: str = ""


_OWNER_FILE = "owner.json"


#: an owner file is a few dozen bytes; anything bigger is not one
_MAX_OWNER_BYTES = 4096


def _read_owner(root: Path) -> tuple[str, int] | None:
    """(trial URI, pid) from a staging folder's owner file; ``None`` when it has none
    that is usable (a folder still being created, not a capture's, or one written where
    its PID cannot be checked: another container sharing this temp folder)."""
    try:
        with open(root / _OWNER_FILE, "rb") as handle:
            data = handle.read(_MAX_OWNER_BYTES + 1)
        owner = json.loads(data) if len(data) <= _MAX_OWNER_BYTES else None
        if owner.get("host_id", host_identity()) != host_identity():
            return None
        return str(owner["uri"]), int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _recover_orphans(uri: str) -> int:
    """Publish the finished steps that captures into ``uri`` whose process is gone (a
    killed endpoint) left in their staging folders, then remove those folders.

    Only this user's private staging folders are considered (:mod:`.folders`). A step
    is finished once smdebug wrote its index file; a half-written step is dropped. A
    folder that cannot be published (a corrupt index, names that do not fit) is renamed
    ``bad-*`` and kept for inspection; the new capture goes on. Returns the number of
    steps recovered. Runs before a new capture numbers its steps, so they follow the
    recovered ones."""
    recovered = 0
    for root in orphan_candidates():
        owner = _read_owner(root)
        if owner is None or owner[0] != uri or pid_alive(owner[1]):
            continue
        try:
            steps = _Publisher(root / "trial", uri).publish(final=False)
        except CaptureConflictError as exc:
            log.warning("steps left in %s by a stopped capture were not published: %s", root, exc)
            continue
        except LadisError as exc:
            kept = root.with_name("bad-" + root.name)
            with contextlib.suppress(OSError):
                root.rename(kept)
            log.warning(
                "steps left in %s by a stopped capture cannot be published (%s); kept in %s",
                root,
                exc,
                kept,
            )
            continue
        shutil.rmtree(root, ignore_errors=True)
        if steps:
            log.warning(
                "published %d step(s) left in %s by a capture into %s that was stopped "
                "before uploading them",
                steps,
                root,
                uri,
            )
        recovered += steps
    return recovered


class _StagedCapture:
    """A capture writing steps into a staging folder, published to ``out``: through an
    smdebug hook here; subclasses may bring their own writer (:meth:`_open_writer`,
    :meth:`_finish_steps`, :meth:`_stop_writer`)."""

    def __init__(
        self,
        model: nn.Module | None,
        out: str,
        *,
        mode: str,
        layers: Sequence[str],
        save_every: int,
        include_inputs: bool,
        append: bool,
        overwrite: bool = False,
        penultimate: str | None = None,
        input_shape: Sequence[int] | None = None,
        preprocessing: Preprocessing | None = None,
        class_names: Sequence[str] = (),
    ) -> None:
        if mode not in _MODES:
            raise InputError(f"mode={mode!r} is not one of {_MODES}")
        if not isinstance(save_every, int) or save_every < 1:
            raise InputError(f"save_every={save_every!r} must be a positive whole number")
        self.uri = _check_target(out)
        self.mode = mode
        self.model = model
        self.plan: CapturePlan | None = None
        self.meta: TrialMeta | None = None
        if model is not None:
            self.plan = plan_capture(
                model,
                layers=layers,
                include_inputs=include_inputs,
                penultimate=penultimate,
                input_shape=input_shape,
            )
            self.meta = self.plan.meta(model, preprocessing=preprocessing, class_names=class_names)
            self.tensor_names = self.plan.tensor_names
            include_regex = [f"^{re.escape(name)}$" for name in self.tensor_names]
        else:
            # without the model the names cannot be resolved; let smdebug match patterns
            include_regex = _generic_tensor_patterns(layers, include_inputs)
            self.tensor_names = tuple(include_regex)
        start = None
        if store.is_s3(self.uri):
            store.check_bucket(self.uri)
        if append:
            _recover_orphans(self.uri)
            start = _continuation(self.uri, mode)
            if start is not None and start[1] < 0:
                raise InputError(
                    f"{self.uri} holds a trial without {mode} steps (a reference trial?); "
                    f"{mode} capture appends only to a trial of its own mode"
                )
        elif _target_has_objects(self.uri):
            if not overwrite:
                raise InputError(
                    f"{self.uri} already holds a trial; choose a new destination or pass overwrite=True "
                    "(which deletes it first)"
                )
            _clear_target(self.uri)
        if self.meta is not None:
            # what readers and the monitoring job use instead of guessing from names
            write_trial_meta(self.uri, self.meta)
        self._staging_root = new_staging_folder()
        # who stages here: a later capture into the same trial publishes what a killed
        # process left behind (see _recover_orphans)
        (self._staging_root / _OWNER_FILE).write_text(
            json.dumps(
                {"uri": self.uri, "pid": os.getpid(), "host_id": host_identity(), "mode": mode}
            ),
            encoding="utf-8",
        )
        self.staging = self._staging_root / "trial"
        self.publisher = _Publisher(self.staging, self.uri)
        self.closed = False
        self._summary: CaptureSummary | None = None
        self._open_writer(include_regex=include_regex, save_every=save_every, start=start)

    # How steps get into the staging folder; smdebug's hook here (training-time capture),
    # the native writer in ServingCapture.

    def _open_writer(
        self, *, include_regex: Sequence[str], save_every: int, start: tuple[int, int] | None
    ) -> None:
        """Start writing into :attr:`staging`; ``start``: (global step, mode step) of the
        trial's newest step, after which numbering goes on."""
        self.hook = _new_hook(
            self.model,
            self.staging,
            mode=self.mode,
            include_regex=include_regex,
            save_every=save_every,
        )
        if start is not None:
            self._continue_from(*start)
        self.hook._ladis_capture = self

    def _finish_steps(self) -> None:
        """Put every step recorded so far into the staging folder."""
        self.hook._close_writers()

    def _stop_writer(self) -> None:
        """Finish writing and detach from the model."""
        _close_smdebug_hook(self.hook)
        _detach(self.hook, self.model)

    def _continue_from(self, global_step: int, mode_step: int) -> None:
        """Number the next step after the trial's newest (a restarted endpoint)."""
        _, mode_keys, _ = _smdebug()
        hook = self.hook
        hook.init_step = global_step
        hook.step = global_step
        hook.mode_steps = {mode_keys.GLOBAL: global_step}
        hook.set_mode(mode_keys[self.mode])
        hook.mode_steps[mode_keys[self.mode]] = mode_step

    def flush(self, *, progress: ProgressCallback | None = None) -> int:
        """Finish the step being written and publish every finished step; returns the
        number of steps published by this call."""
        if not self.closed:
            self._finish_steps()
        return self.publisher.publish(progress=progress)

    def close(self, *, progress: ProgressCallback | None = None) -> CaptureSummary:
        """Close the hook, detach it from the model and publish everything (idempotent).
        If publishing fails the staging folder is kept and named in the error."""
        if self._summary is not None:
            return self._summary
        if not self.closed:
            self.closed = True
            self._stop_writer()
        try:
            self.publisher.publish(final=True, progress=progress)
        except CaptureConflictError:
            raise  # retrying cannot help; the message names the staging folder
        except LadisError as exc:
            raise StorageError(
                f"{exc} — the captured steps are kept in {self.staging}; close() again to retry"
            ) from None
        shutil.rmtree(self._staging_root, ignore_errors=True)
        self._summary = CaptureSummary(
            uri=self.uri,
            mode=self.mode,
            steps=self.publisher.steps,
            first_step=self.publisher.first_step,
            last_step=self.publisher.last_step,
            tensors=self.tensor_names,
            penultimate=self.meta.penultimate if self.meta is not None else "",
        )
        return self._summary


def _continuation(uri: str, mode: str) -> tuple[int, int] | None:
    """(global step, ``mode`` step) of the newest step already in the trial, if any."""

    from ladis_core.trials.index import _tail_entry

    newest = _tail_entry(uri, mode=None)
    if newest is None:
        return None
    same_mode = newest if newest.mode == mode else _tail_entry(uri, mode=mode)
    return newest.step, (same_mode.mode_step if same_mode is not None else -1)
