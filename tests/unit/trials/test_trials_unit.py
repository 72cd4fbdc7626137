"""The pieces of capture and trial reading that need no server: the tensor-record
decoder against smdebug's own writer, layer names, and cache folder names."""

from __future__ import annotations

import numpy as np
import pytest

from ladis_core import capture, config, trials
from ladis_core.errors import InputError
from ladis_core.model.spec import ModelSpec, build_model
from ladis_core.trials import records as tensor_records


def _records(tmp_path, arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """Write ``arrays`` with smdebug's FileWriter; return each tensor's raw record."""
    import json

    from smdebug.core.modes import ModeKeys
    from smdebug.core.writer import FileWriter

    writer = FileWriter(trial_dir=str(tmp_path), step=7, worker="worker_0")
    for name, value in arrays.items():
        writer.write_tensor(tdata=value, tname=name, mode=ModeKeys.PREDICT, mode_step=7)
    writer.close()
    index = json.loads(next((tmp_path / "index").rglob("*.json")).read_text())
    data = (tmp_path / index["meta"]["event_file_name"]).read_bytes()
    return {
        t["tensorname"]: data[t["start_idx"] : t["start_idx"] + t["length"]]
        for t in index["tensor_payload"]
    }


def test_decoder_reads_what_smdebug_writes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "avgpool_output_0": rng.standard_normal((3, 512, 1, 1)).astype(np.float32),
        "ResNet_output_0": rng.standard_normal((3, 10)).astype(np.float32),
        "half": rng.standard_normal((2, 4)).astype(np.float16),
        "double": rng.standard_normal((5,)),
        "counts": rng.integers(0, 1 << 40, size=(2, 3)),
        "big": rng.standard_normal((1, 64, 16, 16)).astype(np.float32),
    }
    records = _records(tmp_path, arrays)
    decoder = tensor_records.RecordDecoder()
    for name, expected in arrays.items():
        decoded = tensor_records.decode_tensor_record(records[name])
        assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
        assert np.array_equal(decoded, expected), name
        # the fast path (header found by search) gives the same, twice
        assert np.array_equal(decoder.decode(name, records[name]), expected)
        assert np.array_equal(decoder.decode(name, records[name]), expected)


def test_decoder_rejects_damaged_records(tmp_path):
    record = _records(tmp_path, {"x": np.ones((2, 3), dtype=np.float32)})["x"]
    with pytest.raises(ValueError, match="too short"):
        tensor_records.decode_tensor_record(record[:10])
    with pytest.raises(ValueError, match="frame"):
        tensor_records.decode_tensor_record(record[:-1])
    garbled = record[:12] + b"\xff" * (len(record) - 16) + record[-4:]
    with pytest.raises((ValueError, IndexError)):
        tensor_records.decode_tensor_record(garbled)


def test_penultimate_layer_is_the_recorded_one_else_the_avgpool_output():
    names = ["layer4.1_output_0", "avgpool_output_0", "ResNet_output_0"]
    assert trials.penultimate_layer(names) == "avgpool_output_0"
    assert trials.penultimate_layer(["backbone.avgpool_output_0"]) == "backbone.avgpool_output_0"
    with pytest.raises(InputError, match="does not record its penultimate layer.*fc_output_0"):
        trials.penultimate_layer(["fc_output_0"])
    recorded = trials.TrialMeta(penultimate="heads_input_0", output="VisionTransformer_output_0")
    assert trials.penultimate_layer(["heads_input_0", "avgpool_output_0"], recorded) == (
        "heads_input_0"
    )
    # a record naming a tensor the trial lacks is not believed
    assert trials.penultimate_layer(names, recorded) == "avgpool_output_0"


def test_trial_meta_round_trips_and_refuses_what_is_not_a_description(tmp_path):
    meta = trials.TrialMeta(
        penultimate="pool_output_0",
        output="SmallCNN_output_0",
        input="SmallCNN_input_0",
        tensors=("SmallCNN_input_0", "pool_output_0", "SmallCNN_output_0"),
        input_shape=(3, 16, 16),
        preprocessing=trials.Preprocessing(image_size=(16, 16), mean=(0.5,) * 3, std=(0.25,) * 3),
        class_names=("zero", "one"),
    )
    assert trials.TrialMeta.from_dict(meta.to_dict()) == meta
    for bad in (
        {**meta.to_dict(), "penultimate": "../../etc/passwd"},
        {**meta.to_dict(), "format": 99},
        {**meta.to_dict(), "class_names": "zero"},
        {**meta.to_dict(), "preprocessing": {"mean": [0.5], "std": [0.0]}},
        {**meta.to_dict(), "input_shape": [3, -1, 16]},
        [1, 2],
    ):
        with pytest.raises(InputError, match="not a LADIS trial description"):
            trials.TrialMeta.from_dict(bad)
    trial = tmp_path / "trial"
    trial.mkdir()
    assert trials.trial_meta(str(trial)) is None
    (trial / trials.META_NAME).write_text("{not json")
    assert trials.trial_meta(str(trial)) is None  # unusable: ignored (with a warning)
    from ladis_core.trials.meta import write_trial_meta

    write_trial_meta(str(trial), meta)
    assert trials.trial_meta(str(trial)) == meta


def test_tensor_names_for_the_resnet():
    model = build_model(ModelSpec())
    assert capture.capture_tensor_names(model, layers=capture.RESIDUAL_BLOCKS) == [
        "ResNet_input_0",
        "layer1.0_output_0",
        "layer1.1_output_0",
        "layer2.0_output_0",
        "layer2.1_output_0",
        "layer3.0_output_0",
        "layer3.1_output_0",
        "layer4.0_output_0",
        "layer4.1_output_0",
        "avgpool_output_0",
        "ResNet_output_0",
    ]
    assert capture.capture_tensor_names(model, include_inputs=False) == [
        "avgpool_output_0",
        "ResNet_output_0",
    ]
    # smdebug-style tensor regexes are accepted too; parameters never match
    assert capture.capture_tensor_names(
        model, layers=[r".*layer3\.1_output"], include_inputs=False
    ) == [
        "layer3.1_output_0",
        "avgpool_output_0",
        "ResNet_output_0",
    ]
    with pytest.raises(InputError, match="not a regular expression"):
        capture.capture_tensor_names(model, layers=["layer[1"])


def test_cache_folders_differ_by_endpoint_and_uri(monkeypatch, tmp_path):
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1111")
    first = trials.default_cache_dir("s3://ladis/trials/digits/inference")
    assert first.parent == tmp_path / "trials"
    assert first == trials.default_cache_dir("s3://ladis/trials/digits/inference/")
    assert first != trials.default_cache_dir("s3://ladis/trials/digits/reference")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2222")
    assert first != trials.default_cache_dir("s3://ladis/trials/digits/inference")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _forged_record(dims: list[int], content: bytes) -> bytes:
    """A tensor record (TFRecord framing, Event → Summary → Value → TensorProto) with
    the given shape, written by hand as a forger would."""
    shape = b"".join(_field(2, b"\x08" + _varint(d)) for d in dims)
    tensor = b"\x08\x01" + _field(2, shape) + _field(4, content)
    event = _field(5, _field(1, _field(8, tensor)))
    return len(event).to_bytes(8, "little") + b"\0" * 4 + event + b"\0" * 4


@pytest.mark.parametrize("dims", [[1 << 63, 0], [1 << 64, 1 << 64], [0] * 40])
def test_forged_tensor_shapes_are_value_errors_not_overflows(dims):
    record = _forged_record(dims, b"")
    with pytest.raises(ValueError, match="not one smdebug writes"):
        tensor_records.decode_tensor_record(record)
    with pytest.raises(ValueError):
        tensor_records.RecordDecoder().decode("x", record)


def test_a_hand_written_record_decodes_like_smdebugs():
    values = np.arange(6, dtype=np.float32)
    decoded = tensor_records.decode_tensor_record(_forged_record([2, 3], values.tobytes()))
    assert np.array_equal(decoded, values.reshape(2, 3))
