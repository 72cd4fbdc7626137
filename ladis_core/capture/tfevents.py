"""The smdebug trial format, written without smdebug: tensor records, index files, the
collections file.

An smdebug step is one event file of TFRecords, each an ``Event`` {``wall_time``,
``step``, ``summary`` {``value`` {``tag``, ``tensor``, ``metadata``}}} holding one
``TensorProto`` (dtype, a shape whose dimensions smdebug names ``<tag>_<size>``, raw
content), and one index JSON file giving each record's byte range. The protobuf wire
format of those few fields is written here by hand, field for field in the order
smdebug's protobuf runtime writes them, so a record is the bytes smdebug writes for the
same tensor and time (a unit test compares them with smdebug's own serialisation).

Like smdebug's default writer (``write_checksum=False``), the record's length is
checksummed and the data is not: the footer is the masked CRC of smdebug's magic bytes.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ladis_core.trials.index import INDEX_GROUP_SIZE

#: the worker name of a single-process capture, as smdebug names it
WORKER = "worker_0"

#: smdebug's mode numbers (``ModeKeys``), written into each record's metadata
MODE_NUMBERS = {"TRAIN": 1, "EVAL": 2, "PREDICT": 3, "GLOBAL": 4}

#: numpy dtype -> TensorFlow DataType number (what smdebug's ``make_tensor_proto`` writes)
_DTYPE_CODES = {
    np.dtype(np.float32): 1,
    np.dtype(np.float64): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.uint8): 4,
    np.dtype(np.int8): 6,
    np.dtype(np.int64): 9,
    np.dtype(np.bool_): 10,
    np.dtype(np.float16): 19,
}


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data`` (used here on 8-byte headers only)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_FOOTER = struct.pack("<I", masked_crc32c(b"0x12345678"))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(key: int, payload: bytes) -> bytes:
    """A length-delimited field: key byte, length, payload."""
    return bytes((key,)) + _varint(len(payload)) + payload


def _plugin_metadata(mode: str, mode_step: int) -> bytes:
    """``SummaryMetadata`` {plugin_data: mode_step, mode} as smdebug writes it."""
    mode_step_data = _field(0x0A, b"mode_step") + _field(0x12, str(mode_step).encode())
    mode_data = _field(0x0A, b"mode") + _field(0x12, str(MODE_NUMBERS[mode]).encode())
    return _field(0x0A, mode_step_data) + _field(0x0A, mode_data)


@functools.lru_cache(maxsize=4096)
def _tensor_heads(name: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[bytes, bytes]:
    """What a record of ``name`` holds before the content and does not change from step
    to step: the TensorProto's dtype, shape and content key and length; the value's tag
    and tensor key (computed once per tensor and shape: the writer is Python, and its
    time is taken from the request threads through the interpreter lock)."""
    code = _DTYPE_CODES.get(dtype)
    if code is None:
        raise ValueError(f"tensor {name!r} has dtype {dtype}, which smdebug does not write")
    dims = b"".join(
        _field(0x12, b"\x08" + _varint(size) + _field(0x12, f"{name}_{size}".encode()))
        for size in shape
    )
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    tensor_head = b"\x08" + _varint(code) + _field(0x12, dims) + b"\x22" + _varint(nbytes)
    return tensor_head, _field(0x0A, name.encode()) + b"\x42"


def _metadata(mode: str, mode_step: int) -> bytes:
    return _field(0x4A, _plugin_metadata(mode, mode_step))


def tensor_record_parts(
    name: str, value: np.ndarray, *, step: int, mode: str, mode_step: int, wall_time: float
) -> tuple[bytes, memoryview, bytes]:
    """One TFRecord holding ``value`` (any shape) as the tensor ``name`` of global
    ``step`` / ``mode_step``, in three parts: what precedes the tensor's content, the
    content itself (a view on ``value``'s memory, not a copy) and what follows it."""
    array = np.ascontiguousarray(value)
    content = memoryview(array.reshape(-1).view(np.uint8))
    tensor_head, value_head_start = _tensor_heads(name, array.shape, array.dtype)
    tensor_size = len(tensor_head) + len(content)
    metadata = _metadata(mode, mode_step)
    value_head = value_head_start + _varint(tensor_size)
    value_size = len(value_head) + tensor_size + len(metadata)
    summary_head = b"\x0a" + _varint(value_size)
    summary_size = len(summary_head) + value_size
    event_head = b"\x09" + struct.pack("<d", wall_time)
    if step:
        event_head += b"\x10" + _varint(step)
    event_head += b"\x2a" + _varint(summary_size)
    event_size = len(event_head) + summary_size
    header = struct.pack("<Q", event_size)
    before = (
        header
        + struct.pack("<I", masked_crc32c(header))
        + event_head
        + summary_head
        + value_head
        + tensor_head
    )
    return before, content, metadata + _FOOTER


def tensor_record(
    name: str, value: np.ndarray, *, step: int, mode: str, mode_step: int, wall_time: float
) -> bytes:
    """:func:`tensor_record_parts` as one ``bytes``."""
    return b"".join(
        tensor_record_parts(
            name, value, step=step, mode=mode, mode_step=mode_step, wall_time=wall_time
        )
    )


@dataclass(frozen=True)
class StepFiles:
    """The two files of one step: paths relative to the trial root, the event file as
    parts (bytes and views on the tensors' memory, written in order) and the index."""

    event_path: str
    event_parts: tuple[bytes | memoryview, ...]
    index_path: str
    index: bytes

    @property
    def event(self) -> bytes:
        return b"".join(self.event_parts)


def event_file_name(step: int, worker: str = WORKER) -> str:
    return f"events/{step:012d}/{step:012d}_{worker}.tfevents"


def index_file_name(step: int, worker: str = WORKER) -> str:
    return f"index/{step // INDEX_GROUP_SIZE:09d}/{step:012d}_{worker}.json"


def encode_step(
    tensors: Iterable[tuple[str, np.ndarray]],
    *,
    step: int,
    mode: str,
    mode_step: int,
    wall_time: float,
) -> StepFiles:
    """The event and index files of one step holding ``tensors`` ((name, array) pairs,
    in the order they are written)."""
    parts: list[bytes | memoryview] = []
    payload, offset = [], 0
    for name, value in tensors:
        record = tensor_record_parts(
            name, value, step=step, mode=mode, mode_step=mode_step, wall_time=wall_time
        )
        length = sum(len(part) for part in record)
        parts.extend(record)
        payload.append({"tensorname": name, "start_idx": offset, "length": length})
        offset += length
    if not payload:
        raise ValueError(f"step {step} holds no tensor")
    event_path = event_file_name(step)
    index = {
        "meta": {"mode": mode, "mode_step": mode_step, "event_file_name": event_path},
        "tensor_payload": payload,
        "shape_payload": [],
    }
    return StepFiles(
        event_path=event_path,
        event_parts=tuple(parts),
        index_path=index_file_name(step),
        index=json.dumps(index).encode(),
    )


def collections_file(tensor_names: Sequence[str], *, mode: str) -> tuple[str, bytes]:
    """(path, bytes) of the collections file: one ``default`` collection naming every
    saved tensor, saved at every step of ``mode`` (what smdebug's reader needs to list
    the tensors)."""
    never = {"save_interval": 1, "save_steps": [], "start_step": 0, "end_step": 0}
    save_config = {m: dict(never) for m in MODE_NUMBERS}
    save_config[mode] = {"save_interval": 1, "save_steps": [], "start_step": 0, "end_step": None}
    default = {
        "name": "default",
        "include_regex": [],
        "tensor_names": sorted(tensor_names),
        "reduction_config": {"save_raw_tensor": True, "reductions": "", "save_shape": False},
        "save_config": save_config,
        "save_histogram": False,
    }
    body = {"collections": {"default": default}, "_meta": {"num_workers": 1}}
    return f"collections/000000000/{WORKER}_collections.json", json.dumps(body).encode()
