"""A small client of the endpoint: ``invoke`` (one request, with provenance) and ``ping``."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from ladis_core.errors import InvocationError
from ladis_core.serving.provenance import PROVENANCE_HEADER


def _opener() -> Any:
    import urllib.request

    # no proxies: the endpoint is on loopback, and an http_proxy setting must not divert it
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _endpoint_url(url: str, path: str) -> str:
    base = url.rstrip("/")
    for suffix in ("/invocations", "/ping"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + path


def invoke(
    url: str,
    image: Any,
    *,
    provenance: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """POST ``image`` to the endpoint at ``url`` as ``application/x-npy``; return the
    parsed JSON answer (``{"predictions": [...], "step": ...}``).

    ``image``: ndarray (C, H, W) or (N, C, H, W), float in [0, 1] or uint8 0–255.
    ``provenance``: fields sent in the ``X-Ladis-Provenance`` header. A refused or failed
    request raises :class:`InvocationError` carrying the status and the server's message.
    """
    import urllib.error
    import urllib.request

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(image), allow_pickle=False)
    headers = {"Content-Type": "application/x-npy", "Accept": "application/json"}
    if provenance is not None:
        headers[PROVENANCE_HEADER] = json.dumps(
            dict(provenance), separators=(",", ":"), allow_nan=False
        )
    request = urllib.request.Request(
        _endpoint_url(url, "/invocations"), data=buffer.getvalue(), headers=headers, method="POST"
    )
    try:
        with _opener().open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", "")
        except (ValueError, AttributeError, OSError):
            message = ""
        raise InvocationError(
            f"the endpoint at {url} answered {exc.code}: {message or exc.reason}", status=exc.code
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvocationError(
            f"cannot reach the endpoint at {url} ({reason}); is it running?"
        ) from None


def ping(url: str, *, timeout: float = 5.0) -> bool:
    """True when ``GET /ping`` answers 200."""
    import urllib.error

    try:
        with _opener().open(_endpoint_url(url, "/ping"), timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
