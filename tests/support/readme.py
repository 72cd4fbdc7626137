"""The README as tests read it: its text, one ``## `` section, and the rows of the
Markdown tables in a piece of it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def readme() -> str:
    return (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str, text: str | None = None) -> str:
    """The text under ``## title`` up to the next ``## `` heading (AssertionError if the
    heading is missing or appears twice)."""
    lines = (readme() if text is None else text).splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == f"## {title}"]
    assert len(starts) == 1, f"README has {len(starts)} '## {title}' headings"
    body = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        body.append(line)
    return "\n".join(body)


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``: a list of rows (the header first, the
    ``| --- |`` line dropped), each a list of stripped cells. A row with another number
    of cells than its header is an AssertionError (a stray ``|`` in a cell)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [cell.strip() for cell in stripped[1:-1].split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                current.append(cells)
            continue
        if current:
            header = current[0]
            for row in current[1:]:
                assert len(row) == len(header), f"{len(row)} cells under {header}: {row}"
            found.append(current)
            current = []
    return found
