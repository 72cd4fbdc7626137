"""Serving: the watched classifier behind SageMaker's contract and a local HTTP endpoint.

- :mod:`~ladis_core.serving.contract`: ``model_fn`` / ``input_fn`` / ``predict_fn`` /
  ``output_fn``, what SageMaker's PyTorch containers call;
- :mod:`~ladis_core.serving.codec`: request and response bodies;
- :mod:`~ladis_core.serving.model`: :class:`ServedModel`, the model behind a lock with
  its capture;
- :mod:`~ladis_core.serving.app`, :mod:`~ladis_core.serving.http`,
  :mod:`~ladis_core.serving.server`: the local endpoint (``GET /ping``,
  ``POST /invocations``) and running it in-process;
- :mod:`~ladis_core.serving.provenance`: the ``X-Ladis-Provenance`` records;
- :mod:`~ladis_core.serving.client`: ``invoke`` and ``ping``.

Importing this package loads neither torch nor smdebug; they are imported on first use.
"""

from ladis_core.errors import (
    EndpointClosedError,
    InvocationError,
    NotAcceptableError,
    UnsupportedContentTypeError,
)
from ladis_core.serving.app import EndpointApp
from ladis_core.serving.client import invoke, ping
from ladis_core.serving.codec import (
    JPEG_TYPE,
    JSON_TYPE,
    MAX_BATCH,
    MAX_IMAGE_PIXELS,
    NPY_TYPE,
    PNG_TYPE,
    SUPPORTED_CONTENT_TYPES,
    check_accept,
    conform_images,
    decode_request,
    encode_response,
    normalize_content_type,
)
from ladis_core.serving.contract import input_fn, model_fn, output_fn, predict_fn
from ladis_core.serving.model import (
    CAPTURE_LAYERS_ENV,
    CAPTURE_URI_ENV,
    DEVICE_ENV,
    Prediction,
    ServedModel,
)
from ladis_core.serving.provenance import PROVENANCE_HEADER, ProvenanceRecorder, parse_provenance
from ladis_core.serving.server import RunningServer, start_server

__all__ = [
    "CAPTURE_LAYERS_ENV",
    "CAPTURE_URI_ENV",
    "DEVICE_ENV",
    "JPEG_TYPE",
    "JSON_TYPE",
    "MAX_BATCH",
    "MAX_IMAGE_PIXELS",
    "NPY_TYPE",
    "PNG_TYPE",
    "PROVENANCE_HEADER",
    "SUPPORTED_CONTENT_TYPES",
    "EndpointApp",
    "EndpointClosedError",
    "InvocationError",
    "NotAcceptableError",
    "Prediction",
    "ProvenanceRecorder",
    "RunningServer",
    "ServedModel",
    "UnsupportedContentTypeError",
    "check_accept",
    "conform_images",
    "decode_request",
    "encode_response",
    "input_fn",
    "invoke",
    "model_fn",
    "normalize_content_type",
    "output_fn",
    "parse_provenance",
    "ping",
    "predict_fn",
    "start_server",
]
