"""Claims: how concurrent or crashed jobs share the inference steps of one endpoint.

The processed steps form a chain: the claim won on node ``s`` covers the steps ``s..m``
that its job loaded; once that job's results.json exists (with ``last_step == m``) the
claim is *committed* and the chain continues at node ``m + 1``. Every object is written
once, with a conditional create (``If-None-Match: *``), and read back as a second check::

    _state/claims/<node>/<k>.json            claim k on the steps >= <node> (immutable)
    _state/claims/<node>/<k>.released.json   claim k gave its steps back
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from ladis_core import store
from ladis_core._process import pid_alive as _pid_alive
from ladis_core.errors import DataNotFoundError, LadisError, StorageError
from ladis_core.monitoring.clock import _iso, _now
from ladis_core.monitoring.results import (
    STATUS_OK,
    JobResult,
)
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")


STATE_DIR = "_state"


_NODE_WIDTH = 12


@dataclass(frozen=True)
class _Claim:
    """A job's claim on the inference steps ``node..last_step`` (attempt ``attempt``)."""

    node: int
    attempt: int
    job_id: str
    token: str
    last_step: int
    host: str
    pid: int
    claimed_at: str
    expires_at: str


def _claims_prefix(output: str, node: int) -> str:
    return layout.join(output, STATE_DIR, "claims", f"{node:0{_NODE_WIDTH}d}")


def _claim_uri(output: str, node: int, attempt: int) -> str:
    return layout.join(_claims_prefix(output, node), f"{attempt:04d}.json")


def _release_uri(output: str, node: int, attempt: int) -> str:
    return layout.join(_claims_prefix(output, node), f"{attempt:04d}.released.json")


def _attempts(output: str, node: int) -> dict[int, bool]:
    """{attempt: released} of the claims on ``node``."""
    found: dict[int, bool] = {}
    for info in store.iter_objects(_claims_prefix(output, node)):
        name = info.uri.rsplit("/", 1)[-1]
        stem, _, rest = name.partition(".")
        if not stem.isdigit():
            continue
        attempt = int(stem)
        released = rest == "released.json"
        found[attempt] = found.get(attempt, False) or released
    return found


def _read_claim(output: str, node: int, attempt: int) -> _Claim:
    uri = _claim_uri(output, node, attempt)
    data = store.read_json(uri)
    try:
        return _Claim(**{k: data[k] for k in _Claim.__dataclass_fields__})
    except (KeyError, TypeError) as exc:
        raise StorageError(
            f"{uri} is not a valid claim ({exc}); delete it to unblock monitoring"
        ) from None


def _claim_state(output: str, claim: _Claim, released: bool) -> str:
    """``committed``, ``released``, ``stale`` (lease over or its process dead) or ``active``."""
    if released:
        return "released"
    uri = layout.results_uri(output, claim.job_id)
    try:
        result = JobResult.from_dict(store.read_json(uri), source=uri)
    except DataNotFoundError:
        result = None
    if result is not None:
        ok = result.status == STATUS_OK and result.last_step == claim.last_step
        return "committed" if ok else "released"
    if _now() >= datetime.fromisoformat(claim.expires_at):
        return "stale"
    if claim.host == socket.gethostname() and not _pid_alive(claim.pid):
        return "stale"
    return "active"


def _walk(output: str, node: int) -> tuple[int, _Claim | None, tuple[str, int, _Claim | None]]:
    """Follow committed claims from ``node``. Returns the first open node, the last
    committed claim passed (or ``None``) and that node's (state, latest attempt, claim);
    state ``free`` means no claim at all."""
    last_committed: _Claim | None = None
    while True:
        attempts = _attempts(output, node)
        if not attempts:
            return node, last_committed, ("free", -1, None)
        latest = max(attempts)
        claim = _read_claim(output, node, latest)
        state = _claim_state(output, claim, attempts[latest])
        if state != "committed":
            return node, last_committed, (state, latest, claim)
        last_committed = claim
        node = claim.last_step + 1


def _try_claim(
    output: str, node: int, attempt: int, *, job_id: str, last_step: int, lease_s: float
) -> _Claim | None:
    """Create claim ``attempt`` on ``node``; ``None`` when another job created it first."""
    now = _now()
    claim = _Claim(
        node=node,
        attempt=attempt,
        job_id=job_id,
        token=uuid.uuid4().hex,
        last_step=int(last_step),
        host=socket.gethostname(),
        pid=os.getpid(),
        claimed_at=_iso(now),
        expires_at=_iso(now + timedelta(seconds=lease_s)),
    )
    uri = _claim_uri(output, node, attempt)
    if not store.write_json(uri, claim.__dict__, if_absent=True):
        return None
    # a store that ignored If-None-Match would let the last writer win: read back
    if store.read_json(uri).get("token") != claim.token:
        return None
    return claim


def _release(output: str, claim: _Claim, reason: str) -> None:
    """Give the claim's steps back (best effort: an expired lease does the same)."""
    try:
        store.write_json(
            _release_uri(output, claim.node, claim.attempt),
            {
                "job_id": claim.job_id,
                "token": claim.token,
                "released_at": _iso(_now()),
                "reason": reason,
            },
            if_absent=True,
        )
    except LadisError as exc:
        log.warning(
            "could not release the claim of job %s on step %d: %s", claim.job_id, claim.node, exc
        )


def _still_owner(output: str, claim: _Claim) -> bool:
    """False when a later attempt took the node over (our lease ran out meanwhile)."""
    return max(_attempts(output, claim.node), default=claim.attempt) == claim.attempt
