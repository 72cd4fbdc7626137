"""Process helpers shared by the S3 server manager, capture recovery and the monitoring
job's claims."""

from __future__ import annotations

import functools
import os
import socket


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def host_identity() -> str:
    """Where a PID means something: the host name, the boot id and the PID namespace.

    A host name alone is not enough: every SageMaker container is ``algo-1``, and
    containers on one machine share its name too, while PIDs repeat across containers and
    reboots. Only a PID recorded under the same identity can be checked with
    :func:`pid_alive`."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
    except OSError:
        boot = ""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}|{boot}|{namespace}"
