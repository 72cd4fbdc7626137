"""Whether sign-in is on, where the dashboard may listen, and how long a session lasts."""

from __future__ import annotations

from pathlib import Path

import pytest

from ladis_core.access import Role, exposure
from ladis_core.errors import AccessConfigError

AUTH = """
[auth]
redirect_uri = "https://ladis.example.com/oauth2callback"
cookie_secret = "0123456789abcdef0123456789abcdef"
client_id = "ladis"
client_secret = "s3cret"
server_metadata_url = "https://idp.example.com/.well-known/openid-configuration"
"""


def test_sign_in_is_on_with_a_complete_auth_section(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH, encoding="utf-8")
    assert exposure.sign_in_configured(exposure.auth_section([tmp_path / "none.toml", secrets]))
    plain = tmp_path / "plain.toml"
    plain.write_text("[other]\nx = 1\n", encoding="utf-8")
    assert not exposure.sign_in_configured(exposure.auth_section([plain]))
    assert not exposure.sign_in_configured(exposure.auth_section([]))


def test_a_half_configured_auth_section_is_an_error_not_anonymous(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(AUTH.replace('client_secret = "s3cret"\n', ""), encoding="utf-8")
    with pytest.raises(AccessConfigError, match="client_secret"):
        exposure.sign_in_configured(exposure.auth_section([secrets]))
    broken = tmp_path / "broken.toml"
    broken.write_text("[auth\n", encoding="utf-8")
    with pytest.raises(AccessConfigError, match="cannot be read"):
        exposure.auth_section([broken])


def test_later_secrets_files_win(tmp_path: Path) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(AUTH, encoding="utf-8")
    second.write_text('[auth]\nclient_id = "other"\n', encoding="utf-8")
    assert exposure.auth_section([first, second])["client_id"] == "other"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("", False),
        (None, False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    assert exposure.is_loopback(address) is loopback


def test_bind_address_and_refusals() -> None:
    assert exposure.bind_address(sign_in=False, allow_anonymous=False) == "127.0.0.1"
    assert exposure.bind_address(sign_in=False, allow_anonymous=True) == "0.0.0.0"
    assert exposure.bind_address(sign_in=True, allow_anonymous=False) == "0.0.0.0"
    problem = exposure.exposure_problem("0.0.0.0", sign_in=False, allow_anonymous=False)
    assert problem and "LADIS_ALLOW_ANONYMOUS=1" in problem
    assert exposure.exposure_problem(None, sign_in=False, allow_anonymous=False)
    assert exposure.exposure_problem("127.0.0.1", sign_in=False, allow_anonymous=False) is None
    assert exposure.exposure_problem("0.0.0.0", sign_in=True, allow_anonymous=False) is None
    assert exposure.exposure_problem("0.0.0.0", sign_in=False, allow_anonymous=True) is None


def test_anonymous_settings() -> None:
    assert not exposure.anonymous_allowed({})
    assert not exposure.anonymous_allowed({"LADIS_ALLOW_ANONYMOUS": "yes"})
    assert exposure.anonymous_allowed({"LADIS_ALLOW_ANONYMOUS": "1"})
    assert exposure.anonymous_role({}) is Role.ADMIN
    assert exposure.anonymous_role({"LADIS_ANONYMOUS_ROLE": "viewer"}) is Role.VIEWER
    assert exposure.anonymous_role({"LADIS_ANONYMOUS_ROLE": "none"}) is None


def test_sessions_end() -> None:
    claims = {"iat": 1_000, "auth_time": 10, "exp": 4_600}
    eight_hours = exposure.session_max_age_s({})
    assert eight_hours == 8 * 3600
    # counted from the ID token's issue, not from the provider's (older) sign-in
    assert not exposure.session_expired(claims, now=1_000 + eight_hours - 1, max_age_s=eight_hours)
    assert exposure.session_expired(claims, now=1_000 + eight_hours, max_age_s=eight_hours)
    assert exposure.session_max_age_s({"LADIS_SESSION_MAX_AGE": "30m"}) == 1800
    assert exposure.session_max_age_s({"LADIS_SESSION_MAX_AGE": "token"}) is None
    assert not exposure.session_expired(claims, now=4_599, max_age_s=None)
    assert exposure.session_expired(claims, now=4_600, max_age_s=None)
    # claims without the times needed count as expired
    assert exposure.session_expired({}, now=0, max_age_s=60)
    assert exposure.session_expired({"iat": "soon"}, now=0, max_age_s=60)
    assert exposure.session_expired({"iat": 0}, now=0, max_age_s=None)
    with pytest.raises(AccessConfigError, match="LADIS_SESSION_MAX_AGE"):
        exposure.session_max_age_s({"LADIS_SESSION_MAX_AGE": "forever"})
