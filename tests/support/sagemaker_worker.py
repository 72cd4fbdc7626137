"""One worker of a SageMaker-style distributed training job (run as a script by
tests/integration/test_sagemaker_trials.py): smdebug's own hook, ``include_workers="all"``,
``save_interval=2``, several collections, DDP over gloo; the layers LADIS needs recorded
with ``ladis_core.capture.describe_trial``. smdebug's exit handler writes
``training_job_end.ts``, as in a real job.

    python sagemaker_worker.py RANK WORLD PORT TRIAL_DIR DATA.npz WEIGHTS.pt
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import smdebug.pytorch as smd
import torch
import torch.distributed as dist
from torch import nn

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def main(rank: int, world: int, port: int, trial: str, data: str, weights: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    sys.path.insert(0, str(EXAMPLES))
    from mymodel import build

    from ladis_core.capture import describe_trial

    torch.manual_seed(0)
    model = build()
    regex = describe_trial(model, trial, input_shape=(3, 16, 16))
    hook = smd.Hook(
        out_dir=trial,
        include_workers="all",
        save_config=smd.SaveConfig(save_interval=2),
        include_regex=regex,
        include_collections=["default", "weights", "losses"],
    )
    hook.register_module(model)
    loss_fn = nn.CrossEntropyLoss()
    hook.register_loss(loss_fn)
    parallel = nn.parallel.DistributedDataParallel(model)
    arrays = np.load(data)
    images = torch.from_numpy(arrays["images"][rank::world])
    labels = torch.from_numpy(arrays["labels"][rank::world])
    optimiser = torch.optim.SGD(parallel.parameters(), lr=0.05, momentum=0.9)
    hook.set_mode(smd.modes.TRAIN)
    for _epoch in range(3):
        for start in range(0, 160, 16):
            optimiser.zero_grad()
            loss = loss_fn(parallel(images[start : start + 16]), labels[start : start + 16])
            loss.backward()
            optimiser.step()
    hook.set_mode(smd.modes.EVAL)  # validation: 6 batches of 20, every 2nd saved
    with torch.no_grad():
        for start in range(160, 280, 20):
            parallel(images[start : start + 20])
    if rank == 0:
        torch.save(model.state_dict(), weights)
    dist.destroy_process_group()


if __name__ == "__main__":
    rank, world, port = (int(v) for v in sys.argv[1:4])
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    main(rank, world, port, *sys.argv[4:7])
