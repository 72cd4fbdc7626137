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
from ladis_core._process import host_identity
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
class Claim:
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
    #: where ``pid`` means something (:func:`ladis_core._process.host_identity`); empty in
    #: claims written before it existed, whose PID is then never judged
    host_id: str = ""


#: the states of the newest claim on a node (``free``: no claim at all)
FREE, ACTIVE, STALE, RELEASED, COMMITTED = "free", "active", "stale", "released", "committed"


@dataclass(frozen=True)
class ChainEnd:
    """Where the chain of committed claims ends: the first open ``node``, the last
    committed claim passed on the way (``None`` if none), and the state, attempt number
    and claim of the newest claim on ``node`` (``attempt == -1`` when it is free)."""

    node: int
    last_committed: Claim | None
    state: str
    attempt: int
    holder: Claim | None

    @property
    def next_attempt(self) -> int:
        return self.attempt + 1


class Claims:
    """The claims of the monitoring under ``output`` (``<output>/_state/claims/``)."""

    def __init__(self, output: str) -> None:
        self.output = output.rstrip("/")

    def walk(self, node: int) -> ChainEnd:
        """Follow committed claims from ``node`` to the first node that is not."""
        last_committed: Claim | None = None
        while True:
            attempts = self._attempts(node)
            if not attempts:
                return ChainEnd(node, last_committed, FREE, -1, None)
            latest = max(attempts)
            claim = self._read(node, latest)
            state = self._state(claim, attempts[latest])
            if state != COMMITTED:
                return ChainEnd(node, last_committed, state, latest, claim)
            last_committed = claim
            node = claim.last_step + 1

    def try_claim(
        self, node: int, attempt: int, *, job_id: str, last_step: int, lease_s: float
    ) -> Claim | None:
        """Create claim ``attempt`` on ``node``; ``None`` when another job created it first."""
        now = _now()
        claim = Claim(
            node=node,
            attempt=attempt,
            job_id=job_id,
            token=uuid.uuid4().hex,
            last_step=int(last_step),
            host=socket.gethostname(),
            pid=os.getpid(),
            claimed_at=_iso(now),
            expires_at=_iso(now + timedelta(seconds=lease_s)),
            host_id=host_identity(),
        )
        uri = self._claim_uri(node, attempt)
        if not store.write_json(uri, claim.__dict__, if_absent=True):
            return None
        # a store that ignored If-None-Match would let the last writer win: read back
        if store.read_json(uri).get("token") != claim.token:
            return None
        return claim

    def release(self, claim: Claim, reason: str) -> None:
        """Give the claim's steps back (best effort: an expired lease does the same)."""
        try:
            store.write_json(
                self._release_uri(claim.node, claim.attempt),
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
                "could not release the claim of job %s on step %d: %s",
                claim.job_id,
                claim.node,
                exc,
            )

    def still_owner(self, claim: Claim) -> bool:
        """False when a later attempt took the node over (our lease ran out meanwhile)."""
        return max(self._attempts(claim.node), default=claim.attempt) == claim.attempt

    def claim_uri(self, node: int, attempt: int) -> str:
        """Where claim ``attempt`` on ``node`` is stored."""
        return self._claim_uri(node, attempt)

    # -- storage -----------------------------------------------------------------------
    def _prefix(self, node: int) -> str:
        return layout.join(self.output, STATE_DIR, "claims", f"{node:0{_NODE_WIDTH}d}")

    def _claim_uri(self, node: int, attempt: int) -> str:
        return layout.join(self._prefix(node), f"{attempt:04d}.json")

    def _release_uri(self, node: int, attempt: int) -> str:
        return layout.join(self._prefix(node), f"{attempt:04d}.released.json")

    def _attempts(self, node: int) -> dict[int, bool]:
        """{attempt: released} of the claims on ``node``."""
        found: dict[int, bool] = {}
        for info in store.iter_objects(self._prefix(node)):
            name = info.uri.rsplit("/", 1)[-1]
            stem, _, rest = name.partition(".")
            if not stem.isdigit():
                continue
            attempt = int(stem)
            found[attempt] = found.get(attempt, False) or rest == "released.json"
        return found

    def _read(self, node: int, attempt: int) -> Claim:
        uri = self._claim_uri(node, attempt)
        data = store.read_json(uri)
        try:
            fields = {k: data[k] for k in Claim.__dataclass_fields__ if k != "host_id"}
            claim = Claim(**fields, host_id=str(data.get("host_id") or ""))
            numbers = (claim.node, claim.attempt, claim.last_step, claim.pid)
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
                raise TypeError("node, attempt, last_step and pid must be integers")
            if datetime.fromisoformat(claim.expires_at).tzinfo is None:
                raise ValueError(f"expires_at {claim.expires_at!r} has no time zone")
            return claim
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise StorageError(
                f"{uri} is not a valid claim ({exc}); delete it to unblock monitoring"
            ) from None

    def _state(self, claim: Claim, released: bool) -> str:
        """``committed``, ``released``, ``stale`` (lease over or its process dead) or
        ``active``."""
        if released:
            return RELEASED
        uri = layout.results_uri(self.output, claim.job_id)
        try:
            result = JobResult.from_dict(store.read_json(uri), source=uri)
        except DataNotFoundError:
            result = None
        if result is not None:
            ok = result.status == STATUS_OK and result.last_step == claim.last_step
            return COMMITTED if ok else RELEASED
        if _now() >= datetime.fromisoformat(claim.expires_at):
            return STALE
        # a PID is judged only where it was recorded: the same host name is not the same
        # host (SageMaker containers are all algo-1), so a dead-looking PID elsewhere
        # waits for its lease instead of being taken over while it still works
        if claim.host_id and claim.host_id == host_identity() and not _pid_alive(claim.pid):
            return STALE
        return ACTIVE
