"""The README's account of the capture queue is the code's: the policies `serve` offers
and the counts `/ping` and `/metrics` give."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ladis_core.capture.writer import QUEUE_POLICIES, StepWriter
from ladis_core.commands import serve
from ladis_core.serving.app import CAPTURE_COUNTS
from ladis_core.serving.metrics import _CAPTURE_GAUGES

README = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")


def _block(name: str) -> str:
    match = re.search(f"<!-- {name}:start -->(.*?)<!-- {name}:end -->", README, re.S)
    assert match, f"README block {name} missing"
    return match.group(1)


def test_the_readme_names_the_queue_policies_and_the_default():
    named = re.findall(r"`(\w+)`", _block("capture-queue"))
    assert named == list(QUEUE_POLICIES)
    assert StepWriter.__init__.__kwdefaults__["policy"] == "drop_oldest" == QUEUE_POLICIES[0]
    parser = argparse.ArgumentParser()
    serve.register(parser)
    action = next(a for a in parser._actions if "--capture-queue" in a.option_strings)
    assert tuple(action.choices) == QUEUE_POLICIES


def test_the_readme_lists_every_count_of_ping_and_the_metrics_have_them():
    listed = re.findall(r"`(\w+)`", _block("capture-counts"))
    assert listed == [*CAPTURE_COUNTS, "upload_failing"]
    gauges = {name for name, _ in _CAPTURE_GAUGES}
    assert gauges == set(CAPTURE_COUNTS) - {"queue_policy", "steps_published"}
