"""The SageMaker serving contract for the watched classifier, and the model behind it.

SageMaker's PyTorch containers (through the ``sagemaker-inference`` toolkit) import this
module and call, per request::

    model = model_fn(model_dir)                       # once per worker
    data = input_fn(request_body, content_type)       # bytes → images (N, C, H, W)
    prediction = predict_fn(data, model)               # → Prediction (one capture step)
    body, content_type = output_fn(prediction, accept) # → JSON

The toolkit counts each function's parameters to decide whether to pass its ``context``,
so these four take exactly the parameters above and nothing else. Importing this module
has no side effects and loads neither torch nor smdebug; they are imported on first use.

The local HTTP server (:mod:`ladis_core.serving`) calls the same functions, so what runs
locally is what would run on SageMaker. On SageMaker, inference capture is switched on
by the environment variable ``LADIS_CAPTURE_URI`` (an ``s3://`` prefix for the PREDICT
trial); ``LADIS_CAPTURE_LAYERS`` (comma-separated regexes) adds intermediate layers.

Accepted request bodies (``input_fn``):

- ``application/x-npy``: one ``.npy`` array of shape (C, H, W) or (N, C, H, W), channel
  first; floats in [0, 1], or integers as 0–255 pixel values.
- ``image/png``, ``image/jpeg``: one image (decoded by Pillow).
- ``application/json``: a nested list of the same shapes as ``.npy``, bare or as
  ``{"instances": …}`` / ``{"inputs": …}``.

Images of another size or channel count are resized (bilinear, antialiased) and
channel-converted to the model's ``spec.input_shape`` in ``predict_fn``. The answer is
``{"predictions": [{"predicted_class", "class_name", "probabilities"}], "step"}`` where
``step`` is the capture step that recorded the request (``null`` without capture).
"""

from __future__ import annotations

import os

from ladis_core.devices import resolve_device
from ladis_core.errors import EndpointClosedError, InputError
from ladis_core.serving.codec import MAX_IMAGE_PIXELS, decode_request, encode_response, pixel_limit
from ladis_core.serving.model import (
    CAPTURE_LAYERS_ENV,
    CAPTURE_URI_ENV,
    DEVICE_ENV,
    ServedModel,
)

#: the pixel cap of the model this worker loaded: SageMaker calls model_fn once per worker
#: process and then input_fn, which is not given the model, for every request
_worker_max_pixels = MAX_IMAGE_PIXELS


def model_fn(model_dir):
    """SageMaker: load the model in ``model_dir`` (``model.pt`` + ``model.json``).

    Returns a :class:`ServedModel`. Capture is on when ``LADIS_CAPTURE_URI`` is set
    (``LADIS_CAPTURE_LAYERS``: extra layer regexes, comma-separated); the device comes
    from ``LADIS_DEVICE`` (default: the GPU when there is one).
    """
    import atexit

    capture_uri = os.environ.get(CAPTURE_URI_ENV, "").strip() or None
    layers = tuple(
        x.strip() for x in os.environ.get(CAPTURE_LAYERS_ENV, "").split(",") if x.strip()
    )
    served = ServedModel.load(
        model_dir,
        device=str(resolve_device(os.environ.get(DEVICE_ENV) or None, default="auto")),
        capture_uri=capture_uri,
        layers=layers,
    )
    if served.capture is not None:
        # publish the steps still staged when the worker exits
        atexit.register(served.close)
    global _worker_max_pixels
    _worker_max_pixels = pixel_limit(served.spec.input_shape)
    return served


def input_fn(request_body, content_type):
    """SageMaker: decode a request body into float32 images (N, C, H, W) in [0, 1]; an
    image bigger than the loaded model warrants (:func:`pixel_limit`) is refused."""
    with _toolkit_errors():
        return decode_request(request_body, content_type, max_pixels=_worker_max_pixels)


def predict_fn(data, model):
    """SageMaker: classify decoded images with a :class:`ServedModel`; one capture step."""
    with _toolkit_errors():
        return model.predict(data)


def output_fn(prediction, accept):
    """SageMaker: the JSON answer, as ``(body bytes, "application/json")``."""
    with _toolkit_errors():
        return encode_response(prediction, accept)


class _toolkit_errors:
    """On SageMaker, turn LADIS's client errors into the toolkit's errors so the client
    gets 400/406/415 with the message instead of a 500; elsewhere a no-op."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, InputError | EndpointClosedError):
            return False
        try:
            from sagemaker_inference.errors import GenericInferenceToolkitError
        except ImportError:
            return False
        status = getattr(exc, "status", 400)
        raise GenericInferenceToolkitError(status, str(exc)) from exc
