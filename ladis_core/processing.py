"""The monitoring job as a SageMaker Processing container: ``python -m ladis_core.processing``.

SageMaker Processing starts the container with a job description in
``/opt/ml/config/processingjobconfig.json`` and the job's ``Environment`` as environment
variables. This module turns both into the arguments of ``python -m ladis_core monitor``
and runs it, so the container and the command line share one implementation.

Where each setting comes from (later wins):

1. the processing job config: the ``S3Uri`` of the inputs named ``reference`` and
   ``inference``, and of the output named ``monitoring`` (or ``output``/``results``, or the
   only output). The job reads and writes those S3 URIs directly (the bookmark must live in
   S3 between runs, so the local ``/opt/ml/processing`` copies are not used); the config's
   ``Environment`` map counts as environment variables;
2. SageMaker Model Monitor's variables, so a monitoring schedule can drive the container:
   ``sagemaker_endpoint_name`` (endpoint), ``publish_cloudwatch_metrics``
   (``Enabled``/``Disabled``), ``end_time`` (the scheduled time → job id);
3. ``LADIS_*`` variables: ``LADIS_REFERENCE``, ``LADIS_INFERENCE``, ``LADIS_OUTPUT``,
   ``LADIS_AT``, ``LADIS_LAYERS`` (comma-separated), ``LADIS_ALL_STEPS``,
   ``LADIS_N_SAMPLES``, ``LADIS_REPEATS``, ``LADIS_ALPHA``, ``LADIS_PERMUTATIONS``,
   ``LADIS_SEED``, ``LADIS_CLASS_MATCHED``, ``LADIS_STANDARDIZE``, ``LADIS_ALPHA_INCIDENT``,
   ``LADIS_RULE``, ``LADIS_MARGIN``,
   ``LADIS_MIN_RATE``, ``LADIS_ENDPOINT``, ``LADIS_CLOUDWATCH``, ``LADIS_NAMESPACE``,
   ``LADIS_EVERY``, ``LADIS_MAX_RUNS``, ``LADIS_DEVICE``;
4. the container arguments (``ContainerArguments``): any ``monitor`` option, e.g.
   ``--n-samples 50``.

Values are parsed, not passed through: integers accept ``100``, ``100.0`` or ``1e3``;
booleans accept ``true/false``, ``1/0``, ``yes/no``, ``on/off``, ``enabled/disabled`` (any
case); anything else stops the job with exit code 2 and a message naming the variable.
When the job fails, its message is also written to ``/opt/ml/output/message`` (SageMaker
shows it as the job's exit message) if that folder exists.

``LADIS_PROCESSING_CONFIG`` overrides the config path (tests; plain ``docker run``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ladis_core.config import redact, redact_logs
from ladis_core.errors import InputError, LadisError

DEFAULT_CONFIG_PATH = "/opt/ml/config/processingjobconfig.json"
CONFIG_PATH_VARIABLE = "LADIS_PROCESSING_CONFIG"
DEFAULT_MESSAGE_PATH = "/opt/ml/output/message"
MESSAGE_PATH_VARIABLE = "LADIS_PROCESSING_MESSAGE"

_TRUE = {"true", "1", "yes", "y", "on", "enabled"}
_FALSE = {"false", "0", "no", "n", "off", "disabled", ""}

#: (variable, monitor option, kind) — kind: str, int, float, bool, csv
_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("LADIS_REFERENCE", "--reference", "str"),
    ("LADIS_INFERENCE", "--inference", "str"),
    ("LADIS_OUTPUT", "--output", "str"),
    ("LADIS_AT", "--at", "str"),
    ("LADIS_LAYERS", "--layers", "csv"),
    ("LADIS_ALL_STEPS", "--all-steps", "bool"),
    ("LADIS_N_SAMPLES", "--n-samples", "int"),
    ("LADIS_REPEATS", "--repeats", "int"),
    ("LADIS_ALPHA", "--alpha", "float"),
    ("LADIS_PERMUTATIONS", "--permutations", "int"),
    ("LADIS_SEED", "--seed", "int"),
    ("LADIS_CLASS_MATCHED", "--class-matched", "bool"),
    ("LADIS_STANDARDIZE", "--standardize", "bool"),
    ("LADIS_ALPHA_INCIDENT", "--alpha-incident", "float"),
    ("LADIS_RULE", "--rule", "str"),
    ("LADIS_MARGIN", "--margin", "float"),
    ("LADIS_MIN_RATE", "--min-rate", "float"),
    ("LADIS_ENDPOINT", "--endpoint", "str"),
    ("LADIS_CLOUDWATCH", "--cloudwatch", "bool"),
    ("LADIS_NAMESPACE", "--namespace", "str"),
    ("LADIS_EVERY", "--every", "str"),
    ("LADIS_MAX_RUNS", "--max-runs", "int"),
    ("LADIS_DEVICE", "--device", "str"),
)

#: boolean options whose "off" form is a separate flag (the others are simply omitted)
_NEGATIONS = {"--class-matched": "--no-class-matched", "--standardize": "--no-standardize"}

_OUTPUT_NAMES = ("monitoring", "output", "results")


def parse_bool(value: Any, *, name: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off``, ``enabled/disabled`` (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{name}={value!r} is not a boolean; use true or false")


def parse_int(value: Any, *, name: str) -> int:
    """An integer from ``100``, ``100.0`` or ``1e3``; a fractional value is an error."""
    if isinstance(value, bool):
        raise InputError(f"{name}={value!r} is not an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"{name}={value!r} is not an integer") from None
    if not math.isfinite(number) or number != int(number):
        raise InputError(f"{name}={value!r} is not a whole number")
    return int(number)


def parse_float(value: Any, *, name: str) -> float:
    """A finite float (``0.05``, ``5e-2``)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InputError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{name}={value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class ProcessingJobConfig:
    """What LADIS uses from ``processingjobconfig.json``."""

    job_name: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)


def read_processing_config(path: str | os.PathLike[str] | None = None) -> ProcessingJobConfig:
    """Read the processing job config (a missing file gives an empty config, so the
    container also runs under plain ``docker run`` with environment variables)."""
    path = Path(path or os.environ.get(CONFIG_PATH_VARIABLE) or DEFAULT_CONFIG_PATH)
    if not path.is_file():
        return ProcessingJobConfig()
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"processing job config {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"processing job config {path} is not a JSON object")
    inputs: dict[str, str] = {}
    for item in _objects(data, "ProcessingInputs", path):
        uri = _mapping(item, "S3Input", path).get("S3Uri")
        if item.get("InputName") and uri:
            inputs[str(item["InputName"])] = str(uri)
    outputs: dict[str, str] = {}
    for item in _objects(_mapping(data, "ProcessingOutputConfig", path), "Outputs", path):
        uri = _mapping(item, "S3Output", path).get("S3Uri")
        if item.get("OutputName") and uri:
            outputs[str(item["OutputName"])] = str(uri)
    environment = {str(k): str(v) for k, v in _mapping(data, "Environment", path).items()}
    arguments = _mapping(data, "AppSpecification", path).get("ContainerArguments") or []
    if not isinstance(arguments, list):
        raise InputError(
            f"processing job config {path}: AppSpecification.ContainerArguments must be a list"
        )
    arguments = [str(a) for a in arguments]
    return ProcessingJobConfig(
        job_name=str(data.get("ProcessingJobName", "")),
        inputs=inputs,
        outputs=outputs,
        environment=environment,
        arguments=arguments,
    )


def _mapping(parent: dict, key: str, path: Path) -> dict:
    """``parent[key]`` when it is a JSON object (``{}`` when absent or null)."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"processing job config {path}: {key} must be a JSON object")
    return value


def _objects(parent: dict, key: str, path: Path) -> list[dict]:
    """``parent[key]`` when it is a list of JSON objects (``[]`` when absent or null)."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(f"processing job config {path}: {key} must be a list of JSON objects")
    return value


def monitor_arguments(config: ProcessingJobConfig, environ: Mapping[str, str]) -> list[str]:
    """The ``monitor`` command-line arguments described by ``config`` and ``environ``
    (``environ`` wins over the config's ``Environment``). Values are validated here, so a
    bad one is reported by its variable name."""
    env = {**config.environment, **{k: v for k, v in environ.items()}}
    args: list[str] = []
    ref = config.inputs.get("reference")
    inf = config.inputs.get("inference")
    out = next((config.outputs[n] for n in _OUTPUT_NAMES if n in config.outputs), None)
    if out is None and len(config.outputs) == 1:
        out = next(iter(config.outputs.values()))
    for option, value in (("--reference", ref), ("--inference", inf), ("--output", out)):
        if value:
            args += [option, value]
    # SageMaker Model Monitor's own variables
    if env.get("sagemaker_endpoint_name"):
        args += ["--endpoint", env["sagemaker_endpoint_name"]]
    if "publish_cloudwatch_metrics" in env and parse_bool(
        env["publish_cloudwatch_metrics"], name="publish_cloudwatch_metrics"
    ):
        args.append("--cloudwatch")
    if env.get("end_time"):
        args += ["--at", env["end_time"]]
    for variable, option, kind in _OPTIONS:
        if variable not in env:
            continue
        raw = env[variable]
        if kind == "bool":
            if parse_bool(raw, name=variable):
                args.append(option)
            elif option in _NEGATIONS:
                args.append(_NEGATIONS[option])
            continue
        if str(raw).strip() == "":
            continue
        if kind == "int":
            value = str(parse_int(raw, name=variable))
        elif kind == "float":
            value = repr(parse_float(raw, name=variable))
        elif kind == "csv":
            value = ",".join(part.strip() for part in str(raw).split(",") if part.strip())
        else:
            value = str(raw).strip()
        args += [option, value]
    return args


def _write_exit_message(message: str, environ: Mapping[str, str]) -> None:
    path = Path(environ.get(MESSAGE_PATH_VARIABLE) or DEFAULT_MESSAGE_PATH)
    if path.parent.is_dir():
        with contextlib.suppress(OSError):
            path.write_text(message[:1024])


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """Run the monitoring job described by the processing config, the environment and
    ``argv`` (the container arguments). Returns the process exit code."""
    import logging

    from ladis_core import cli

    environ = os.environ if environ is None else environ
    extra = list(sys.argv[1:] if argv is None else argv)
    try:
        config = read_processing_config(environ.get(CONFIG_PATH_VARIABLE))
        # SageMaker passes ContainerArguments as argv; use the config's copy only without argv
        arguments = [*monitor_arguments(config, environ), *(extra or config.arguments)]
        parser = cli.build_parser()
        args = parser.parse_args(["monitor", *arguments])
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
        redact_logs()
        return int(args.run(args) or 0)
    except LadisError as exc:
        message = redact(str(exc))
        print(f"error: {message}", file=sys.stderr)
        _write_exit_message(message, environ)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
