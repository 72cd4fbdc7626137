"""Packs: the decoded rows of every step of one sealed index folder, per mode and
tensor, in one ``.npy`` file, so a warm read opens a few files instead of thousands.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ladis_core.errors import StorageError
from ladis_core.store.files import write_atomic
from ladis_core.trials.index import _atomic_write, _StepEntry
from ladis_core.trials.records import RecordDecoder
from ladis_core.trials.steps import _as_rows, _complete_prefix, _read_step, _rows


def _pack_file(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return safe + ".npy"


class _Pack:
    """The decoded rows of every ``mode`` step of one sealed index folder, per tensor
    (``_packs/<folder>/<MODE>/<tensor>.npy``, shape (rows, *tensor shape[1:]))."""

    def __init__(self, root: Path, group: int, mode: str, members: list[_StepEntry]) -> None:
        self.folder = root / "_packs" / f"{group:09d}" / mode
        self.members = members
        self.key = [[e.step, e.worker] for e in members]
        self.rows: np.ndarray | None = None
        meta = self.folder / "meta.json"
        try:
            saved = json.loads(meta.read_bytes())
            if saved.get("entries") == self.key:
                self.rows = np.asarray(saved["rows"], dtype=np.int64)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if self.rows is None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def arrays(
        self, names: Sequence[str], root: Path, decoder: RecordDecoder, uri: str
    ) -> dict[str, np.ndarray] | None:
        """The packed arrays of ``names`` (memory-mapped), packing the missing ones;
        ``None`` when a step's event file is not cached (it was outside a read range)."""
        out: dict[str, np.ndarray] = {}
        missing = []
        for name in names:
            path = self.folder / _pack_file(name)
            if self.rows is not None and path.is_file():
                try:
                    out[name] = np.load(path, mmap_mode="r")
                    continue
                except (OSError, ValueError):
                    pass
            missing.append(name)
        if missing:
            if _complete_prefix(root, self.members, uri=uri) != self.members:
                return None
            per_step = [_read_step(root, e, missing, decoder, uri) for e in self.members]
            rows = np.array([_rows(step[missing[0]]) for step in per_step], dtype=np.int64)
            if self.rows is not None and not np.array_equal(rows, self.rows):
                raise StorageError(
                    f"the cached pack {self.folder} disagrees with its trial; delete the cache folder"
                )
            for name in missing:
                array = np.concatenate([_as_rows(step[name]) for step in per_step])
                write_atomic(
                    self.folder / _pack_file(name),
                    lambda handle, array=array: np.save(handle, array),
                )
                out[name] = array
            if self.rows is None:
                self.rows = rows
                _atomic_write(
                    self.folder / "meta.json",
                    json.dumps({"entries": self.key, "rows": rows.tolist()}).encode(),
                )
        return out
