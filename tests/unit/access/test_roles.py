"""Roles: what each may do, and a signed-in user's role from their ID token's claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from ladis_core.access import Permission, Role, RolePolicy, can, permissions
from ladis_core.errors import AccessConfigError


def test_each_role_includes_the_one_before() -> None:
    assert permissions(Role.VIEWER) == [Permission.BROWSE, Permission.EXPORT]
    assert set(permissions(Role.ANALYST)) == set(permissions(Role.VIEWER)) | {
        Permission.RECORD_VERDICT,
        Permission.RUN_TEST,
        Permission.SAVE_JOB,
    }
    assert permissions(Role.ADMIN) == list(Permission)
    assert not can(Role.ANALYST, Permission.CHANGE_SOURCE)
    assert not any(can(None, p) for p in Permission)


def test_a_claim_naming_roles_literally() -> None:
    policy = RolePolicy(claim="roles", default=None)
    assert policy.role_for({"roles": ["analyst"]}) is Role.ANALYST
    assert policy.role_for({"roles": "Admin"}) is Role.ADMIN
    assert policy.role_for({"roles": ["viewer", "analyst"]}) is Role.ANALYST  # highest wins
    assert policy.role_for({"roles": ["superuser"]}) is None
    assert policy.role_for({"roles": 3}) is None
    assert policy.role_for({}) is None


def test_a_nested_claim() -> None:
    policy = RolePolicy(claim="realm_access.roles", default=None)
    assert policy.role_for({"realm_access": {"roles": ["admin", "x"]}}) is Role.ADMIN
    assert policy.role_for({"realm_access": "admin"}) is None


def test_the_roles_file(tmp_path: Path) -> None:
    path = tmp_path / "roles.toml"
    path.write_text(
        """
claim = "groups"
default = "none"
[claim_values]
"ladis-analysts" = "analyst"
"ladis-admins" = "admin"
[users]
"Alice@Example.com" = "admin"
"subject-42" = "viewer"
""",
        encoding="utf-8",
    )
    policy = RolePolicy.from_environment({"LADIS_ROLES_FILE": str(path)})
    assert policy.claim == "groups"
    assert policy.role_for({"groups": ["ladis-analysts"]}) is Role.ANALYST
    # with a claim_values table, the role names themselves mean nothing
    assert policy.role_for({"groups": ["admin"]}) is None
    assert policy.role_for({"email": "alice@example.com", "email_verified": True}) is Role.ADMIN
    # an unverified e-mail address names nobody
    assert policy.role_for({"email": "alice@example.com", "email_verified": False}) is None
    assert policy.role_for({"sub": "subject-42"}) is Role.VIEWER
    assert policy.role_for({"sub": "subject-42", "groups": "ladis-admins"}) is Role.ADMIN
    # the environment overrides the file's claim and default
    env = {
        "LADIS_ROLES_FILE": str(path),
        "LADIS_ROLE_CLAIM": "roles",
        "LADIS_DEFAULT_ROLE": "viewer",
    }
    policy = RolePolicy.from_environment(env)
    assert policy.role_for({"groups": ["ladis-analysts"]}) is Role.VIEWER
    assert policy.role_for({"roles": ["ladis-analysts"]}) is Role.ANALYST


def test_defaults_without_settings() -> None:
    policy = RolePolicy.from_environment({})
    assert policy.claim is None
    assert policy.role_for({"sub": "anyone", "groups": ["admin"]}) is Role.VIEWER
    assert RolePolicy.from_environment({"LADIS_DEFAULT_ROLE": "none"}).role_for({}) is None


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("default = 'root'", ".toml", "is not a role"),
        ("[users]\n'a@b.c' = 'owner'", ".toml", "is not a role"),
        ("claim_values = 3", ".toml", "must be a table"),
        ("[userz]\n", ".toml", "unknown keys"),
        ("not toml at all = = =", ".toml", "not valid"),
        ('["a list"]', ".json", "must hold a table"),
    ],
)
def test_bad_roles_files_are_refused(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"roles{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AccessConfigError, match=message):
        RolePolicy.from_environment({"LADIS_ROLES_FILE": str(path)})


def test_a_missing_roles_file_or_bad_default_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AccessConfigError, match="cannot be read"):
        RolePolicy.from_environment({"LADIS_ROLES_FILE": str(tmp_path / "absent.toml")})
    with pytest.raises(AccessConfigError, match="LADIS_DEFAULT_ROLE"):
        RolePolicy.from_environment({"LADIS_DEFAULT_ROLE": "everyone"})
