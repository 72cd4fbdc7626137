"""Who can reach the dashboard: sign-in configured or not, the bind address, sessions.

- Sign-in is on when Streamlit's secrets hold a complete ``[auth]`` section (Streamlit's
  own OIDC support, ``st.login``). An ``[auth]`` section with keys missing is an error,
  never a reason to fall back to anonymous access.
- Without sign-in the dashboard serves on 127.0.0.1 only, unless
  ``LADIS_ALLOW_ANONYMOUS=1`` says it may serve every interface; every page then shows a
  banner saying access is unauthenticated. Anonymous users get ``LADIS_ANONYMOUS_ROLE``
  (default ``admin``: the single user of a local demo).
- A signed-in session lasts ``LADIS_SESSION_MAX_AGE`` (default 8 h) from the sign-in, or
  until the ID token expires when ``LADIS_SESSION_MAX_AGE=token``; then the user is asked
  to sign in again.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ladis_core.access.roles import Role
from ladis_core.errors import AccessConfigError

ANONYMOUS_ENV = "LADIS_ALLOW_ANONYMOUS"
ANONYMOUS_ROLE_ENV = "LADIS_ANONYMOUS_ROLE"
SECRETS_ENV = "LADIS_SECRETS_FILE"
SESSION_ENV = "LADIS_SESSION_MAX_AGE"
DEFAULT_SESSION_MAX_AGE_S = 8 * 3600
LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"

#: what ``st.login()`` needs in ``[auth]`` (the default provider)
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")


def default_secrets_files(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit looks for secrets by default, in its order (later files win)."""
    return [
        Path.home() / ".streamlit" / "secrets.toml",
        (cwd or Path.cwd()) / ".streamlit" / "secrets.toml",
    ]


def auth_section(paths: Iterable[Path]) -> dict[str, Any] | None:
    """The ``[auth]`` table of the secrets files that exist (merged, later files win), or
    ``None`` when none has one. A file that cannot be parsed raises
    :class:`~ladis_core.errors.AccessConfigError`."""
    merged: dict[str, Any] | None = None
    for path in paths:
        if not path.is_file():
            continue
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise AccessConfigError(f"the secrets file {path} cannot be read: {exc}") from None
        section = table.get("auth")
        if isinstance(section, dict):
            merged = {**(merged or {}), **section}
    return merged


def sign_in_configured(section: Mapping[str, Any] | None) -> bool:
    """Whether ``section`` (an ``[auth]`` table) turns sign-in on. A section missing any
    of :data:`AUTH_KEYS` raises :class:`~ladis_core.errors.AccessConfigError` naming them."""
    if section is None:
        return False
    missing = [key for key in AUTH_KEYS if not str(section.get(key) or "").strip()]
    if missing:
        raise AccessConfigError(
            "sign-in is half configured: the [auth] section of the secrets lacks "
            f"{', '.join(missing)} (see the README, Production set-up)"
        )
    return True


def anonymous_allowed(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return (env.get(ANONYMOUS_ENV) or "").strip() == "1"


def anonymous_role(environ: Mapping[str, str] | None = None) -> Role | None:
    env = os.environ if environ is None else environ
    text = (env.get(ANONYMOUS_ROLE_ENV) or "").strip()
    return Role.parse(text, source=ANONYMOUS_ROLE_ENV) if text else Role.ADMIN


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only
    (``None`` or ``""``: every interface, as Streamlit does by default)."""
    text = (address or "").strip().strip("[]")
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def bind_address(*, sign_in: bool, allow_anonymous: bool) -> str:
    """Every interface with sign-in or explicit anonymous access; otherwise loopback."""
    return EVERY_INTERFACE if sign_in or allow_anonymous else LOOPBACK


def exposure_problem(address: str | None, *, sign_in: bool, allow_anonymous: bool) -> str | None:
    """Why serving on ``address`` is refused (``None`` when it is fine)."""
    if sign_in or allow_anonymous or is_loopback(address):
        return None
    shown = address or "every interface"
    return (
        f"the dashboard is served on {shown} without sign-in: anyone who reaches it would "
        f"see every job. Serve it on {LOOPBACK}, configure sign-in (README, Production "
        f"set-up), or set {ANONYMOUS_ENV}=1 to allow unauthenticated access"
    )


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def session_max_age_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds a session lasts after sign-in (``8h``, ``30m``, ``90s``, ``1d`` or plain
    seconds); ``None`` (``token``): until the ID token expires."""
    env = os.environ if environ is None else environ
    text = (env.get(SESSION_ENV) or "").strip().lower()
    if not text:
        return float(DEFAULT_SESSION_MAX_AGE_S)
    if text == "token":
        return None
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise AccessConfigError(
            f"{SESSION_ENV}={text!r} is not a duration; use e.g. 8h, 30m, 90s, 1d or token"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def session_expired(claims: Mapping[str, Any], *, now: float, max_age_s: float | None) -> bool:
    """Whether a session signed in with these ID-token claims has ended at ``now`` (Unix
    seconds). The sign-in time is the ID token's ``iat`` (not ``auth_time``: with single
    sign-on that is when the user last typed a password at the provider, which may be long
    before). Without ``iat`` or, for ``max_age_s=None``, without ``exp``, the session
    counts as expired."""
    if max_age_s is None:
        expires = claims.get("exp")
        return not _is_number(expires) or now >= float(expires)
    started = claims.get("iat")
    return not _is_number(started) or now >= float(started) + max_age_s


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
