"""The bookmark: a hint of where the chain of committed claims ends (``bookmark.json``).

A hint left behind by a crash or a race is harmless: :func:`read_bookmark` follows the
committed claims forward from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ladis_core import store
from ladis_core.errors import DataNotFoundError, StorageError
from ladis_core.monitoring.claims import Claims
from ladis_core.store import layout


@dataclass(frozen=True)
class Bookmark:
    """Where monitoring of one inference trial stands: ``last_step`` is the last
    inference step that a committed job processed (``None``: nothing yet)."""

    last_step: int | None = None
    job_id: str | None = None
    updated_at: str | None = None

    @property
    def next_step(self) -> int:
        """The first step the next job will process."""
        return 0 if self.last_step is None else self.last_step + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_step": self.last_step,
            "next_step": self.next_step,
            "job_id": self.job_id,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Bookmark:
        try:
            last = data.get("last_step")
            return cls(
                last_step=None if last is None else int(last),
                job_id=data.get("job_id"),
                updated_at=data.get("updated_at"),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise StorageError(
                f"{source} is not a valid bookmark ({exc}); delete it to start over"
            ) from None


def read_bookmark_hint(output: str) -> Bookmark:
    uri = layout.bookmark_uri(output)
    try:
        return Bookmark.from_dict(store.read_json(uri), source=uri)
    except DataNotFoundError:
        return Bookmark()


def read_bookmark(output: str) -> Bookmark:
    """The committed position of the monitoring under ``output``: ``bookmark.json``,
    followed forward along committed claims (so a bookmark write lost to a crash or a
    race does not matter)."""
    hint = read_bookmark_hint(output)
    end = Claims(output).walk(hint.next_step)
    last = end.last_committed
    if last is None or end.node == hint.next_step:
        return hint
    return Bookmark(last_step=end.node - 1, job_id=last.job_id, updated_at=last.claimed_at)


def write_bookmark(output: str, bookmark: Bookmark) -> bool:
    """Store ``bookmark`` unless the stored one is already at or past it (the bookmark
    never moves back). Returns whether it was written."""
    current = read_bookmark_hint(output)
    if bookmark.last_step is None or (
        current.last_step is not None and current.last_step >= bookmark.last_step
    ):
        return False
    store.write_json(layout.bookmark_uri(output), bookmark.to_dict())
    return True
