"""A SageMaker PyTorch inference script for your own model, captured by LADIS into S3.

``model.tar.gz`` holds ``weights.pt`` (the state dict) and ``code/`` (this file,
``mymodel.py`` and a ``requirements.txt`` naming LADIS). The endpoint's environment:

- ``LADIS_MODEL``: ``PKG.MODULE:CALLABLE`` building the model (default ``mymodel:build``);
- ``LADIS_REFERENCE_URI``: the reference trial written by ``capture-reference``; its
  ``ladis.json`` gives the preprocessing, the class names and the penultimate layer;
- ``LADIS_CAPTURE_URI``: the ``s3://`` prefix of the inference trial (no capture if unset).

``input_fn``, ``predict_fn`` and ``output_fn`` are LADIS's own contract functions: request
bodies in ``.npy``, PNG, JPEG or JSON; one capture step per request; a JSON answer.
"""

import atexit
import os

from ladis_core.serving.contract import input_fn, output_fn, predict_fn  # noqa: F401
from ladis_core.serving.imported import load_imported_served


def model_fn(model_dir):
    served = load_imported_served(
        os.environ.get("LADIS_MODEL", "mymodel:build"),
        weights=os.path.join(model_dir, "weights.pt"),
        reference=os.environ["LADIS_REFERENCE_URI"],
        capture_uri=os.environ.get("LADIS_CAPTURE_URI") or None,
    )
    atexit.register(served.close)  # publish the last steps when the worker stops
    return served
