"""Settings read from the environment, and secret redaction.

LADIS reaches S3 only through the standard AWS settings, so pointing it at AWS instead of
the local SeaweedFS server is a matter of environment:

- ``AWS_ENDPOINT_URL_S3``: an S3-compatible endpoint (unset on AWS).
- ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or any other
  credential source boto3 understands (profiles, instance roles).
- ``AWS_DEFAULT_REGION``.
- ``LADIS_S3_URI``: where the LADIS world lives (default ``s3://ladis/``).

The local server managed by ``python -m ladis_core s3`` draws random credentials for
each data folder (:mod:`ladis_core.devtools.credentials`); ``s3 env`` prints them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORLD_URI = "s3://ladis/"

LOCAL_S3_HOST = "127.0.0.1"
LOCAL_S3_PORT = 8333
LOCAL_REGION = "us-east-1"
LOCAL_BUCKET = "ladis"


CACHE_DIR_ENV = "LADIS_CACHE_DIR"


def cache_root() -> Path:
    """Where downloaded trials and models are cached: ``LADIS_CACHE_DIR``, else ``.cache``
    in the working folder."""
    return Path(os.environ.get(CACHE_DIR_ENV, "").strip() or ".cache")


def world_uri() -> str:
    """The root URI of the LADIS world (``LADIS_S3_URI``), always ending in ``/``."""
    uri = os.environ.get("LADIS_S3_URI", "").strip() or DEFAULT_WORLD_URI
    return uri if uri.endswith("/") else uri + "/"


@dataclass(frozen=True)
class S3Settings:
    """What boto3 will use, as far as it can be said without revealing secrets."""

    endpoint_url: str | None
    region: str
    has_static_credentials: bool

    @classmethod
    def from_environment(cls) -> S3Settings:
        return cls(
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None,
            region=os.environ.get("AWS_DEFAULT_REGION")
            or os.environ.get("AWS_REGION")
            or "us-east-1",
            has_static_credentials=bool(os.environ.get("AWS_ACCESS_KEY_ID")),
        )

    def describe(self) -> str:
        """A one-line, secret-free description (e.g. for the dashboard sidebar)."""
        where = self.endpoint_url or "AWS S3"
        return f"{where} (region {self.region})"


_SECRET_ENV_NAMES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_SIGNED_QUERY = re.compile(
    r"(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+", re.IGNORECASE
)
_AUTH_HEADER = re.compile(r"(Credential=)[^,\s/]+", re.IGNORECASE)
#: a session token however it is printed: ``x-amz-security-token:…`` (botocore's
#: canonical request), ``'X-Amz-Security-Token': b'…'`` (its request repr), ``=…``
_SESSION_TOKEN = re.compile(
    r"((?:x-amz-security-token|aws_session_token|session_token)['\"]?\s*[:=]\s*b?['\"]?)"
    r"[^'\"\s&,}]+",
    re.IGNORECASE,
)
#: the value of an Authorization header (``'Authorization': b'AWS4-HMAC-SHA256 …'``)
_AUTHORIZATION = re.compile(r"(authorization['\"]?\s*:\s*b?['\"]?)[^'\"\r\n]+", re.IGNORECASE)
#: a request signature on its own (``Signature=…`` or botocore's ``Signature:\n…``)
_SIGNATURE = re.compile(r"(Signature\s*[:=]\s*)[0-9a-f]{16,}", re.IGNORECASE)
_SECRET_KEY = re.compile(
    r"((?:aws_secret_access_key|secret_key|secretKey)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"
)


def redact(text: str) -> str:
    """Remove AWS secrets from ``text``: the values of the credential variables in the
    environment, session tokens, Authorization headers and signatures (wherever the
    credentials came from: a profile or an instance role puts nothing in the
    environment), signed-URL parameters and ``Credential=`` fragments."""
    out = str(text)
    for name in _SECRET_ENV_NAMES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            out = out.replace(value, "***")
    out = _SIGNED_QUERY.sub(r"\1***", out)
    out = _SESSION_TOKEN.sub(r"\1***", out)
    out = _AUTHORIZATION.sub(r"\1***", out)
    out = _SIGNATURE.sub(r"\1***", out)
    out = _SECRET_KEY.sub(r"\1***", out)
    return _AUTH_HEADER.sub(r"\1***", out)


class RedactingFilter(logging.Filter):
    """A handler filter that passes every record through :func:`redact` (message,
    arguments and traceback), so debug logs of boto (``-v``) never show a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
