"""The README's production set-up stays true: every access setting is documented, the
secrets example has exactly the keys sign-in needs, and the roles example means what the
README says."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

from ladis_core.access import Role, RolePolicy, exposure, roles, sources
from ladis_core.monitoring.limits import CostCaps

README = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")


def _toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README, flags=re.DOTALL)


def test_every_access_setting_is_in_the_readme() -> None:
    settings = [
        sources.ALLOWED_ENV,
        roles.CLAIM_ENV,
        roles.FILE_ENV,
        roles.DEFAULT_ENV,
        exposure.ANONYMOUS_ENV,
        exposure.ANONYMOUS_ROLE_ENV,
        exposure.SECRETS_ENV,
        exposure.SESSION_ENV,
        *(CostCaps.setting(f.name) for f in fields(CostCaps)),
    ]
    missing = [name for name in settings if f"`{name}" not in README]
    assert not missing, missing
    defaults = CostCaps()
    caps_row = next(line for line in README.splitlines() if "`LADIS_MAX_N`" in line)
    assert caps_row.rstrip(" |").endswith(
        ", ".join(str(getattr(defaults, f.name)) for f in fields(CostCaps))
    )


def test_the_secrets_example_turns_sign_in_on() -> None:
    (secrets,) = [b for b in _toml_blocks() if "[auth]" in b]
    section = tomllib.loads(secrets)["auth"]
    assert set(exposure.AUTH_KEYS) <= set(section)
    assert exposure.sign_in_configured(section)


def test_the_roles_example_means_what_the_table_says(tmp_path: Path) -> None:
    (example,) = [b for b in _toml_blocks() if "[claim_values]" in b]
    path = tmp_path / "roles.toml"
    path.write_text(example, encoding="utf-8")
    policy = RolePolicy.from_environment({"LADIS_ROLES_FILE": str(path)})
    assert policy.role_for({"groups": ["ladis-analysts"]}) is Role.ANALYST
    assert policy.role_for({"email": "alice@example.com"}) is Role.ADMIN
    assert policy.role_for({"groups": ["someone-else"]}) is None
