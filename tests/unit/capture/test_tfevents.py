"""The native trial format against smdebug's own writer: the same bytes for the same
tensors and time, read back by LADIS's decoder and by smdebug's reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ladis_core.capture import tfevents
from ladis_core.trials.records import decode_tensor_record

WALL_TIME = 1796196823.937736


def _tensors(seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        ("ResNet_input_0", rng.random((2, 3, 8, 8), dtype=np.float32)),
        ("layer1.0_output_0", rng.standard_normal((2, 64, 8, 8)).astype(np.float32)),
        ("avgpool_output_0", rng.standard_normal((2, 512, 1, 1)).astype(np.float32)),
        ("heads_input_0", rng.standard_normal((1, 300)).astype(np.float16)),
        ("double", rng.standard_normal((3,))),
        ("counts", np.arange(200, dtype=np.int64).reshape(2, 100)),
        ("flags", rng.random((4, 4)) > 0.5),
        ("scalar_row", np.zeros((1, 1), dtype=np.float32)),
    ]


@pytest.mark.parametrize(
    ("step", "mode", "mode_step"),
    [
        (0, "PREDICT", 0),
        (1, "PREDICT", 1),
        (1234, "PREDICT", 1200),
        (7, "EVAL", 3),
        (2**40, "PREDICT", 2**33),
    ],
)
def test_a_step_is_byte_for_byte_what_smdebugs_writer_writes(tmp_path, step, mode, mode_step):
    from smdebug.core.modes import ModeKeys
    from smdebug.core.writer import FileWriter

    tensors = _tensors(step % 97)
    writer = FileWriter(trial_dir=str(tmp_path), step=step, worker=tfevents.WORKER)
    for name, value in tensors:
        writer.write_tensor(
            value, name, mode=ModeKeys[mode], mode_step=mode_step, timestamp=WALL_TIME
        )
    writer.close()

    ours = tfevents.encode_step(
        tensors, step=step, mode=mode, mode_step=mode_step, wall_time=WALL_TIME
    )
    assert (tmp_path / ours.event_path).read_bytes() == ours.event
    assert (tmp_path / ours.index_path).read_bytes() == ours.index


def test_records_decode_to_the_same_values_and_checksums_are_tfrecords(tmp_path):
    from smdebug.core.tfrecord.record_writer import masked_crc32c as smdebug_crc

    tensors = _tensors(5)
    files = tfevents.encode_step(tensors, step=3, mode="PREDICT", mode_step=3, wall_time=WALL_TIME)
    index = json.loads(files.index)
    for (name, value), entry in zip(tensors, index["tensor_payload"], strict=True):
        assert entry["tensorname"] == name
        record = files.event[entry["start_idx"] : entry["start_idx"] + entry["length"]]
        decoded = decode_tensor_record(record)
        assert decoded.dtype == value.dtype and decoded.shape == value.shape
        assert decoded.tobytes() == value.tobytes()
    rng = np.random.default_rng(0)
    for size in (0, 1, 8, 33, 1000):
        data = rng.bytes(size)
        assert tfevents.masked_crc32c(data) == smdebug_crc(data)


def test_unsupported_dtypes_are_refused_by_name():
    with pytest.raises(ValueError, match="'words' has dtype <U1"):
        tfevents.tensor_record(
            "words", np.array(["a"]), step=0, mode="PREDICT", mode_step=0, wall_time=0.0
        )
    with pytest.raises(ValueError, match="step 4 holds no tensor"):
        tfevents.encode_step([], step=4, mode="PREDICT", mode_step=4, wall_time=0.0)


def test_smdebugs_reader_lists_and_reads_a_trial_of_native_files(tmp_path):
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")
    names = [name for name, _ in _tensors(0)]
    steps = {}
    for step in range(3):
        tensors = _tensors(step)
        steps[step] = dict(tensors)
        files = tfevents.encode_step(
            tensors, step=step, mode="PREDICT", mode_step=step, wall_time=WALL_TIME + step
        )
        for relative, data in ((files.event_path, files.event), (files.index_path, files.index)):
            path = Path(tmp_path, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    path, data = tfevents.collections_file(names, mode="PREDICT")
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(data)
    (tmp_path / "training_job_end.ts").write_bytes(b"")

    trial = create_trial(str(tmp_path))
    assert sorted(trial.tensor_names()) == sorted(names)
    for name in names:
        tensor = trial.tensor(name)
        assert tensor.steps(mode=ModeKeys.PREDICT) == [0, 1, 2]
        for step, expected in steps.items():
            assert tensor.value(step, mode=ModeKeys.PREDICT).tobytes() == expected[name].tobytes()
