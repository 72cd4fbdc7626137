"""Decoding smdebug tensor records without the protobuf runtime.

An smdebug event file is a sequence of TFRecords; each holds a TensorFlow ``Event``
whose summary value is a ``TensorProto`` (dtype, shape, ``tensor_content``). The index
file of a step gives the byte range of each record, so a tensor is read with one seek
and decoded here by walking the protobuf wire format directly: the pure-Python protobuf
runtime that smdebug needs (protobuf 3.20) is far slower. The tests check this reader
against smdebug's own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: bounds on a decoded tensor's shape (a record holds at most a few MiB)
_MAX_DIMS = 32
_MAX_DIM_SIZE = 1 << 40

# TensorFlow DataType enum values smdebug writes (tensorflow/core/framework/types.proto)
_DTYPES: dict[int, Any] = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    19: np.float16,
}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    if byte < 0x80:  # the common case
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    pos += 1
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 2:
        length, pos = _varint(buf, pos)
        return pos + length
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported protobuf wire type {wire}")


def _find_field(buf: bytes, pos: int, end: int, number: int) -> tuple[int, int]:
    """(start, end) of the first length-delimited field ``number`` of the message in
    ``buf[pos:end]``."""
    while pos < end:
        key, pos = _varint(buf, pos)
        if key & 7 == 2 and key >> 3 == number:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated protobuf message")
            return pos, pos + length
        pos = _skip(buf, pos, key & 7)
    raise ValueError(f"protobuf field {number} missing")


def _dim_size(buf: bytes, pos: int, end: int) -> int:
    size = 0
    while pos < end:
        key, pos = _varint(buf, pos)
        if key == 0x08:  # int64 size = 1
            size, pos = _varint(buf, pos)
        else:
            pos = _skip(buf, pos, key & 7)
    return size


def _decode_full(record: bytes) -> tuple[np.ndarray, int, int]:
    """Decode a tensor record; also return where its TensorProto and content start."""
    if len(record) < 16:
        raise ValueError(f"record of {len(record)} bytes is too short")
    length = int.from_bytes(record[:8], "little")
    if 12 + length + 4 != len(record):
        raise ValueError(f"record frame says {length} data bytes but holds {len(record) - 16}")
    start, end = _find_field(record, 12, 12 + length, 5)  # Event.summary
    start, end = _find_field(record, start, end, 1)  # Summary.value
    tensor_start, end = _find_field(record, start, end, 8)  # Summary.Value.tensor
    dtype_code, shape, content, pos = 0, [], None, tensor_start
    while pos < end:
        key, pos = _varint(record, pos)
        if key == 0x08:  # DataType dtype = 1
            dtype_code, pos = _varint(record, pos)
        elif key == 0x12:  # TensorShapeProto tensor_shape = 2 {repeated Dim dim = 2}
            size, pos = _varint(record, pos)
            dim_pos, shape_end = pos, pos + size
            while dim_pos < shape_end:
                dim_key, dim_pos = _varint(record, dim_pos)
                if dim_key == 0x12:
                    dim_len, dim_pos = _varint(record, dim_pos)
                    shape.append(_dim_size(record, dim_pos, dim_pos + dim_len))
                    dim_pos += dim_len
                else:
                    dim_pos = _skip(record, dim_pos, dim_key & 7)
            pos = shape_end
        elif key == 0x22:  # bytes tensor_content = 4
            size, pos = _varint(record, pos)
            content = (pos, pos + size)
            pos += size
        else:
            pos = _skip(record, pos, key & 7)
    if pos != end:
        raise ValueError("truncated tensor message")
    dtype = _DTYPES.get(dtype_code)
    if dtype is None:
        raise ValueError(f"tensor dtype code {dtype_code} is not numeric")
    if content is None:
        raise ValueError("tensor has no content")
    if len(shape) > _MAX_DIMS or any(size >= _MAX_DIM_SIZE for size in shape):
        raise ValueError(f"tensor shape {shape[:8]} is not one smdebug writes")
    itemsize = np.dtype(dtype).itemsize
    count = (content[1] - content[0]) // itemsize
    expected = math.prod(shape)  # Python integers: a forged dimension cannot overflow
    if count != expected or (content[1] - content[0]) % itemsize:
        raise ValueError(
            f"tensor content holds {content[1] - content[0]} bytes, shape {shape} needs {expected} values"
        )
    array = np.frombuffer(record, dtype=dtype, count=count, offset=content[0]).reshape(shape)
    return array, tensor_start, content[0]


def decode_tensor_record(record: bytes) -> np.ndarray:
    """Decode one smdebug tensor record (a TFRecord holding an ``Event`` whose summary
    value is a ``TensorProto``) into an ndarray of the saved shape and dtype, a read-only
    view on ``record``.

    The inverse of ``smdebug.core.writer.FileWriter.write_tensor`` for numeric tensors.
    Raises ``ValueError`` for anything else; lengths and sizes are checked, the framing
    checksums are not.
    """
    return _decode_full(record)[0]


class RecordDecoder:
    """Decodes many records of the same tensors fast: after the first record of a tensor,
    the bytes from its TensorProto start to its content (dtype, shape with dimension
    names, content length) are known and are found in the next records with
    ``bytes.find`` — the rest of a record (times, step numbers) varies in length."""

    def __init__(self) -> None:
        self._plans: dict[str, tuple[bytes, Any, tuple[int, ...], int]] = {}

    def decode(self, name: str, record: bytes) -> np.ndarray:
        plan = self._plans.get(name)
        if plan is not None:
            header, dtype, shape, count = plan
            at = record.find(header, 12)
            if at >= 0:
                first = at + len(header)
                if first + count * np.dtype(dtype).itemsize <= len(record) - 4:
                    return np.frombuffer(record, dtype=dtype, count=count, offset=first).reshape(
                        shape
                    )
        array, tensor_start, content_start = _decode_full(record)
        self._plans[name] = (
            bytes(record[tensor_start:content_start]),
            array.dtype,
            array.shape,
            array.size,
        )
        return array
