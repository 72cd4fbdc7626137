"""A TorchServe handler for your own model, captured by LADIS.

    torch-model-archiver --model-name my-model --version 1 --handler handler.py \\
        --extra-files ../mymodel.py,weights.pt
    LADIS_REFERENCE_URI=s3://ladis/trials/my-model/reference \\
    LADIS_CAPTURE_URI=s3://ladis/trials/my-model/inference torchserve --start --models my-model.mar

Every request (one image or ``.npy`` batch in its body) is one PREDICT step; the answer is
LADIS's JSON (predicted class, class name, probabilities, step).
"""

import os

from ts.torch_handler.base_handler import BaseHandler

from ladis_core.serving.codec import decode_request
from ladis_core.serving.imported import load_imported_served


class LadisHandler(BaseHandler):
    def initialize(self, context):
        model_dir = context.system_properties.get("model_dir")
        self.served = load_imported_served(
            os.environ.get("LADIS_MODEL", "mymodel:build"),
            weights=os.path.join(model_dir, "weights.pt"),
            reference=os.environ["LADIS_REFERENCE_URI"],
            capture_uri=os.environ.get("LADIS_CAPTURE_URI") or None,
        )
        self.initialized = True

    def preprocess(self, data):
        images = []
        for index, row in enumerate(data):
            body = row.get("body") or row.get("data")
            kind = self.context.get_request_header(index, "Content-Type") or "application/x-npy"
            images.append(decode_request(body, kind))
        return images

    def inference(self, data, *args, **kwargs):
        return [self.served.predict(images) for images in data]

    def postprocess(self, data):
        return [prediction.to_dict() for prediction in data]

    def close(self):
        self.served.close()


_service = LadisHandler()


def handle(data, context):
    """TorchServe's module-level entry point."""
    if not _service.initialized:
        _service.initialize(context)
    return None if data is None else _service.handle(data, context)
