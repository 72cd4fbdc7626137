"""The README's "Reliability and security" section stays true: every test a row names
exists, every item of issue 11 and every case of the fault-injection suite has a row,
each row says what was lost, and the endpoint figures are quoted in their shape and
agree with the benchmark table."""

from __future__ import annotations

import ast
import re
from functools import cache

from tests.support.readme import REPO, readme, section, tables

TITLE = "Reliability and security"
FAULT_SUITE = "tests/integration/test_faults.py"
NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tables() -> tuple[list[list[str]], list[list[str]]]:
    """The section's table of inputs and faults, and its table of measured figures."""
    rows, figures = tables(section(TITLE))
    assert rows[0] == ["#", "injected or tried", "what LADIS does", "lost", "test"]
    assert figures[0] == ["measured", "before", "after"]
    return rows[1:], figures[1:]


@cache
def _test_functions(path: str) -> frozenset[str]:
    """Names of the module-level test functions of ``path`` (by its syntax tree)."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    )


def test_the_section_comes_before_the_benchmarks() -> None:
    headings = [line for line in readme().splitlines() if line.startswith("## ")]
    assert headings.index(f"## {TITLE}") + 1 == headings.index("## Benchmarks")


def test_every_named_test_exists() -> None:
    rows, _ = _tables()
    for row in rows:
        named = NAMED_TEST.findall(row[4])
        assert named, f"row {row[0]} ({row[1][:40]}…) names no test"
        assert len(named) == row[4].count("::"), f"row {row[0]}: a test not named as file::test"
        for path, name in named:
            assert (REPO / path).is_file(), f"row {row[0]}: no file {path}"
            assert name in _test_functions(path), f"row {row[0]}: no {path}::{name}"


def test_every_item_of_the_issue_and_every_fault_case_has_a_row() -> None:
    rows, _ = _tables()
    items = {row[0] for row in rows}
    assert {str(i) for i in range(1, 16)} <= items
    assert all(item.isdigit() or re.fullmatch(r"F\d+", item) for item in items), items
    named = {name for row in rows for path, name in NAMED_TEST.findall(row[4])}
    missing = _test_functions(FAULT_SUITE) - named
    assert not missing, f"fault-injection cases without a row: {sorted(missing)}"


def test_every_row_says_what_was_lost() -> None:
    rows, _ = _tables()
    for row in rows:
        assert row[3].startswith("nothing"), f"row {row[0]}: lost is {row[3]!r}"


#: what each figure row measures, and the shape of its figures (a number or a range of
#: two runs, with its unit), before and after; a note in parentheses may follow
FIGURES = [
    ("PNG", r"\+\d+(\.\d+)? MiB"),
    ("threads held", r"\d+(–\d+)?"),
    ("trickled", r"(still open|cut) after \d+(\.\d+)? s"),
    ("S3 is killed", r"\d+(–\d+)? m?s"),
    ("S3 is frozen", r"\d+(–\d+)? m?s"),
]


def test_the_endpoint_figures_have_their_shape_and_match_the_benchmark_table() -> None:
    _, figures = _tables()
    assert [next(k for k, _ in FIGURES if k in row[0]) for row in figures] == [
        k for k, _ in FIGURES
    ]
    (bench_row,) = [
        row
        for table in tables(section("Benchmarks"))
        for row in table
        if row[0] == "`bench_endpoint_abuse.py`"
    ]
    for row, (what, shape) in zip(figures, FIGURES, strict=True):
        for when, cell in zip(("before", "after"), row[1:], strict=True):
            figure = cell.split(" (")[0]
            assert re.fullmatch(shape, figure), f"{what}, {when}: {cell!r}"
            assert re.fullmatch(r"[^()]+( \(.+\))?", cell), f"{what}, {when}: {cell!r}"
            assert figure in bench_row[1], f"{what}: {figure!r} not in the benchmark table"
