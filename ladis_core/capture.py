"""Recording what the model sees and computes, with SageMaker Debugger (smdebug) hooks.

Two captures write smdebug trials (:mod:`ladis_core.trials` reads them):

- **Reference** (EVAL mode): :class:`EvalCapture` around validation passes during or
  after training, or :func:`capture_reference` over a set of batches; every
  ``save_every``-th forward pass in EVAL mode is one step.
- **Inference** (PREDICT mode): :class:`ServingCapture`, one step per request, safe to
  call from concurrent request threads (a lock around forward pass + step).

Both save, as smdebug names them for ``ladis_core.models.ResNet``::

    ResNet_input_0        the input batch, (k, C, H, W) in [0, 1]  (include_inputs=True)
    layer1.0_output_0     chosen intermediate layers, e.g. RESIDUAL_BLOCKS gives
    ...                   layer1.0, layer1.1, ..., layer4.1 (8 residual block outputs)
    layer4.1_output_0
    avgpool_output_0      the penultimate layer, (k, 512, 1, 1)    (always)
    ResNet_output_0       the logits, (k, classes)                  (always)

``layers`` are regular expressions over the model's module names as PyTorch lists them
(``model.named_modules()``), each matching a whole name (``layer[1-4]\\.[01]``,
``layer3.1``), or smdebug-style tensor regexes containing ``_output`` (``.*avgpool_output``).
They are resolved against the model when the hook is attached, so a pattern that matches
nothing is an :class:`~ladis_core.errors.InputError` listing the modules, and the hook
then includes exactly those tensor names (a loose regex would also match parameters such
as ``ResNet_layer1.0.conv1.weight``, which smdebug offers to every collection).

**Where it writes.** smdebug writes into a fresh local staging folder, and finished steps
are copied to the trial (``s3://`` or a local folder) through :mod:`ladis_core.store`:
event files first (in parallel), then index files in step order, so a reader never sees
a step before its tensors. This instead of smdebug's own S3 writer because that writer
puts two objects synchronously inside every forward pass, raises at interpreter exit
unless closed, and refuses a prefix that already exists, while a restarted endpoint must
go on appending to its trial: :class:`ServingCapture` continues after the trial's last
step. Serving uploads in a background thread every ``upload_interval_s`` seconds and on
:meth:`ServingCapture.flush` / ``close``.

Hooks are detached from the model on close (smdebug keeps no handles), so a model can be
captured again, and smdebug's exit handler is unregistered so nothing runs at exit.

**Nothing lost, nothing interleaved.** A staging folder names its trial and process; a
new capture appending to a trial first publishes the finished steps that a killed
process left in its staging folder. Step files are created only if absent, so a second
endpoint capturing into the same trial is stopped with :class:`CaptureConflictError`
instead of overwriting steps.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ladis_core import store
from ladis_core._process import pid_alive
from ladis_core.errors import InputError, LadisError, StorageError
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger(__name__)

#: the outputs of every residual block of a ResNet18 (8 layers)
RESIDUAL_BLOCKS: tuple[str, ...] = (r"layer[1-4]\.[01]",)
#: the module whose output is the penultimate layer (``avgpool_output_0``)
PENULTIMATE_MODULE = "avgpool"
#: the staged upload of event files uses this many threads
UPLOAD_WORKERS = 16

_MODES = ("TRAIN", "EVAL", "PREDICT")


class CaptureClosedError(LadisError):
    """A request reached a capture that has been closed."""


class CaptureConflictError(LadisError):
    """Another writer published a different step under the same name in the trial (two
    endpoints capturing to one URI): publishing stops so neither trial is corrupted."""


@dataclass(frozen=True)
class CaptureSummary:
    """What one capture session published.

    ``steps``: number of steps written to ``uri`` in this session; ``first_step`` /
    ``last_step``: their mode steps (``None`` if none); ``tensors``: the tensor names
    each step holds.
    """

    uri: str
    mode: str
    steps: int
    first_step: int | None
    last_step: int | None
    tensors: tuple[str, ...]


# --------------------------------------------------------------------------- smdebug


@functools.cache
def _smdebug() -> Any:
    """Import smdebug once, quietly (its INFO log lists every parameter of the model)."""
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    import smdebug.pytorch as smd
    from smdebug.core.modes import ModeKeys

    class LadisHook(smd.Hook):
        """smdebug's PyTorch hook, with two changes:

        - no per-parameter gradient hooks (LADIS never saves gradients, and those hooks
          could not be removed again);
        - when ``ladis_gated``, only forward passes on the thread in ``ladis_thread``
          are seen (serving: a step is a request taken through the capture's lock, never
          a forward pass some other code makes on the same model meanwhile).
        """

        ladis_gated = False
        ladis_thread: int | None = None

        def _ladis_sees(self) -> bool:
            return not self.ladis_gated or threading.get_ident() == self.ladis_thread

        def _backward_apply(self, module: nn.Module) -> None:
            return None

        def forward_pre_hook(self, module: nn.Module, inputs: Any) -> None:
            if self._ladis_sees():
                super().forward_pre_hook(module, inputs)

        def forward_hook(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
            if self._ladis_sees():
                super().forward_hook(module, inputs, outputs)

        def fhook(self, module: nn.Module, inputs: Any, outputs: Any) -> None:
            if self._ladis_sees():
                super().fhook(module, inputs, outputs)

    return smd, ModeKeys, LadisHook


def capture_tensor_names(
    model: nn.Module,
    *,
    layers: Sequence[str] = (),
    include_inputs: bool = True,
    penultimate: str = PENULTIMATE_MODULE,
) -> list[str]:
    """The tensor names a capture of ``model`` saves in every step (see the module
    docstring), in forward order as far as module order tells it."""
    top = model._get_name()
    module_names = [name for name, _ in model.named_modules() if name]
    chosen: list[str] = []
    for pattern in [penultimate, *layers]:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise InputError(
                f"layer pattern {pattern!r} is not a regular expression ({exc})"
            ) from None
        if "_output" in pattern or "_input" in pattern:
            hits = [n for n in module_names if regex.search(f"{n}_output_0")]
        else:
            hits = [n for n in module_names if regex.fullmatch(n)]
        if not hits:
            shown = ", ".join(module_names[:60]) + (" …" if len(module_names) > 60 else "")
            what = "the penultimate layer module" if pattern == penultimate else "layer pattern"
            raise InputError(
                f"{what} {pattern!r} matches no module of {top}; module names: {shown}"
            )
        chosen.extend(hits)
    ordered = [n for n in module_names if n in set(chosen)]
    names = [f"{n}_output_0" for n in ordered] + [f"{top}_output_0"]
    if include_inputs:
        names.insert(0, f"{top}_input_0")
    return names


def _new_hook(
    model: nn.Module | None,
    out_dir: Path,
    *,
    mode: str,
    include_regex: Sequence[str],
    save_every: int,
) -> Any:
    smd, mode_keys, hook_class = _smdebug()
    never = {m: smd.SaveConfigMode(start_step=0, end_step=0) for m in mode_keys}
    never[mode_keys[mode]] = smd.SaveConfigMode(save_interval=save_every)
    hook = hook_class(
        out_dir=str(out_dir),
        save_config=smd.SaveConfig(mode_save_configs=never),
        include_regex=list(include_regex),
        include_collections=["default"],
    )
    if model is not None:
        hook.register_module(model)
    hook.set_mode(mode_keys[mode])
    return hook


def _detach(hook: Any, model: nn.Module | None) -> None:
    """Remove ``hook``'s forward hooks from ``model`` (smdebug registers them without
    keeping handles)."""
    if model is None:
        return
    for module in model.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key in [k for k, fn in hooks.items() if getattr(fn, "__self__", None) is hook]:
                del hooks[key]
                for extra in (
                    "_forward_hooks_with_kwargs",
                    "_forward_hooks_always_called",
                    "_forward_pre_hooks_with_kwargs",
                ):
                    getattr(module, extra, {}).pop(key, None)


def _close_smdebug_hook(hook: Any) -> None:
    hook.close()
    # smdebug registered hook._cleanup with atexit; after close it would only write a
    # stray end-of-job file (into a staging folder that is gone, or S3 at exit)
    atexit.unregister(hook._cleanup)


# --------------------------------------------------------------------------- publishing


class _Publisher:
    """Copies finished steps from a staging folder to the trial at ``target``.

    A step is finished when smdebug has written its index file (it closes the event file
    first and renames both into place). Event files go first, in parallel; index files
    follow in step order; both are then removed from staging.

    Step files are created only if absent (S3 ``If-None-Match: *``). An object already
    there with the same bytes is this publisher's own earlier, interrupted attempt; one
    with other bytes (event files carry wall-clock times) means a second writer numbers
    steps in the same trial, and :class:`CaptureConflictError` is raised, leaving the
    unpublished steps in staging.
    """

    def __init__(self, staging: Path, target: str) -> None:
        self.staging = staging
        self.target = target.rstrip("/")
        self.lock = threading.Lock()
        self.steps = 0
        self.first_step: int | None = None
        self.last_step: int | None = None
        self._published_meta: dict[str, int] = {}

    def _uri(self, relative: str) -> str:
        return layout.join(self.target, relative)

    def publish(self, *, final: bool = False, progress: ProgressCallback | None = None) -> int:
        """Publish every finished step (and, with ``final``, the collections and
        end-of-job files); returns the number of steps published."""
        with self.lock:
            index_files = []
            index_root = self.staging / "index"
            if index_root.is_dir():
                for path in index_root.rglob("*.json"):
                    step_text = path.name.partition("_")[0]
                    if step_text.isdigit():
                        index_files.append((int(step_text), path))
            index_files.sort()
            steps = []
            for _step, path in index_files:
                meta = json.loads(path.read_bytes())["meta"]
                steps.append((path, self.staging / meta["event_file_name"], int(meta["mode_step"])))
            total = len(steps)
            report(progress, "upload", 0, total)
            if steps:
                self._create_many([event for _, event, _ in steps])
                for position, (index, event, mode_step) in enumerate(steps, 1):
                    self._create(index)
                    index.unlink()
                    event.unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        event.parent.rmdir()
                    self.steps += 1
                    self.first_step = mode_step if self.first_step is None else self.first_step
                    self.last_step = mode_step
                    report(progress, "upload", position, total)
            extras = [self.staging / "training_job_end.ts"] if final else []
            collections = self.staging / "collections"
            if collections.is_dir():
                extras.extend(collections.rglob("*.json"))
            for path in extras:
                if path.is_file():
                    stamp = path.stat().st_mtime_ns
                    key = path.relative_to(self.staging).as_posix()
                    if self._published_meta.get(key) != stamp:
                        self._put(path)
                        self._published_meta[key] = stamp
            return total

    def _put(self, path: Path) -> None:
        store.write_bytes(self._uri(path.relative_to(self.staging).as_posix()), path.read_bytes())

    def _create(self, path: Path) -> None:
        uri = self._uri(path.relative_to(self.staging).as_posix())
        data = path.read_bytes()
        if not store.write_bytes(uri, data, if_absent=True) and store.read_bytes(uri) != data:
            raise CaptureConflictError(
                f"{uri} was already written by another process: two endpoints are capturing into "
                f"the trial {self.target}. Capture stopped (unpublished steps stay in {self.staging}); "
                "give each endpoint its own capture URI"
            )

    def _create_many(self, paths: list[Path]) -> None:
        if len(paths) == 1:
            self._create(paths[0])
            return
        with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(paths))) as pool:
            for future in [pool.submit(self._create, p) for p in paths]:
                future.result()


def _check_target(out: str) -> str:
    text = str(out).strip()
    if not text:
        raise InputError("the capture destination is empty; give an s3:// URI or a local folder")
    if store.is_s3(text):
        bucket, key = store.split_s3(text)
        if not key.strip("/"):
            raise InputError(
                f"capture destination {text!r} is a bare bucket; name a prefix (s3://{bucket}/trials/x)"
            )
    return text.rstrip("/")


def _target_has_objects(target: str) -> bool:
    return next(iter(store.iter_objects(target)), None) is not None


def _clear_target(target: str) -> None:
    uris = [info.uri for info in store.iter_objects(target)]
    if uris:
        with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(uris))) as pool:
            list(pool.map(store.delete, uris))


# --------------------------------------------------------------------------- contract-level hooks


def training_hook(
    out: str,
    *,
    model: nn.Module | None = None,
    layers: Sequence[str] = (),
    save_every: int = 1,
    include_inputs: bool = True,
    overwrite: bool = False,
) -> Any:
    """An smdebug hook saving EVAL-mode steps (every ``save_every``-th forward pass in
    EVAL mode) into the trial ``out``; registered on ``model`` when given (otherwise call
    ``hook.register_module(model)`` yourself: layer names are then not checked).

    Switch modes with ``hook.set_mode(smdebug.modes.TRAIN / EVAL)``; finish with
    :func:`close_hook` (which publishes to ``out``). Prefer :class:`EvalCapture`.
    """
    capture = EvalCapture(
        model,
        out,
        layers=layers,
        save_every=save_every,
        include_inputs=include_inputs,
        overwrite=overwrite,
    )
    return capture.hook


def serving_hook(
    out: str,
    *,
    model: nn.Module | None = None,
    layers: Sequence[str] = (),
    include_inputs: bool = True,
) -> Any:
    """An smdebug hook saving every forward pass as a PREDICT step, appended to the trial
    ``out``; finish with :func:`close_hook`. Not thread-safe by itself: serve through
    :class:`ServingCapture`, which adds the lock and the periodic upload."""
    capture = _StagedCapture(
        model,
        out,
        mode="PREDICT",
        layers=layers,
        save_every=1,
        include_inputs=include_inputs,
        append=True,
    )
    return capture.hook


def close_hook(hook: Any) -> CaptureSummary | None:
    """Close a hook made by :func:`training_hook` / :func:`serving_hook` (publishing
    what it staged), or any smdebug hook (closing it and unregistering its exit handler).
    Safe to call twice."""
    capture = getattr(hook, "_ladis_capture", None)
    if capture is not None:
        return capture.close()
    _close_smdebug_hook(hook)
    return None


# --------------------------------------------------------------------------- captures


_STAGING_PREFIX = "ladis-capture-"
_OWNER_FILE = "owner.json"


def _recover_orphans(uri: str) -> int:
    """Publish the finished steps that captures into ``uri`` whose process is gone (a
    killed endpoint) left in their staging folders, then remove those folders.

    A step is finished once smdebug wrote its index file; a half-written step is
    dropped. Returns the number of steps recovered. Runs before a new capture numbers
    its steps, so they follow the recovered ones."""
    recovered = 0
    for root in sorted(Path(tempfile.gettempdir()).glob(_STAGING_PREFIX + "*")):
        try:
            owner = json.loads((root / _OWNER_FILE).read_text(encoding="utf-8"))
            pid = int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a capture's staging folder, or one still being created
        if owner.get("uri") != uri or pid_alive(pid):
            continue
        try:
            steps = _Publisher(root / "trial", uri).publish(final=False)
        except LadisError as exc:
            log.warning(
                "steps left in %s by a stopped capture could not be published: %s", root, exc
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
    """An smdebug hook writing into a staging folder, published to ``out``."""

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
    ) -> None:
        if mode not in _MODES:
            raise InputError(f"mode={mode!r} is not one of {_MODES}")
        if not isinstance(save_every, int) or save_every < 1:
            raise InputError(f"save_every={save_every!r} must be a positive whole number")
        self.uri = _check_target(out)
        self.mode = mode
        self.model = model
        if model is not None:
            self.tensor_names = tuple(
                capture_tensor_names(model, layers=layers, include_inputs=include_inputs)
            )
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
        self._staging_root = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX))
        # who stages here: a later capture into the same trial publishes what a killed
        # process left behind (see _recover_orphans)
        (self._staging_root / _OWNER_FILE).write_text(
            json.dumps({"uri": self.uri, "pid": os.getpid(), "mode": mode}), encoding="utf-8"
        )
        self.staging = self._staging_root / "trial"
        self.publisher = _Publisher(self.staging, self.uri)
        self.closed = False
        self._summary: CaptureSummary | None = None
        self.hook = _new_hook(
            model, self.staging, mode=mode, include_regex=include_regex, save_every=save_every
        )
        if start is not None:
            self._continue_from(*start)
        self.hook._ladis_capture = self

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
            self.hook._close_writers()
        return self.publisher.publish(progress=progress)

    def close(self, *, progress: ProgressCallback | None = None) -> CaptureSummary:
        """Close the hook, detach it from the model and publish everything (idempotent).
        If publishing fails the staging folder is kept and named in the error."""
        if self._summary is not None:
            return self._summary
        if not self.closed:
            self.closed = True
            _close_smdebug_hook(self.hook)
            _detach(self.hook, self.model)
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
        )
        return self._summary


def _generic_tensor_patterns(layers: Sequence[str], include_inputs: bool) -> list[str]:
    """Tensor regexes for a hook made without the model (names cannot be checked)."""
    patterns = [
        r"^(?:.*\.)?" + re.escape(PENULTIMATE_MODULE) + r"_output_0$",
        r"^[A-Z][A-Za-z0-9]*_output_0$",
    ]
    for layer in layers:
        patterns.append(
            layer if ("_output" in layer or "_input" in layer) else f"^(?:{layer})_output_0$"
        )
    if include_inputs:
        patterns.append(r"^[A-Z][A-Za-z0-9]*_input_0$")
    return patterns


def _continuation(uri: str, mode: str) -> tuple[int, int] | None:
    """(global step, ``mode`` step) of the newest step already in the trial, if any."""

    from ladis_core.trials.index import _tail_entry

    newest = _tail_entry(uri, mode=None)
    if newest is None:
        return None
    same_mode = newest if newest.mode == mode else _tail_entry(uri, mode=mode)
    return newest.step, (same_mode.mode_step if same_mode is not None else -1)


class EvalCapture(_StagedCapture):
    """Reference capture: saves every ``save_every``-th forward pass in EVAL mode.

    ::

        with EvalCapture(model, "s3://ladis/trials/digits/reference", layers=RESIDUAL_BLOCKS) as cap:
            for epoch in range(epochs):
                cap.set_mode("TRAIN"); train_one_epoch(model)     # nothing saved
                cap.set_mode("EVAL");  validate(model)            # saved
        print(cap.summary)

    The destination must not hold a trial yet (``overwrite=True`` deletes it first).
    Steps are published on :meth:`flush` and on close.
    """

    def __init__(
        self,
        model: nn.Module | None,
        out: str,
        *,
        layers: Sequence[str] = (),
        save_every: int = 1,
        include_inputs: bool = True,
        overwrite: bool = False,
    ) -> None:
        super().__init__(
            model,
            out,
            mode="EVAL",
            layers=layers,
            save_every=save_every,
            include_inputs=include_inputs,
            append=False,
            overwrite=overwrite,
        )

    def set_mode(self, mode: str) -> None:
        """``"TRAIN"`` (forward passes not saved) or ``"EVAL"`` (saved)."""
        _, mode_keys, _ = _smdebug()
        text = str(mode).upper()
        if text not in ("TRAIN", "EVAL"):
            raise InputError(f"mode={mode!r} must be TRAIN or EVAL")
        self.hook.set_mode(mode_keys[text])

    @property
    def summary(self) -> CaptureSummary | None:
        return self._summary

    def __enter__(self) -> EvalCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def capture_reference(
    model: nn.Module,
    batches: Iterable[Any],
    out: str,
    *,
    layers: Sequence[str] = (),
    save_every: int = 1,
    include_inputs: bool = True,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> CaptureSummary:
    """Run ``batches`` through ``model`` (eval mode, no gradients) under an
    :class:`EvalCapture` writing to ``out``; one forward pass per batch.

    ``batches``: tensors or arrays of shape (k, C, H, W) (or ``(images, labels)`` pairs),
    moved to the model's device. Progress stage: ``capture``.
    """
    total = len(batches) if hasattr(batches, "__len__") else 0  # type: ignore[arg-type]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with (
            EvalCapture(
                model,
                out,
                layers=layers,
                save_every=save_every,
                include_inputs=include_inputs,
                overwrite=overwrite,
            ) as capture,
            torch.no_grad(),
        ):
            report(progress, "capture", 0, total)
            for position, batch in enumerate(batches, 1):
                model(_as_tensor(batch, device))
                report(progress, "capture", position, max(total, position))
            capture.hook._close_writers()
    finally:
        model.train(was_training)
    assert capture.summary is not None
    return capture.summary


def _as_tensor(batch: Any, device: torch.device) -> torch.Tensor:
    if isinstance(batch, tuple | list):
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    if not isinstance(batch, torch.Tensor) or batch.ndim != 4:
        raise InputError(
            f"a batch must be a tensor of shape (k, C, H, W), got {getattr(batch, 'shape', type(batch))}"
        )
    return batch.to(device=device, dtype=torch.float32)


class ServingCapture(_StagedCapture):
    """Inference capture: every request is one PREDICT step, appended to the trial at
    ``out`` (after its newest step, so a restarted endpoint goes on where it stopped).

    :meth:`record` / :meth:`predict` are thread-safe: forward pass and step are taken
    under one lock, so concurrent requests each get their own step; forward passes made
    on the model by other code are not recorded. Finished steps are uploaded by a
    background thread every ``upload_interval_s`` seconds (0: only on :meth:`flush`),
    and on :meth:`close`. One process per trial: two endpoints must not append to the
    same ``out``.
    """

    def __init__(
        self,
        model: nn.Module,
        out: str,
        *,
        layers: Sequence[str] = (),
        include_inputs: bool = True,
        upload_interval_s: float = 2.0,
    ) -> None:
        super().__init__(
            model,
            out,
            mode="PREDICT",
            layers=layers,
            save_every=1,
            include_inputs=include_inputs,
            append=True,
        )
        model.eval()
        self.hook.ladis_gated = True  # only forward passes made by record() are steps
        self._lock = threading.Lock()
        self.last_step: int | None = None
        self.requests = 0
        self._stop = threading.Event()
        self._uploader: threading.Thread | None = None
        self.upload_error: str | None = None
        if upload_interval_s and upload_interval_s > 0:
            self._uploader = threading.Thread(
                target=self._upload_loop,
                args=(float(upload_interval_s),),
                name="ladis-capture-upload",
                daemon=True,
            )
            self._uploader.start()
        atexit.register(self._close_at_exit)

    def record(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Run ``batch`` (float32 (k, C, H, W) on the model's device) through the model
        as one PREDICT step; returns the logits (k, classes) and the step number."""
        _, mode_keys, _ = _smdebug()
        with self._lock:
            if self.closed:
                raise CaptureClosedError("the capture is closed; no more requests are recorded")
            self.hook.ladis_thread = threading.get_ident()
            try:
                with torch.no_grad():
                    logits = self.model(batch)  # type: ignore[misc]
            except BaseException:
                self._discard_step()
                raise
            finally:
                self.hook.ladis_thread = None
            # write this step's files now rather than at the next request
            self.hook._close_writers()
            step = int(self.hook.mode_steps[mode_keys.PREDICT])
            self.last_step = step
            self.requests += 1
        return logits, step

    def _discard_step(self) -> None:
        """Drop the step of a failed forward pass (some layers written, no output), so
        no reader ever meets it; its number stays unused."""
        from smdebug.core.locations import IndexFileLocationUtils, TensorFileLocation

        hook = self.hook
        with self.publisher.lock:  # not while the uploader looks at the staging folder
            hook._close_writers()
            step, worker = int(hook.step), hook.worker
            index = IndexFileLocationUtils.get_index_key_for_step(str(self.staging), step, worker)
            event = TensorFileLocation(step_num=step, worker_name=worker).get_file_location(
                trial_dir=str(self.staging)
            )
            for path in (index, event):
                Path(path).unlink(missing_ok=True)
        log.warning("a request failed inside the model; its capture step %d was dropped", step)

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """The logits (k, classes) of ``batch`` (float32 (k, C, H, W)); one PREDICT step,
        whose number is then in :attr:`last_step` (read it under your own lock if
        requests run concurrently, or use :meth:`record`)."""
        return self.record(batch)[0]

    def flush(self, *, progress: ProgressCallback | None = None) -> int:
        """Upload every finished step now; returns how many were uploaded."""
        return self._publish(progress=progress)

    def _publish(self, *, progress: ProgressCallback | None = None) -> int:
        """Publish, keeping :attr:`upload_error` (shown by the server's ``/ping``) current."""
        try:
            published = self.publisher.publish(progress=progress)
        except Exception as exc:
            self.upload_error = str(exc)
            raise
        self.upload_error = None
        return published

    def close(self, *, progress: ProgressCallback | None = None) -> CaptureSummary:
        """Stop recording, upload what is left and detach from the model (idempotent)."""
        self._stop.set()
        if self._uploader is not None and self._uploader is not threading.current_thread():
            self._uploader.join(timeout=60)
        with self._lock:
            try:
                summary = super().close(progress=progress)
            except CaptureConflictError:
                atexit.unregister(self._close_at_exit)  # nothing to retry at exit
                raise
        atexit.unregister(self._close_at_exit)
        return summary

    def _upload_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self._publish()
            except CaptureConflictError as exc:  # retrying cannot help: stop publishing
                log.error("%s", exc)
                return
            except Exception as exc:  # noqa: BLE001 - keep serving; the next round retries
                log.warning("capture upload to %s failed (will retry): %s", self.uri, exc)

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on
            log.error("capture to %s could not be closed at exit: %s", self.uri, exc)

    def __enter__(self) -> ServingCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
