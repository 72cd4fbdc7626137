"""Any PyTorch model behind FastAPI, monitored by LADIS: the lines marked ``# LADIS`` are
all that is added to the plain app (the capture uploads in the background and when the
app shuts down).

    LADIS_CAPTURE_URI=s3://ladis/trials/my-model/inference MODEL_WEIGHTS=digits_cnn.pt \\
        PYTHONPATH=examples uvicorn fastapi_app:app --port 8000
    curl --data-binary @image.npy http://127.0.0.1:8000/predict

Requests carry one ``.npy`` array (N, 3, 16, 16) in [0, 1]; each is one PREDICT step of
the trial, which ``python -m ladis_core monitor`` tests against the reference.
"""

import io
import os

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from mymodel import build

from ladis_core.capture import ServingCapture  # LADIS

model = build()
model.load_state_dict(torch.load(os.environ["MODEL_WEIGHTS"], weights_only=True))
model.eval()
capture = ServingCapture(model, os.environ["LADIS_CAPTURE_URI"], input_shape=(3, 16, 16))  # LADIS
app = FastAPI(lifespan=capture.lifespan)  # LADIS: publish the last steps on shutdown


@app.post("/predict")
async def predict(request: Request) -> dict:
    try:
        batch = np.load(io.BytesIO(await request.body()), allow_pickle=False)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"send one .npy array ({exc})") from None
    if batch.ndim != 4 or batch.shape[1:] != (3, 16, 16):
        raise HTTPException(status_code=400, detail="the array must be (N, 3, 16, 16)")
    logits, step = capture.record(torch.from_numpy(batch.astype(np.float32)))  # LADIS
    return {"classes": logits.argmax(dim=1).tolist(), "step": step}
