"""``spinelabeler fit-level-head --stage2 FILE --out FILE``: fit the count check's level head.

The head reads the stage-2 net's features, so every new stage-2 file (a fine-tuning on your
own CTs included) needs its own head; until it has one, the pipeline names the vertebrae
without checking the count and says so. See ``SpineLabelerLib/training/level_head.py``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_CONFIG = "configs/stage2_gpu.json"  # the phantom crops and patch of the shipped net


def config_path(name: str) -> Path:
    """``name`` as given, else inside the project (the default works from any folder)."""
    from SpineLabelerLib.childjob import library_root

    given = Path(name)
    if given.is_file() or given.is_absolute():
        return given
    return library_root() / given


def default_workers() -> int:
    """Case preparation processes beside the one running the net: all cores but one, at most 8."""
    return min(8, max(1, (os.cpu_count() or 2) - 1))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The fit's arguments (``training.level_head.fit`` takes them as plain parameters)."""
    p.add_argument("--stage2", required=True, help="the stage-2 weight file to read features of")
    p.add_argument("--out", required=True, help="the level-head file to write (never overwritten)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="phantom crops and patch size")
    p.add_argument(
        "--data",
        default=None,
        help="fit on real CTs in the VerSe (or CSI 2014) layout instead of phantoms; the "
        "cases --config's val_cases holds out (as `spinelabeler train --data` does) give "
        "held-out figures of their own, next to the phantoms'",
    )
    p.add_argument(
        "--rendered-masks",
        nargs="+",
        default=[],
        metavar="PATH",
        help="expert masks (files, or folders of *_seg-vert_msk.nii.gz) rendered as CT with "
        "random appearance and fit on beside the phantoms, so that the head learns real shapes; "
        "a case measured later must not be among them",
    )
    p.add_argument("--renders", type=int, default=50, help="renders of those masks to fit on")
    p.add_argument("--cases", type=int, default=200, help="phantom crops to fit on")
    p.add_argument("--heldout-cases", type=int, default=30, help="phantom crops to measure on")
    p.add_argument("--per-case", type=int, default=16, help="patches drawn per crop")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--threads", type=int, default=2, help="CPU threads of the net")
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes that draw the crops while the net runs (0: none; default all cores "
        "but one, at most 8; the rows do not depend on it)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit-level-head",
        help="fit the level head (the count check) to a stage-2 weight file",
        description=__doc__,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from SpineLabelerLib.training.level_head import fit

    config = config_path(args.config)
    if not config.is_file():
        raise SystemExit(f"no training config {args.config} (looked here and in {config.parent})")
    command = "spinelabeler " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return fit(
        args.stage2,
        args.out,
        config,
        {"command": command, "config": args.config},
        data=args.data,
        rendered_masks=args.rendered_masks,
        renders=args.renders,
        cases=args.cases,
        heldout_cases=args.heldout_cases,
        per_case=args.per_case,
        weight_decay=args.weight_decay,
        iterations=args.iterations,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        workers=args.workers,
    )
