"""Reading smdebug trials (reference EVAL / inference PREDICT) into arrays, rows = samples.

A trial is the folder layout SageMaker Debugger (``smdebug``) writes, in S3 or locally::

    <trial>/index/000000000/000000000042_worker_0.json    per step: mode, mode step, and
                                                          the byte range of every tensor
    <trial>/events/000000000042/000000000042_worker_0.tfevents   the tensors (TFRecord)
    <trial>/collections/000000000/worker_0_collections.json
    <trial>/training_job_end.ts
    <trial>/ladis.json          what LADIS's capture recorded: the penultimate layer, the
                                model's input and output, preprocessing, class names

Index files are grouped 1,000 global steps per folder (``index/<step // 1000>/``). The
global step counts every forward pass in any mode, the mode step only those of its mode,
so a mode step is never larger than its global step.

**Why not smdebug's reader.** smdebug's S3 reader finds nothing on SeaweedFS (it lists
with ``StartAfter`` equal to the prefix) and on any S3 lists the events prefix again for
every ``tensor.value()`` (quadratic: 1,000 steps took 394 s, docs/environment.md). Its local
reader is correct but slower than needed (0.34 s for 2,000 steps). So:

**S3 trials are mirrored into a local cache** (``$LADIS_CACHE_DIR/trials/<name>``) with
our own listing and parallel downloads (:mod:`ladis_core.store`), fetching only what
is new:

- only index folders that can hold steps after ``after_step`` are listed; a folder that
  was listed after a later folder existed is *sealed* (steps are written in order) and
  is never listed again;
- only the event files of steps of the wanted mode and range are fetched;
- a trial rewritten at the same URI (a regenerated demo world) is detected by the ETag of
  the first cached event file (event files carry wall-clock times, so a new capture
  never has the same ETag), and the cache is then dropped.

Sealed folders also get a *catalog* (their parsed index files in one JSON file) and, per
mode and tensor, a *pack* (the decoded rows of all their steps in one ``.npy`` file), so
a warm read of 10,000 steps opens a few dozen files instead of 20,000.

**Tensors are decoded by a small reader of our own** (:mod:`ladis_core.trials.records`):
the index JSON gives the byte range of each wanted tensor, read with one ``seek``; the
TFRecord/protobuf framing is walked without the (pure-Python) protobuf runtime, and after
the first record of a tensor its header is found with ``bytes.find``. The tests check it against smdebug's own reader.

**Visibility.** A step is visible once its index file exists and its event file is
complete (LADIS's capture uploads event files before index files, in step order). If a
step's event file is missing, that step and every later one are left out, so a bookmark
on the last returned step never skips a request that is still arriving.

Modules: :mod:`~ladis_core.trials.reader` (the public API re-exported here),
:mod:`~ladis_core.trials.data` (:class:`TrialData`), :mod:`~ladis_core.trials.names`
(the layer-name rule), :mod:`~ladis_core.trials.meta` (``ladis.json``),
:mod:`~ladis_core.trials.index` (index files),
:mod:`~ladis_core.trials.mirror` (the S3 cache), :mod:`~ladis_core.trials.steps` and
:mod:`~ladis_core.trials.packs` (reading tensors), :mod:`~ladis_core.trials.assembly`
(rows out of steps), :mod:`~ladis_core.trials.records` (the TFRecord decoder).
"""

from ladis_core.trials.data import MODES, TrialData
from ladis_core.trials.index import INDEX_GROUP_SIZE
from ladis_core.trials.meta import META_NAME, Preprocessing, TrialMeta
from ladis_core.trials.mirror import default_cache_dir
from ladis_core.trials.names import PENULTIMATE_PATTERN, penultimate_layer
from ladis_core.trials.reader import (
    default_layer,
    last_step,
    list_layers,
    load_provenance,
    load_trial,
    trial_meta,
)

__all__ = [
    "INDEX_GROUP_SIZE",
    "META_NAME",
    "MODES",
    "PENULTIMATE_PATTERN",
    "Preprocessing",
    "TrialData",
    "TrialMeta",
    "default_cache_dir",
    "default_layer",
    "last_step",
    "list_layers",
    "load_provenance",
    "load_trial",
    "penultimate_layer",
    "trial_meta",
]
