"""``spinelabeler train stage1|stage2 --config FILE --out DIR``: train one network.

The same command under ``torchrun --nproc_per_node N`` trains with DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the stage-1 or stage-2 network (phantoms drawn on the fly, or --data)",
        description="Train one network with resumable checkpoints; under torchrun it uses DDP.",
    )
    p.add_argument("stage", choices=("stage1", "stage2"))
    p.add_argument("--config", required=True, help="JSON training settings (see configs/)")
    p.add_argument("--out", required=True, help="run folder: checkpoint, log.jsonl, weights")
    p.add_argument("--data", default=None, help="folder of real CTs in the VerSe layout")
    p.add_argument("--steps", type=int, default=None, help="total steps (default: the config's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: the config's; speed only)"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop (validated and saved) after this much training time; --resume goes on",
    )
    p.add_argument(
        "--init",
        default=None,
        help="start from this weight file of the same stage (fine-tuning; not with --resume)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _progress_bar(width: int = 30):
    start = time.time()

    def show(stage: str, fraction: float, message: str) -> None:
        filled = int(round(fraction * width))
        elapsed = time.time() - start
        sys.stderr.write(
            f"\r{stage} [{'#' * filled}{'.' * (width - filled)}] {message} {elapsed:6.0f} s"
        )
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


EXIT_REFUSED = 2  # a setting, file or folder that cannot be used: nothing was trained


def _refuse(message: str) -> int:
    print(f"spinelabeler train: {message}", file=sys.stderr)
    return EXIT_REFUSED


def run(args: argparse.Namespace) -> int:
    import json

    from SpineLabelerLib.nets import ModelFileError
    from SpineLabelerLib.training.data import SourceError
    from SpineLabelerLib.training.loop import CHECKPOINT_NAME, TrainConfig, train

    try:
        cfg = TrainConfig.from_file(args.config)
    except FileNotFoundError:
        return _refuse(f"no training config {args.config}")
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        return _refuse(f"{args.config} is not a usable training config: {err}")
    if args.threads is not None:
        cfg.threads = max(1, args.threads)
    command = "spinelabeler " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.resume and not (Path(args.out) / CHECKPOINT_NAME).is_file():
        print(
            f"no run to resume in {args.out} (no {CHECKPOINT_NAME}): starting a new one",
            file=sys.stderr,
        )
    try:
        summary = train(
            args.stage,
            cfg,
            args.out,
            data_dir=args.data,
            steps=args.steps,
            resume=args.resume,
            progress=None if args.no_progress else _progress_bar(),
            device=args.device,
            command=command,
            init_weights=args.init,
            time_limit_s=None if args.max_minutes is None else 60.0 * args.max_minutes,
        )
    except (FileNotFoundError, FileExistsError, ModelFileError, SourceError) as err:
        return _refuse(str(err))  # --data, --init, --out, the config's real data
    if summary["rank"] == 0:
        print(
            f"{args.stage}: {summary['steps']} steps, validation {summary['validation']}, "
            f"{summary['wall_s']:.0f} s; weights in {args.out}"
        )
    return 0
