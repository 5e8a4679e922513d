"""Run under torchrun by test_training_loop: a few DDP steps, then each rank saves its weights."""

import os
import sys
from pathlib import Path

import torch
from _tiny_spine import tiny_source

from SpineLabelerLib.training.loop import TrainConfig, train

if __name__ == "__main__":
    out = Path(sys.argv[1])
    cfg = TrainConfig.from_dict(
        {
            "seed": 3,
            "steps": 3,
            "batch_size": 1,
            "spacing_mm": 3.0,
            "size_kji": [16, 8, 8],
            "net": {"base_channels": 4, "depth": 2, "convs_per_level": 1},
            "val_samples": 1,
            "log_every": 1,
            "val_every": 3,
            "checkpoint_every": 3,
            "threads": 1,
        }
    )
    summary = train(
        "stage1", cfg, out, sources=(tiny_source(4), tiny_source(1, "val")), device="cpu"
    )
    torch.save(summary["model"].state_dict(), out / f"rank{summary['rank']}.pt")
    # The run is over and saved. Skip the interpreter's teardown: under load, gloo's threads
    # once aborted it ("terminate called without an active exception", SIGABRT) in CI.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
