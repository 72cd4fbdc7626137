"""The fleet configuration (``fleet.toml``): endpoints, shared defaults, alert channels.

::

    [fleet]                      # optional: how the fleet runs
    world = "s3://bucket/"       # endpoints without URIs use this world's layout
    every = "1h"                 # the window length (and --every's default)
    quiet_period = "1h"          # an incident ends after this long without one
    [defaults]                   # applies to every endpoint unless it sets its own
    layers = ["avgpool_output_0"]
    n_permutations = 1000
    [[endpoint]]
    name = "ep1"
    reference = "s3://bucket/trials/ep1/reference"
    inference = "s3://bucket/trials/ep1/inference"
    output = "s3://bucket/monitoring/ep1"
    [[alert]]
    type = "webhook"             # or "smtp"
    url = "http://127.0.0.1:9999/hook"
    secret_env = "LADIS_WEBHOOK_SECRET"

Parsing is strict: an unknown key, a wrong type or a bad value is a :class:`ConfigError`
naming the key and its line. Secrets are never in the file: a channel names the
environment variables that hold them (``secret_env``, ``password_env``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from ladis_core.errors import ConfigError, InputError
from ladis_core.fleet.strict import Locator, check_keys, count, duration
from ladis_core.monitoring.protocol import KERNELS, validate_settings
from ladis_core.monitoring.results import (
    DETECTION_RATE,
    WINDOW_TEST,
    IncidentRule,
    JobSettings,
)
from ladis_core.store import layout

#: endpoint and channel names: they become object keys and label values
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

#: keys of [defaults] (and of an endpoint, which may override each)
_SETTING_KEYS = {
    "layers": list,
    "n_samples": int,
    "n_repeats": int,
    "alpha": float,
    "n_permutations": int,
    "seed": int,
    "kernel": str,
    "class_matched": bool,
    "standardize": bool,
    "alpha_incident": float,
    "rule": str,
    "margin": float,
    "min_rate": float,
    "alerts": list,
}
_ENDPOINT_KEYS = {"name": str, "reference": str, "inference": str, "output": str, **_SETTING_KEYS}
_FLEET_KEYS = {
    "world": str,
    "every": str,
    "quiet_period": str,
    "lease": str,
    "retries": int,
    "retry_backoff": str,
    "cache_dir": str,
    "metrics_port": int,
}
_WEBHOOK_KEYS = {
    "name": str,
    "type": str,
    "url": str,
    "secret_env": str,
    "format": str,
    "timeout": str,
    "retries": int,
    "backoff": str,
}
_SMTP_KEYS = {
    "name": str,
    "type": str,
    "host": str,
    "port": int,
    "sender": str,
    "to": list,
    "username_env": str,
    "password_env": str,
    "starttls": bool,
    "timeout": str,
    "retries": int,
    "backoff": str,
}


@dataclass(frozen=True)
class AlertChannel:
    """Where alerts go. ``type``: ``webhook`` (``url``, ``secret_env``: the variable
    holding the HMAC key, ``format``: ``json`` or ``slack``) or ``smtp`` (``host``,
    ``port``, ``sender``, ``to``, ``username_env``/``password_env``, ``starttls``).
    A delivery is tried ``retries + 1`` times, waiting ``backoff`` · 2^k between tries."""

    name: str
    type: str
    url: str = ""
    secret_env: str = ""
    format: str = "json"
    host: str = ""
    port: int = 25
    sender: str = ""
    to: tuple[str, ...] = ()
    username_env: str = ""
    password_env: str = ""
    starttls: bool = False
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 1.0


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint of the fleet: its trials, its monitoring prefix, the settings of its
    jobs and the names of the channels its alerts go to."""

    name: str
    reference: str
    inference: str
    output: str
    layers: tuple[str, ...] | None
    settings: JobSettings
    rule: IncidentRule
    alerts: tuple[str, ...]


@dataclass(frozen=True)
class FleetConfig:
    """A parsed ``fleet.toml`` (``source``: where it was read from)."""

    endpoints: tuple[EndpointSpec, ...]
    channels: tuple[AlertChannel, ...] = ()
    every: timedelta = timedelta(hours=1)
    quiet_period: timedelta = timedelta(hours=1)
    lease_s: float = 900.0
    retries: int = 2
    retry_backoff_s: float = 5.0
    cache_dir: str | None = None
    metrics_port: int | None = None
    world: str | None = None
    source: str = "fleet.toml"

    def channel(self, name: str) -> AlertChannel:
        return {c.name: c for c in self.channels}[name]

    def endpoint(self, name: str) -> EndpointSpec:
        for spec in self.endpoints:
            if spec.name == name:
                return spec
        raise ConfigError(f"{self.source}: no endpoint named {name!r}")


def load_config(path: str | Path) -> FleetConfig:
    """Read and check ``path``; :class:`ConfigError` names the file, key and line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the fleet config {source}: {exc}") from None
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str = "fleet.toml") -> FleetConfig:
    """Parse the text of a ``fleet.toml`` (see the module docstring)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    where = Locator(text, source)
    check_keys(data, {"fleet": dict, "defaults": dict, "endpoint": list, "alert": list}, where, "")
    fleet = data.get("fleet", {})
    check_keys(fleet, _FLEET_KEYS, where, "fleet")
    defaults = data.get("defaults", {})
    check_keys(defaults, _SETTING_KEYS, where, "defaults")

    channels = tuple(
        _channel(raw, index, where) for index, raw in enumerate(_tables(data, "alert", where))
    )
    names = [c.name for c in channels]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{source}: two [[alert]] channels are named {name!r}")
    world = fleet.get("world")
    endpoints = tuple(
        _endpoint(raw, index, defaults, set(names), world, where)
        for index, raw in enumerate(_tables(data, "endpoint", where))
    )
    if not endpoints:
        raise ConfigError(f"{source}: no [[endpoint]]; list at least one")
    seen: set[str] = set()
    for index, spec in enumerate(endpoints):
        if spec.name in seen:
            raise ConfigError(
                f"{source} line {where.line(f'endpoint.{index}', 'name')}: two endpoints are "
                f"named {spec.name!r}"
            )
        seen.add(spec.name)
    outputs = [spec.output.rstrip("/") for spec in endpoints]
    for spec in endpoints:
        if outputs.count(spec.output.rstrip("/")) > 1:
            raise ConfigError(
                f"{source}: endpoint {spec.name!r} shares its output {spec.output} with another "
                "endpoint; each endpoint needs its own monitoring prefix"
            )
    return FleetConfig(
        endpoints=endpoints,
        channels=channels,
        every=duration(fleet, "every", "1h", where, "fleet"),
        quiet_period=duration(fleet, "quiet_period", "1h", where, "fleet"),
        lease_s=duration(fleet, "lease", "15m", where, "fleet").total_seconds(),
        retries=count(fleet, "retries", 2, where, "fleet"),
        retry_backoff_s=duration(fleet, "retry_backoff", "5s", where, "fleet").total_seconds(),
        cache_dir=fleet.get("cache_dir"),
        metrics_port=fleet.get("metrics_port"),
        world=world,
        source=source,
    )


# --------------------------------------------------------------------------- parts


def _tables(data: dict, key: str, where: Locator) -> list[dict]:
    value = data.get(key, [])
    if not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"{where.source} line {where.line('', key)}: use [[{key}]] tables")
    return value


def _endpoint(
    raw: dict, index: int, defaults: dict, channels: set[str], world: str | None, where: Locator
) -> EndpointSpec:
    table = f"endpoint.{index}"
    check_keys(raw, _ENDPOINT_KEYS, where, table)
    name = raw.get("name")
    if not name:
        raise ConfigError(
            f"{where.source} line {where.table_line(table)}: [[endpoint]] needs a name"
        )
    if not NAME.match(name):
        raise ConfigError(
            f"{where.source} line {where.line(table, 'name')}: endpoint name {name!r} must be "
            "letters, digits, '.', '_' or '-' (at most 63)"
        )
    merged = {**defaults, **raw}
    uris = {}
    for key, default in (
        ("reference", layout.reference_trial_uri),
        ("inference", layout.inference_trial_uri),
        ("output", layout.monitoring_uri),
    ):
        uri = raw.get(key) or (default(world, name) if world else "")
        if not uri:
            raise ConfigError(
                f"{where.source} line {where.table_line(table)}: endpoint {name!r} has no {key}; "
                "set it or [fleet] world"
            )
        uris[key] = uri
    alerts = merged.get("alerts")
    chosen = tuple(alerts) if alerts is not None else tuple(sorted(channels))
    for channel in chosen:
        if channel not in channels:
            at = table if "alerts" in raw else "defaults"
            known = ", ".join(sorted(channels)) or "none"
            raise ConfigError(
                f"{where.source} line {where.line(at, 'alerts')}: no [[alert]] named {channel!r} "
                f"(known: {known})"
            )
    settings = JobSettings()
    values = {k: merged[k] for k in JobSettings.__dataclass_fields__ if k in merged}
    if "kernel" in values and values["kernel"] not in KERNELS:
        at = table if "kernel" in raw else "defaults"
        raise ConfigError(
            f"{where.source} line {where.line(at, 'kernel')}: kernel {values['kernel']!r} is not "
            f"one of {', '.join(KERNELS)}"
        )
    values.pop("layers", None)
    settings = replace(settings, **values)
    try:
        validate_settings(settings)
    except InputError as exc:
        raise ConfigError(
            f"{where.source} line {where.table_line(table)}: endpoint {name!r}: {exc}"
        ) from None
    rule = _rule(name, raw, merged, table, where)
    layers = merged.get("layers")
    return EndpointSpec(
        name=name,
        layers=tuple(layers) if layers else None,
        settings=settings,
        rule=rule,
        alerts=chosen,
        **uris,
    )


def _rule(name: str, raw: dict, merged: dict, table: str, where: Locator) -> IncidentRule:
    """The endpoint's incident rule: the window test at ``alpha_incident`` (the default)
    or the detection rate against ``margin``/``min_rate`` (``rule``), as ``monitor``'s
    ``--rule``/``--alpha-incident``/``--margin``/``--min-rate``."""
    basis = merged.get("rule", WINDOW_TEST)
    alpha = merged.get("alpha_incident", IncidentRule.alpha)
    for key, ok, want in (
        ("rule", basis in (WINDOW_TEST, DETECTION_RATE), f"'{WINDOW_TEST}' or '{DETECTION_RATE}'"),
        ("alpha_incident", 0.0 < alpha < 1.0, "a level between 0 and 1 (exclusive)"),
    ):
        if not ok:
            at = table if key in raw else "defaults"
            raise ConfigError(
                f"{where.source} line {where.line(at, key)}: endpoint {name!r}: {key} must be "
                f"{want}, not {merged[key]!r}"
            )
    return IncidentRule(
        margin_points=float(merged.get("margin", IncidentRule.margin_points)),
        min_rate=float(merged.get("min_rate", IncidentRule.min_rate)),
        alpha=float(alpha),
        basis=basis,
    )


def _channel(raw: dict, index: int, where: Locator) -> AlertChannel:
    table = f"alert.{index}"
    kind = raw.get("type")
    if kind not in ("webhook", "smtp"):
        raise ConfigError(
            f"{where.source} line {where.line(table, 'type')}: [[alert]] type must be "
            f"'webhook' or 'smtp', not {kind!r}"
        )
    check_keys(raw, _WEBHOOK_KEYS if kind == "webhook" else _SMTP_KEYS, where, table)
    name = raw.get("name") or f"{kind}-{index + 1}"
    if not NAME.match(name):
        raise ConfigError(
            f"{where.source} line {where.line(table, 'name')}: channel name {name!r} must be "
            "letters, digits, '.', '_' or '-'"
        )
    common = {
        "name": name,
        "type": kind,
        "timeout_s": duration(raw, "timeout", "10s", where, table).total_seconds(),
        "retries": count(raw, "retries", 3, where, table),
        "backoff_s": duration(raw, "backoff", "1s", where, table).total_seconds(),
    }
    if kind == "webhook":
        url = raw.get("url", "")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where.source} line {where.line(table, 'url') or where.table_line(table)}: "
                f"webhook {name!r} needs an http:// or https:// url"
            )
        fmt = raw.get("format", "json")
        if fmt not in ("json", "slack"):
            raise ConfigError(
                f"{where.source} line {where.line(table, 'format')}: format must be 'json' or "
                f"'slack', not {fmt!r}"
            )
        return AlertChannel(url=url, secret_env=raw.get("secret_env", ""), format=fmt, **common)
    for key in ("host", "sender", "to"):
        if not raw.get(key):
            raise ConfigError(
                f"{where.source} line {where.table_line(table)}: smtp channel {name!r} needs {key}"
            )
    return AlertChannel(
        host=raw["host"],
        port=raw.get("port", 25),
        sender=raw["sender"],
        to=tuple(str(t) for t in raw["to"]),
        username_env=raw.get("username_env", ""),
        password_env=raw.get("password_env", ""),
        starttls=bool(raw.get("starttls", False)),
        **common,
    )
