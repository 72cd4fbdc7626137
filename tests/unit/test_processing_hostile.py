"""A malformed processing job config is a one-line error naming the field, never a
traceback (issue 11, item 14)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ladis_core import processing
from ladis_core.errors import InputError


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"ProcessingInputs": "s3://b/ref"}, "ProcessingInputs"),
        ({"ProcessingInputs": [1, 2]}, "ProcessingInputs"),
        ({"ProcessingInputs": [{"InputName": "reference", "S3Input": "s3://b"}]}, "S3Input"),
        ({"ProcessingOutputConfig": []}, "ProcessingOutputConfig"),
        ({"ProcessingOutputConfig": {"Outputs": {"a": 1}}}, "Outputs"),
        ({"Environment": ["LADIS_SEED=1"]}, "Environment"),
        ({"AppSpecification": "monitor"}, "AppSpecification"),
        ({"AppSpecification": {"ContainerArguments": 5}}, "ContainerArguments"),
    ],
)
def test_malformed_configs_name_the_field(tmp_path: Path, config: dict, field: str) -> None:
    path = tmp_path / "processingjobconfig.json"
    path.write_text(json.dumps(config))
    with pytest.raises(InputError, match=field):
        processing.read_processing_config(path)


def test_the_container_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "processingjobconfig.json"
    path.write_text(json.dumps({"ProcessingInputs": [None]}))
    env = {**os.environ, processing.CONFIG_PATH_VARIABLE: str(path)}
    assert processing.main([], environ=env) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: processing job config") and "\n" not in err
