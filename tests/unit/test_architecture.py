"""The layout docs/architecture.md describes, kept true: module sizes, thin pages, no
Streamlit in the library, imports that point one way, every module documented."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "ladis_core"
ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")

#: the level of each top-level package or module of ladis_core (docs/architecture.md)
LEVELS = {
    "errors": 0, "config": 0, "progress": 0, "devices": 0, "_process": 0, "_version": 0,
    "store": 1, "access": 1,
    "trials": 2, "stats": 2, "devtools": 2,
    "model": 3, "capture": 3,
    "serving": 4,
    "monitoring": 5,
    "viz": 6,
    "report": 7,
    "demo": 8, "fleet": 8,
    "commands": 9, "cli": 9, "processing": 9, "__init__": 9, "__main__": 9,
}  # fmt: skip


def _modules() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level ladis_core package) of every import in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "ladis_core":
                continue
            names = [a.name for a in node.names] if len(parts) == 1 else [parts[1]]
            found += [(node.lineno, n) for n in names if n in LEVELS]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split(".")[1])
                for a in node.names
                if a.name.startswith("ladis_core.") and a.name.split(".")[1] in LEVELS
            ]
    return found


def test_every_top_level_package_has_a_level() -> None:
    tops = {p.relative_to(LIBRARY).parts[0].removesuffix(".py") for p in _modules()}
    assert tops - set(LEVELS) <= {"schemas"}


def test_imports_point_one_way() -> None:
    upward = []
    for path in _modules():
        top = path.relative_to(LIBRARY).parts[0].removesuffix(".py")
        for line, name in _imported(path):
            if LEVELS[name] > LEVELS[top]:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert upward == []


def test_no_module_of_the_library_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_pages_are_thin() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (REPO / "pages").glob("*.py")}
    assert sizes and all(40 <= n <= 100 for n in sizes.values()), sizes


def test_the_library_does_not_import_streamlit() -> None:
    users = [
        str(p.relative_to(REPO))
        for p in _modules()
        if any(
            (
                isinstance(n, ast.Import)
                and any(a.name.split(".")[0] == "streamlit" for a in n.names)
            )
            or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "streamlit")
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        )
    ]
    assert users == []


def test_every_module_is_in_the_architecture_document() -> None:
    missing = []
    for path in _modules():
        if path.name in ("__init__.py", "__main__.py", "_version.py"):
            continue
        relative = path.relative_to(LIBRARY)
        if f"`{path.name}`" not in ARCHITECTURE and f"`{relative.as_posix()}`" not in ARCHITECTURE:
            missing.append(relative.as_posix())
    assert missing == []
