"""Turn errors into friendly messages: never a traceback, never a secret.

Pages wrap their body in :func:`friendly_errors`; a :class:`~ladis_core.errors.LadisError`
becomes an ``st.error`` with its own message (written for the analyst) and a hint of what
to do; anything else becomes a short generic message while the traceback goes to the
server log. Streamlit's own control-flow exceptions (``st.rerun``/``st.stop``) derive
from ``BaseException`` and pass through untouched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import streamlit as st

from app.text import literal
from ladis_core.config import S3Settings, redact
from ladis_core.errors import (
    BucketNotFoundError,
    BusyError,
    DataNotFoundError,
    InputError,
    LadisError,
    PermissionDeniedError,
    SourceNotAllowedError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnreachableError,
)

log = logging.getLogger("ladis.dashboard")

P = ParamSpec("P")
R = TypeVar("R")


def explain(exc: BaseException) -> tuple[str, str]:
    """``(message, what to do)`` for an exception, both safe to show: the message is plain
    text (it may quote names and URIs from data), the hint is markdown."""
    message = redact(str(exc)).strip() or exc.__class__.__name__
    if isinstance(exc, SourceNotAllowedError):
        return message, "Use one of the allowed data sources named above."
    if isinstance(exc, PermissionDeniedError):
        return message, "Ask an administrator for a role that allows it."
    if isinstance(exc, BusyError):
        return message, "The result appears in the tab that started it."
    if isinstance(exc, StorageUnreachableError):
        return message, (
            "Start the local S3 server (`python -m ladis_core s3 start`, or `make demo`), "
            "or point AWS_ENDPOINT_URL_S3 at a reachable store, then press Refresh."
        )
    if isinstance(exc, StorageAccessDeniedError):
        return message, "Check the AWS credentials this dashboard runs with and the bucket policy."
    if isinstance(exc, BucketNotFoundError):
        return message, (
            "Check the Data source in the sidebar, or run `make demo` to build the demo world."
        )
    if isinstance(exc, StorageError):
        where = S3Settings.from_environment().describe()
        return message, f"The store is {where}; check it and press Refresh."
    if isinstance(exc, DataNotFoundError):
        return (
            message,
            "The data may have been removed or not written yet; press Refresh or pick another job.",
        )
    if isinstance(exc, InputError):
        return message, "Change the highlighted setting and try again."
    if isinstance(exc, LadisError):
        return message, "Press Refresh to try again."
    return (
        f"Something unexpected went wrong ({exc.__class__.__name__}).",
        "The details were written to the dashboard's log. Press Refresh to try again.",
    )


def show_error(exc: BaseException, *, action: str) -> None:
    """Render ``exc`` as a friendly error box about ``action`` (e.g. "loading the jobs")."""
    if not isinstance(exc, LadisError):
        log.error("unexpected error while %s", action, exc_info=exc)
    message, hint = explain(exc)
    st.error(
        f"**Problem while {literal(action)}.** {literal(message)}\n\n{hint}",
        icon=":material/error:",
    )


@contextmanager
def friendly_errors(action: str) -> Iterator[None]:
    """``with friendly_errors("loading the history"): ...`` shows errors as messages."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything a page raises
        show_error(exc, action=action)


def guarded(action: str) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Decorator form of :func:`friendly_errors` (the function returns ``None`` on error)."""

    def wrap(func: Callable[P, R]) -> Callable[P, R | None]:
        @functools.wraps(func)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R | None:
            with friendly_errors(action):
                return func(*args, **kwargs)
            return None

        return inner

    return wrap
