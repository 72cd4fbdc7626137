"""``python -m ladis_core serve``: the model endpoint with inference capture."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

NAME = "serve"

#: the environment variable holding the operator token (never a flag: flags are visible
#: to every local user in the process list)
OPERATOR_TOKEN_ENV = "LADIS_OPERATOR_TOKEN"
HELP = "serve the model over HTTP (GET /ping, POST /invocations) and capture every request"
DESCRIPTION = """\
Serve a saved model with SageMaker's protocol: GET /ping and POST /invocations
(Content-Type application/x-npy, image/png, image/jpeg or application/json; the answer is
JSON with the predicted class and the probabilities). With --capture, every request is
recorded as one PREDICT step of an smdebug trial at that URI, which the monitoring job
reads. An optional X-Ladis-Provenance header (a JSON object) is written, with the
captured step, under --provenance.

Your own model: --model PKG.MODULE:CALLABLE (imported from the working folder or
PYTHONPATH) with --weights STATE_DICT.pt, and --reference TRIAL to feed it with the
preprocessing (image size, mean, std), class names and penultimate layer recorded by
capture-reference; --image-size/--mean/--std/--class-names override the record.

At most --workers connections are served at once (more wait, and past a queue get 503);
a request must arrive whole within --request-timeout seconds (408). GET /ping answers
counts only; the operator gets the capture and provenance URIs and last errors by
sending the header X-Ladis-Operator-Token with the value of $LADIS_OPERATOR_TOKEN.

SIGTERM or Ctrl-C stops the server after the running requests and flushes the capture
and the provenance (a second one leaves at once, without flushing).

examples:
  python -m ladis_core serve --model s3://ladis/models/digits \\
      --capture s3://ladis/trials/digits/inference --port 8080
  python -m ladis_core serve --model mymodels.cnn:build --weights cnn.pt \\
      --reference s3://ladis/trials/my-model/reference \\
      --capture s3://ladis/trials/my-model/inference --port 8080
  python -m ladis_core serve --model ./model --capture ./trials/inference --port 0"""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="model folder, s3:// prefix or model.tar.gz holding model.pt + model.json, "
        "or PKG.MODULE:CALLABLE returning your own torch.nn.Module",
    )
    parser.add_argument(
        "--reference",
        metavar="TRIAL",
        help="reference trial whose recorded preprocessing, class names and penultimate "
        "layer a PKG.MODULE:CALLABLE model is served with",
    )
    parser.add_argument(
        "--capture",
        default=None,
        help="s3:// URI or folder for the inference trial (one PREDICT step per request); "
        "without it nothing is recorded",
    )
    parser.add_argument(
        "--provenance",
        default=None,
        help="s3:// URI or folder for provenance records (needs --capture)",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port (0: any free port; default 8080)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where the model runs (default auto: the GPU when there is one)",
    )
    parser.add_argument(
        "--layers",
        default="",
        help="extra layer regexes to capture, comma-separated (inputs, outputs and the "
        "penultimate layer are always captured)",
    )
    parser.add_argument(
        "--capture-queue",
        choices=("drop_oldest", "block"),
        default=None,
        help="when the capture's queue is full (the writer cannot keep up): drop the oldest "
        "queued step, so requests never wait (default, or $LADIS_CAPTURE_QUEUE), or block "
        "the request until there is room; both are counted in /ping and /metrics",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=6.0,
        help="largest request body in MB; bigger ones get 413 (default 6, as SageMaker)",
    )
    parser.add_argument(
        "--provenance-every",
        type=int,
        default=100,
        help="write a provenance part every N recorded requests (default 100)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=16,
        help="connections served at once (default 16; more wait in a queue of 64, then 503)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds a client has to send a whole request (default 30; then 408)",
    )
    parser.add_argument("--cache-dir", default=None, help="where an s3:// model is cached locally")
    from ladis_core.commands._model_args import add_model_arguments

    add_model_arguments(parser)


def _served_model(args: argparse.Namespace, layers: tuple[str, ...]):
    """The model to serve: ``args.model`` itself for a saved model (the server loads
    it), a :class:`ServedModel` for ``PKG.MODULE:CALLABLE``."""
    from ladis_core.commands._model_args import preprocessing_from, read_class_names
    from ladis_core.devices import resolve_device
    from ladis_core.errors import InputError
    from ladis_core.model.imported import is_model_target

    if not is_model_target(args.model):
        own = [
            option
            for option, value in (
                ("--weights", args.weights),
                ("--reference", args.reference),
                ("--penultimate", args.penultimate),
                ("--image-size", args.image_size),
                ("--mean", args.mean),
                ("--class-names", args.class_names),
            )
            if value
        ]
        if own:
            raise InputError(
                f"{', '.join(own)} apply to --model PKG.MODULE:CALLABLE; a saved model "
                "folder carries its own settings in model.json"
            )
        return args.model
    from ladis_core.serving.imported import load_imported_served

    return load_imported_served(
        args.model,
        weights=args.weights,
        reference=args.reference,
        preprocessing=preprocessing_from(args),
        class_names=read_class_names(args.class_names),
        channels=args.channels,
        penultimate=args.penultimate,
        device=str(resolve_device(args.device, default="auto")),
        capture_uri=args.capture,
        layers=layers,
        queue_policy=args.capture_queue,
    )


def run(args: argparse.Namespace) -> int:
    from ladis_core.errors import InputError
    from ladis_core.serving import start_server

    if args.max_body_mb <= 0:
        raise InputError(f"--max-body-mb {args.max_body_mb} must be positive")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port (0–65535)")
    if args.workers < 1 or args.request_timeout <= 0:
        raise InputError("--workers must be at least 1 and --request-timeout positive")
    if args.provenance and not args.capture:
        raise InputError(
            "--provenance needs --capture: provenance records are keyed by the captured step"
        )
    layers = tuple(part.strip() for part in args.layers.split(",") if part.strip())

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second signal: give up flushing and leave now
            raise KeyboardInterrupt
        logging.getLogger("ladis.server").info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    model = _served_model(args, layers)
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = start_server(
            model,
            capture_uri=args.capture,
            provenance_uri=args.provenance,
            host=args.host,
            port=args.port,
            device=args.device,
            layers=layers,
            capture_queue=args.capture_queue,
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            provenance_every=args.provenance_every,
            cache_dir=args.cache_dir,
            workers=args.workers,
            request_timeout_s=args.request_timeout,
            operator_token=os.environ.get(OPERATOR_TOKEN_ENV) or None,
        )
        try:
            # one parseable line, so a parent process can find a --port 0 server
            print(f"LADIS endpoint listening on {running.url}", flush=True)
            # a timed wait keeps the main thread responsive to signals
            while not stop.wait(0.5):
                if not running.alive:
                    print("error: the HTTP server thread stopped unexpectedly", file=sys.stderr)
                    return 1
        finally:
            running.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("LADIS endpoint stopped; capture and provenance flushed", flush=True)
    return 0
