"""Strict reading of a TOML document: every key checked against what its table allows,
with its type, and every error naming the file, the key and its line (``tomllib`` keeps
no line numbers, so :class:`Locator` finds them in the text)."""

from __future__ import annotations

import re
from datetime import timedelta

from ladis_core.errors import ConfigError
from ladis_core.monitoring.schedule import parse_interval


def check_keys(raw: dict, allowed: dict[str, type], where: Locator, table: str) -> None:
    for key, value in raw.items():
        if key not in allowed:
            label = f"[{table.split('.')[0]}]" if table else "the top level"
            known = ", ".join(sorted(allowed))
            raise ConfigError(
                f"{where.source} line {where.line(table, key)}: unknown key {key!r} in {label} "
                f"(known: {known})"
            )
        want = allowed[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(
                f"{where.source} line {where.line(table, key)}: {key} must be "
                f"{_TYPE_NAMES[want]}, not {value!r}"
            )
        if table and want is list and not all(isinstance(item, str) for item in value):
            raise ConfigError(
                f"{where.source} line {where.line(table, key)}: {key} must be a list of strings"
            )


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def duration(raw: dict, key: str, default: str, where: Locator, table: str) -> timedelta:
    try:
        return parse_interval(raw.get(key, default))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - parse_interval's InputError, named here
        raise ConfigError(f"{where.source} line {where.line(table, key)}: {key}: {exc}") from None


def count(raw: dict, key: str, default: int, where: Locator, table: str) -> int:
    value = raw.get(key, default)
    if value < 0:
        raise ConfigError(f"{where.source} line {where.line(table, key)}: {key} must be >= 0")
    return int(value)


class Locator:
    """Line numbers of keys in the TOML text (``tomllib`` keeps none): tables are
    ``""`` (top level), ``fleet``, ``defaults``, ``endpoint.<k>``, ``alert.<k>``."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self._keys: dict[tuple[str, str], int] = {}
        self._tables: dict[str, int] = {}
        counts: dict[str, int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2)
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = f"{name}.{index}"
                else:
                    table = name
                self._tables.setdefault(table, number)
                self._keys.setdefault(("", name), number)
                continue
            key = self._KEY.match(line)
            if key:
                self._keys.setdefault((table, key.group(1).strip('"')), number)

    def line(self, table: str, key: str) -> int | str:
        return self._keys.get((table, key)) or self.table_line(table)

    def table_line(self, table: str) -> int | str:
        return self._tables.get(table, "?")
