"""Sign-in, roles and permissions in the dashboard: the ONE place pages ask who is here
and what they may do.

The entry script calls :func:`gate` before it draws anything. With sign-in configured
(an ``[auth]`` section in Streamlit's secrets, ``st.login``) a visitor who is not signed
in, whose session has ended, or who has no role sees nothing but a screen saying so;
without sign-in the visitor is anonymous (``LADIS_ANONYMOUS_ROLE``, default admin) and
every page shows a banner saying access is unauthenticated. Pages then ask
:func:`allowed` / :func:`require` (``require(Permission.RECORD_VERDICT)``) and read
:func:`current` for the identity a verdict is attributed to. The rules themselves live in
:mod:`ladis_core.access`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import streamlit as st

from app import state
from app.text import literal
from ladis_core.access import Permission, Role, RolePolicy, can, exposure
from ladis_core.errors import AccessConfigError


@dataclass(frozen=True)
class Identity:
    """Who is using this session, and their role (``None``: no role)."""

    signed_in: bool
    role: Role | None
    name: str = ""
    email: str = ""
    subject: str = ""
    issuer: str = ""

    @property
    def label(self) -> str:
        """How the person is named in verdicts: e-mail, else name, else subject."""
        return self.email or self.name or self.subject or "anonymous"

    @property
    def key(self) -> str:
        """A stable key of the person (issuer and subject), for per-user limits."""
        return f"{self.issuer}|{self.subject}" if self.signed_in else "anonymous"

    def can(self, permission: Permission) -> bool:
        return can(self.role, permission)


ANONYMOUS_BANNER = (
    "**Access is unauthenticated.** Anyone who can reach this address sees every job and "
    "acts as *{role}*. Configure sign-in before sharing it (README, Production set-up)."
)


def _auth_section() -> dict[str, Any] | None:
    try:
        if not st.secrets.load_if_toml_exists():
            return None
        section = st.secrets.get("auth")
    except Exception as exc:  # noqa: BLE001 - a broken secrets file must not mean "anonymous"
        raise AccessConfigError(f"the secrets cannot be read: {exc}") from None
    return None if section is None else dict(section)


def _only(
    message: str,
    *,
    icon: str,
    button: str | None = None,
    action: Callable[[], None] | None = None,
    error: bool = False,
) -> NoReturn:
    """Show nothing but ``message`` (and a button) and end the run. The screen is the
    only page of a hidden navigation, so no page list and no link to another page is
    left from an earlier run of the session (when a session ends, say)."""

    def screen() -> None:
        st.title("LADIS")
        (st.error if error else st.info)(message, icon=icon)
        if button and action:
            st.button(button, type="primary", on_click=action)

    st.navigation(
        [st.Page(screen, title="LADIS", url_path="access", default=True)], position="hidden"
    ).run()
    st.stop()
    raise AssertionError("st.stop() ends the run")  # for type checkers: never returns


def _signed_in_identity() -> Identity:
    claims = st.user.to_dict()
    if exposure.session_expired(claims, now=time.time(), max_age_s=exposure.session_max_age_s()):
        _only(
            "Your session has ended. Sign in again to go on.",
            icon=":material/schedule:",
            button="Sign in again",
            action=st.login,
        )
    role = RolePolicy.from_environment().role_for(claims)
    identity = Identity(
        signed_in=True,
        role=role,
        name=str(claims.get("name") or ""),
        email=str(claims.get("email") or ""),
        subject=str(claims.get("sub") or ""),
        issuer=str(claims.get("iss") or ""),
    )
    if role is None:
        _only(
            f"You are signed in as {literal(identity.label)}, but you have no role in LADIS. "
            "Ask an administrator for one.",
            icon=":material/person_off:",
            button="Sign out",
            action=st.logout,
        )
    return identity


def gate() -> Identity:
    """Who is here; draws the sign-in (or refusal) screen and stops the run when the
    visitor may see nothing. Stores the identity for :func:`current`."""
    state.put(state.IDENTITY, None)  # nothing of an earlier run counts
    try:
        sign_in = exposure.sign_in_configured(_auth_section())
        if sign_in:
            if not st.user.is_logged_in:
                _only(
                    "Sign in to see the monitoring dashboard.",
                    icon=":material/lock:",
                    button="Sign in",
                    action=st.login,
                )
            identity = _signed_in_identity()
        else:
            problem = exposure.exposure_problem(
                st.get_option("server.address"),
                sign_in=False,
                allow_anonymous=exposure.anonymous_allowed(),
            )
            if problem:
                raise AccessConfigError(problem)
            identity = Identity(signed_in=False, role=exposure.anonymous_role())
            if identity.role is None:
                raise AccessConfigError(
                    f"{exposure.ANONYMOUS_ROLE_ENV}=none lets no anonymous visitor in; "
                    "configure sign-in or give anonymous visitors a role"
                )
    except AccessConfigError as exc:
        _only(
            f"**The dashboard's access settings are unusable.** {literal(exc)}",
            icon=":material/lock:",
            error=True,
        )
    state.put(state.IDENTITY, identity)
    if not identity.signed_in:
        st.warning(
            ANONYMOUS_BANNER.format(role=identity.role.label if identity.role else "nobody"),
            icon=":material/lock_open:",
        )
    return identity


def current() -> Identity:
    """The identity :func:`gate` found for this run."""
    identity = state.get(state.IDENTITY)
    if not isinstance(identity, Identity):
        raise AccessConfigError("the dashboard was opened without its sign-in gate")
    return identity


def allowed(permission: Permission) -> bool:
    return current().can(permission)


def require(permission: Permission) -> bool:
    """Whether the user may take ``permission``; when not, says which role may."""
    identity = current()
    if identity.can(permission):
        return True
    have = identity.role.label if identity.role else "no role"
    st.info(
        f"To {permission.action} you need the **{permission.least_role.label}** role; "
        f"you have **{have}**.",
        icon=":material/lock:",
    )
    return False


def account_box() -> None:
    """The sidebar's line about who is signed in, and the sign-out button."""
    identity = current()
    role = identity.role.label if identity.role else "no role"
    if not identity.signed_in:
        st.caption(f"Not signed in · anonymous access as **{role}**")
        return
    st.caption(f"Signed in as **{literal(identity.label)}** · {role}")
    st.button("Sign out", icon=":material/logout:", on_click=st.logout, width="stretch")
