"""Exceptions that carry a message meant for the analyst.

Every error that a user can cause (bad input, missing data, S3 trouble) is raised as a
:class:`LadisError` subclass whose ``str()`` is one clear sentence naming the problem and
what to do. The CLI prints it and exits with code 2; the dashboard shows it as a message.
Messages never contain credentials: build them with :func:`ladis_core.config.redact`.
"""

from __future__ import annotations


class LadisError(Exception):
    """Base class: an error whose message is safe and useful to show to a user."""

    exit_code = 2


class InputError(LadisError, ValueError):
    """An argument, file or array is not what is expected (names the input and value)."""


class DataNotFoundError(LadisError):
    """A trial, job, layer or object that was asked for does not exist."""


class StorageError(LadisError):
    """S3 or the local store failed: unreachable endpoint, denied access, missing bucket."""


class ServerError(LadisError):
    """The managed local S3 server could not be started, reached or stopped."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`InputError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InputError(message)
