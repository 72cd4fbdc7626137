"""The fleet config: strict keys with their line, defaults shared by every endpoint,
endpoints from a world's layout, alert channels by name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ladis_core.errors import ConfigError
from ladis_core.fleet.config import parse_config

BASE = """\
[fleet]
world = "s3://bucket/ladis/"
quiet_period = "6h"

[defaults]
layers = ["avgpool_output_0"]
n_permutations = 500
alerts = ["hook"]

[[endpoint]]
name = "ep1"

[[endpoint]]
name = "ep2"
reference = "s3://other/ref"
inference = "s3://other/inf"
output = "s3://other/monitoring/ep2"
n_permutations = 2000
min_rate = 30

[[alert]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9999/hook"
secret_env = "LADIS_WEBHOOK_SECRET"

[[alert]]
name = "mail"
type = "smtp"
host = "127.0.0.1"
sender = "ladis@example.org"
to = ["a@example.org"]
"""


def test_defaults_apply_unless_an_endpoint_sets_its_own() -> None:
    config = parse_config(BASE)
    ep1, ep2 = config.endpoints
    assert ep1.reference == "s3://bucket/ladis/trials/ep1/reference"
    assert ep1.output == "s3://bucket/ladis/monitoring/ep1"
    assert ep1.layers == ("avgpool_output_0",)
    assert (ep1.settings.n_permutations, ep2.settings.n_permutations) == (500, 2000)
    assert ep2.output == "s3://other/monitoring/ep2" and ep2.rule.min_rate == 30
    assert ep1.alerts == ep2.alerts == ("hook",)
    assert config.quiet_period == timedelta(hours=6) and config.every == timedelta(hours=1)
    assert config.channel("mail").to == ("a@example.org",) and config.channel("mail").port == 25


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("n_permutations = 2000", "n_permutation = 2000"),
            "line 18: unknown key 'n_permutation' in [endpoint]",
        ),
        (('quiet_period = "6h"', 'quiet = "6h"'), "line 3: unknown key 'quiet' in [fleet]"),
        (
            ('secret_env = "LADIS_WEBHOOK_SECRET"', 'secret = "x"'),
            "line 25: unknown key 'secret' in [alert]",
        ),
        (("min_rate = 30", 'min_rate = "high"'), "line 19: min_rate must be a number, not 'high'"),
        (
            ('alerts = ["hook"]', 'alerts = ["pager"]'),
            "line 8: no [[alert]] named 'pager' (known: hook, mail)",
        ),
        (
            ('type = "smtp"', 'type = "pager"'),
            "line 29: [[alert]] type must be 'webhook' or 'smtp'",
        ),
        (('quiet_period = "6h"', 'quiet_period = "soon"'), "line 3: quiet_period: interval 'soon'"),
        (
            ("n_permutations = 500", "n_permutations = 0"),
            "endpoint 'ep1': n_permutations=0 must be",
        ),
        (('name = "ep2"', 'name = "ep1"'), "line 14: two endpoints are named 'ep1'"),
        (('name = "ep2"', 'name = "../ep"'), "line 14: endpoint name '../ep' must be letters"),
        (
            ('url = "http://127.0.0.1:9999/hook"', 'url = "ftp://x"'),
            "line 24: webhook 'hook' needs an http",
        ),
    ],
)
def test_bad_configs_name_the_key_and_its_line(change: tuple[str, str], message: str) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="fleet.toml")
    assert str(error.value).startswith("fleet.toml ")
    assert message in str(error.value)


def test_the_incident_rule_is_configurable_like_monitors() -> None:
    """alpha_incident and rule, as monitor's --alpha-incident and --rule: the default is
    the window test at 0.01; an endpoint may decide by the detection rate instead."""
    config = parse_config(BASE)
    assert [(e.rule.basis, e.rule.alpha) for e in config.endpoints] == [
        ("window-test", 0.01),
        ("window-test", 0.01),
    ]
    text = BASE.replace("n_permutations = 500", "n_permutations = 500\nalpha_incident = 0.001")
    text = text.replace("min_rate = 30", 'min_rate = 30\nrule = "detection-rate"')
    ep1, ep2 = parse_config(text).endpoints
    assert (ep1.rule.basis, ep1.rule.alpha) == ("window-test", 0.001)
    assert (ep2.rule.basis, ep2.rule.min_rate) == ("detection-rate", 30)
    # the rule decides: a window test p of 0.005 is an incident at 0.01, not at 0.001
    assert parse_config(BASE).endpoints[0].rule.decide(0.005, 5.0, 4.0)
    assert not ep1.rule.decide(0.005, 5.0, 4.0) and ep2.rule.decide(0.5, 90.0, 4.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("min_rate = 30", 'min_rate = 30\nrule = "p-value"'),
            "line 20: endpoint 'ep2': rule must",
        ),
        (
            ("n_permutations = 500", "n_permutations = 500\nalpha_incident = 1.5"),
            "line 8: endpoint 'ep1': alpha_incident must be a level",
        ),
        (
            ("n_permutations = 500", 'n_permutations = 500\nalpha_incident = "low"'),
            "line 8: alpha_incident must be a number",
        ),
    ],
)
def test_a_bad_incident_rule_names_its_line(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(BASE.replace(*change), source="fleet.toml")


def test_an_endpoint_needs_its_uris_or_a_world() -> None:
    with pytest.raises(ConfigError, match="line 1: endpoint 'x' has no reference; set it or"):
        parse_config('[[endpoint]]\nname = "x"\n')
    with pytest.raises(ConfigError, match="no \\[\\[endpoint\\]\\]"):
        parse_config('[fleet]\nworld = "s3://b/"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[[endpoint]\n")


def test_two_endpoints_may_not_share_an_output() -> None:
    text = BASE.replace(
        'output = "s3://other/monitoring/ep2"', 'output = "s3://bucket/ladis/monitoring/ep1/"'
    )
    with pytest.raises(ConfigError, match="shares its output"):
        parse_config(text)


def test_the_readme_example_is_a_valid_config() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```toml\n")[1:]]
    example = next(b for b in blocks if "[[endpoint]]" in b)
    config = parse_config(example, source="README.md")
    assert [e.name for e in config.endpoints] == ["ep1", "ep2"]
    assert config.endpoint("ep2").inference == "s3://bucket/ladis/trials/ep2/inference"
    assert config.endpoint("ep2").alerts == ("oncall",) and config.retries == 2
    assert config.quiet_period == timedelta(hours=2)


def _known_keys(text: str) -> list[str]:
    """The keys a table allows, as the error for an unknown key lists them."""
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    known = str(error.value).split("(known: ", 1)[1].rstrip(")")
    return known.split(", ")


def test_the_readme_names_every_key_and_every_metric() -> None:
    from pathlib import Path

    from ladis_core.fleet.metrics import FleetMetrics

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Fleets", 1)[1].split("\n## ", 1)[0]
    endpoint = '[[endpoint]]\nname = "x"\nreference = "r"\ninference = "i"\noutput = "o"\n'
    keys = {
        "fleet": _known_keys("[fleet]\nbogus = 1\n" + endpoint),
        "defaults": _known_keys("[defaults]\nbogus = 1\n" + endpoint),
        "endpoint": _known_keys(endpoint + "bogus = 1\n"),
        "webhook": _known_keys(endpoint + '[[alert]]\ntype = "webhook"\nbogus = 1\n'),
        "smtp": _known_keys(endpoint + '[[alert]]\ntype = "smtp"\nbogus = 1\n'),
    }
    assert {"alpha_incident", "rule", "lease"} <= set(keys["endpoint"]) | set(keys["fleet"])
    missing = {t: [k for k in ks if f"`{k}`" not in section] for t, ks in keys.items()}
    assert not any(missing.values()), missing
    metrics = [m.name for m in FleetMetrics().registry.collect()]
    assert len(metrics) >= 10
    assert not [m for m in metrics if f"`{m}" not in section]
