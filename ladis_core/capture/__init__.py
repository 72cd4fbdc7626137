"""Recording what the model sees and computes, as SageMaker Debugger (smdebug) trials.

Two captures write smdebug trials (:mod:`ladis_core.trials` reads them):

- **Reference** (EVAL mode): :class:`EvalCapture` around validation passes during or
  after training, or :func:`capture_reference` over a set of batches; every
  ``save_every``-th forward pass in EVAL mode is one step.
- **Inference** (PREDICT mode): :class:`ServingCapture`, one step per request, safe to
  call from concurrent request threads. It does not use smdebug: plain PyTorch hooks
  copy the tensors (:mod:`~ladis_core.capture.tap`), a bounded queue and a writer
  thread (:mod:`~ladis_core.capture.writer`) serialise them off the request path in
  the same format, byte for byte (:mod:`~ladis_core.capture.tfevents`). smdebug stays
  the training-time capture and the oracle the tests read native trials with.

**The penultimate layer** of any ``nn.Module`` is found by a dry forward pass
(:func:`find_penultimate`: the input of the module that produces the logits), or named
with ``penultimate=``, and recorded beside the trial in ``ladis.json`` with the input and
output tensors, preprocessing and class names. A script with its own smdebug hook calls
:func:`describe_trial` for the same record and the hook's ``include_regex``.

Both save, as smdebug names them for ``ladis_core.model.spec.ResNet``::

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

**Where it writes.** Both write into a fresh local staging folder, and finished steps
are copied to the trial (``s3://`` or a local folder) through :mod:`ladis_core.store`:
event files first (in parallel), then index files in step order, so a reader never sees
a step before its tensors. This instead of smdebug's own S3 writer because that writer
puts two objects synchronously inside every forward pass, raises at interpreter exit
unless closed, and refuses a prefix that already exists, while a restarted endpoint must
go on appending to its trial: :class:`ServingCapture` continues after the trial's last
step. Serving uploads in a background thread every ``upload_interval_s`` seconds and on
:meth:`ServingCapture.flush` / ``close``.

Hooks are detached from the model on close, so a model can be
captured again, and smdebug's exit handler is unregistered so nothing runs at exit.

**Nothing lost, nothing interleaved.** A staging folder names its trial and process; a
new capture appending to a trial first publishes the finished steps that a killed
process left in its staging folder. Step files are created only if absent, so a second
endpoint capturing into the same trial is stopped with :class:`CaptureConflictError`
instead of overwriting steps.

Modules: :mod:`~ladis_core.capture.hooks` (smdebug and tensor names),
:mod:`~ladis_core.capture.staging` and :mod:`~ladis_core.capture.publishing` (local
staging, publishing, recovery), :mod:`~ladis_core.capture.reference` (EVAL),
:mod:`~ladis_core.capture.serving` (PREDICT, with :mod:`~ladis_core.capture.tap`,
:mod:`~ladis_core.capture.writer` and :mod:`~ladis_core.capture.tfevents`),
:mod:`~ladis_core.capture.contract` (smdebug hooks for scripts that manage one
themselves).
"""

from ladis_core.capture.contract import close_hook, describe_trial, serving_hook, training_hook
from ladis_core.capture.hooks import PENULTIMATE_MODULE, capture_tensor_names
from ladis_core.capture.penultimate import Penultimate, find_penultimate
from ladis_core.capture.reference import EvalCapture, capture_reference
from ladis_core.capture.serving import ServingCapture
from ladis_core.capture.staging import CaptureSummary
from ladis_core.errors import CaptureClosedError, CaptureConflictError
from ladis_core.trials.names import RESIDUAL_BLOCKS

__all__ = [
    "PENULTIMATE_MODULE",
    "RESIDUAL_BLOCKS",
    "CaptureClosedError",
    "CaptureConflictError",
    "CaptureSummary",
    "EvalCapture",
    "ServingCapture",
    "capture_reference",
    "Penultimate",
    "capture_tensor_names",
    "close_hook",
    "describe_trial",
    "find_penultimate",
    "serving_hook",
    "training_hook",
]
