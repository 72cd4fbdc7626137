"""The error contract: every LADIS error lives in ladis_core.errors with its own kind, and
callers decide by class, never by message text."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from ladis_core import errors
from ladis_core.errors import (
    BucketNotFoundError,
    LadisError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnreachableError,
)

PACKAGE = Path(errors.__file__).resolve().parent


def _error_classes() -> list[type[LadisError]]:
    return [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, LadisError)
    ]


def test_every_error_class_is_defined_in_errors_py() -> None:
    defined = {cls.__name__ for cls in _error_classes()}
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & (defined | {"LadisError"}):
                    elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert elsewhere == []


def test_every_error_has_its_own_machine_readable_kind() -> None:
    kinds = [cls.kind for cls in _error_classes()]
    assert len(kinds) == len(set(kinds)), kinds
    assert all(k and k == k.lower() and " " not in k for k in kinds)


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (StorageUnreachableError("the store went away"), "Start the local S3 server"),
        (StorageAccessDeniedError("no"), "credentials"),
        (BucketNotFoundError("gone"), "Data source"),
        # message text that used to be matched no longer decides anything
        (StorageError("cannot reach: access denied, does not exist"), "The store is"),
    ],
)
def test_the_dashboard_hint_follows_the_error_class_not_its_text(
    error: LadisError, hint: str
) -> None:
    from app.ui_errors import explain

    message, advice = explain(error)
    assert message == str(error)
    assert hint in advice
