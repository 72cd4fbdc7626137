"""Roles and what each may do, and how a signed-in user's role is found.

Three roles, each including the one before it:

- **viewer**: browse every page, export incident reports;
- **analyst**: also record verdicts, run on-demand tests, save a test as a job;
- **admin**: also change the data source (within the allowed sources).

A signed-in user's role comes from the ID token (:class:`RolePolicy`):

- ``LADIS_ROLE_CLAIM`` names a claim (``groups``, ``roles``, or a dotted path such as
  ``realm_access.roles``) whose values (a string or a list) name roles: by the table
  ``[claim_values]`` of the roles file when it has one, else literally (``viewer``,
  ``analyst``, ``admin``);
- ``LADIS_ROLES_FILE`` (TOML) may also name people in ``[users]`` (by verified e-mail or
  by subject) and set ``default``;
- a user matched by nothing gets ``LADIS_DEFAULT_ROLE`` (else the file's ``default``, else
  ``viewer``); ``none`` lets nobody in who is not named.

The highest role matched wins. Example roles file::

    claim = "groups"            # LADIS_ROLE_CLAIM overrides it
    default = "none"
    [claim_values]
    "ladis-analysts" = "analyst"
    "ladis-admins" = "admin"
    [users]
    "alice@example.com" = "admin"
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

from ladis_core.errors import AccessConfigError

CLAIM_ENV = "LADIS_ROLE_CLAIM"
FILE_ENV = "LADIS_ROLES_FILE"
DEFAULT_ENV = "LADIS_DEFAULT_ROLE"
NO_ROLE = "none"


class Role(IntEnum):
    VIEWER = 1
    ANALYST = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: object, *, source: str) -> Role | None:
        """``"viewer"`` → :attr:`VIEWER`, ``"none"`` → ``None``; anything else raises
        :class:`~ladis_core.errors.AccessConfigError` naming ``source``."""
        name = str(text).strip().lower() if isinstance(text, str) else ""
        if name == NO_ROLE:
            return None
        for role in cls:
            if role.label == name:
                return role
        raise AccessConfigError(
            f"{source}: {text!r} is not a role; use viewer, analyst, admin or {NO_ROLE}"
        )


class Permission(Enum):
    """An action a role may take: the least role that may, and what it is (for messages)."""

    BROWSE = (Role.VIEWER, "browse the monitoring results")
    EXPORT = (Role.VIEWER, "export incident reports")
    RECORD_VERDICT = (Role.ANALYST, "record verdicts")
    RUN_TEST = (Role.ANALYST, "run on-demand tests")
    SAVE_JOB = (Role.ANALYST, "save a test as a job")
    CHANGE_SOURCE = (Role.ADMIN, "change the data source")

    @property
    def least_role(self) -> Role:
        return self.value[0]

    @property
    def action(self) -> str:
        return self.value[1]


def can(role: Role | None, permission: Permission) -> bool:
    """Whether ``role`` may take ``permission`` (``None``: no role, nothing allowed)."""
    return role is not None and role >= permission.least_role


def permissions(role: Role | None) -> list[Permission]:
    """Everything ``role`` may do, in declaration order."""
    return [p for p in Permission if can(role, p)]


def _claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return []
        value = value[part]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


@dataclass(frozen=True)
class RolePolicy:
    """How to find a signed-in user's role from the claims of their ID token."""

    claim: str | None = None
    #: claim value → role; empty: the claim's values are role names
    claim_roles: Mapping[str, Role] = field(default_factory=dict)
    #: verified e-mail (lower case) or subject → role
    users: Mapping[str, Role] = field(default_factory=dict)
    default: Role | None = Role.VIEWER

    def role_for(self, claims: Mapping[str, Any]) -> Role | None:
        """The highest role ``claims`` match, else :attr:`default`."""
        found: list[Role] = []
        email = claims.get("email")
        if isinstance(email, str) and claims.get("email_verified") is not False:
            role = self.users.get(email.strip().lower())
            if role is not None:
                found.append(role)
        subject = claims.get("sub")
        if isinstance(subject, str) and subject in self.users:
            found.append(self.users[subject])
        if self.claim:
            for value in _claim_values(claims, self.claim):
                if self.claim_roles:
                    role = self.claim_roles.get(value)
                else:
                    role = next((r for r in Role if r.label == value.strip().lower()), None)
                if role is not None:
                    found.append(role)
        return max(found) if found else self.default

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RolePolicy:
        """The policy of ``LADIS_ROLE_CLAIM``, ``LADIS_ROLES_FILE`` and ``LADIS_DEFAULT_ROLE``."""
        env = os.environ if environ is None else environ
        table: dict[str, Any] = {}
        path = (env.get(FILE_ENV) or "").strip()
        if path:
            table = _read_table(Path(path))
        source = path or FILE_ENV
        claim = (env.get(CLAIM_ENV) or "").strip() or table.get("claim") or None
        if claim is not None and not isinstance(claim, str):
            raise AccessConfigError(f"{source}: claim must be a claim name such as 'groups'")
        default_text = (env.get(DEFAULT_ENV) or "").strip()
        if default_text:
            default = Role.parse(default_text, source=DEFAULT_ENV)
        elif "default" in table:
            default = Role.parse(table["default"], source=f"{source} (default)")
        else:
            default = Role.VIEWER
        return cls(
            claim=claim,
            claim_roles=_roles_table(table, "claim_values", source=source),
            users={
                name.strip().lower() if "@" in name else name.strip(): role
                for name, role in _roles_table(table, "users", source=source).items()
            },
            default=default,
        )


def _read_table(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessConfigError(
            f"the roles file {path} ({FILE_ENV}) cannot be read: {exc.strerror or exc}"
        ) from None
    try:
        table = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise AccessConfigError(f"the roles file {path} is not valid: {exc}") from None
    if not isinstance(table, dict):
        raise AccessConfigError(f"the roles file {path} must hold a table")
    unknown = set(table) - {"claim", "default", "claim_values", "users"}
    if unknown:
        raise AccessConfigError(
            f"the roles file {path} has unknown keys {sorted(unknown)}; "
            "expected claim, default, [claim_values] and [users]"
        )
    return table


def _roles_table(table: Mapping[str, Any], key: str, *, source: str) -> dict[str, Role]:
    entries = table.get(key, {})
    if not isinstance(entries, dict):
        raise AccessConfigError(f"{source}: [{key}] must be a table of name = role")
    out: dict[str, Role] = {}
    for name, text in entries.items():
        role = Role.parse(text, source=f"{source} [{key}] {name!r}")
        if role is not None:
            out[str(name)] = role
    return out
