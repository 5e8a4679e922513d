"""Fit the level head (level_head.py) on a frozen stage-2 net, on the CPU, and measure it.

Patches are drawn by the stage-2 training protocol (training/samples.py: target near the
centre, memory on one side or none, FOV cuts) from phantom crops scanned at a clinical
spacing and orientation and resampled to 1 mm, as every CT reaches the net at inference
(or, with ``--data DIR``, from real CTs in the VerSe layout: after fine-tuning stage 2 on
them, the head must be refit to the new net anyway; the cases the fine-tuning held out for
validation, ``loop.real_split`` with the same ``--config``, are held out here too and give
figures of their own); each patch whose prediction holds at
least MIN_MASK_VOXELS gives one (features, level) row. The head is a multinomial logistic
regression (full-batch Adam, L2 weight decay) on those rows. Held-out rows come from other
seeds (HELDOUT_SEED_BASE) and give the card's figures: top-1 accuracy, within one level,
region accuracy, and the log-loss against guessing.

    python -m SpineLabelerLib.training.level_head --stage2 Resources/Models/stage2.pt \\
        --out Resources/Models/level_head.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from SpineLabelerLib import anatomy, nets
from SpineLabelerLib.level_head import (
    MIN_MASK_VOXELS,
    N_LEVELS,
    LevelHead,
    patch_features,
    save_level_head,
)
from SpineLabelerLib.training.data import CasePreparer, CaseSource, PhantomSource, VerseSource
from SpineLabelerLib.training.heldout import HELDOUT_SEED_BASE
from SpineLabelerLib.training.loop import TrainConfig, real_split
from SpineLabelerLib.training.samples import Stage2Sampling, labelled_stage2_sample

FIT_SEED_BASE = 400_000  # disjoint from the nets' training, validation, held-out and bench seeds
DEFAULT_CONFIG = "configs/stage2_gpu.json"  # the phantom crops and patch of the shipped net


def phantom_source(cfg: TrainConfig, seeds: range) -> PhantomSource:
    """The config's phantom crops at a clinical spacing, resampled (module doc)."""
    return PhantomSource(seeds, {**cfg.phantom, "spacing_mm": None})


def _case_seed(source: CaseSource, n: int) -> int:
    """A phantom's own seed; for real cases, one drawn from the case's key."""
    if isinstance(source, PhantomSource):
        return source.seeds[n]
    return zlib.crc32(source.key(n).encode())


def draw_rows(
    model: nets.UNet3D,
    cfg: TrainConfig,
    source: CaseSource,
    per_case: int,
    log: Callable[..., None] = print,
) -> tuple[np.ndarray, np.ndarray]:
    """(features ``(N, F)``, level class ``(N,)``, 0 = C1) from ``per_case`` patches per case."""
    prep = CasePreparer(cfg.spacing_mm, crop_to_spine=True, max_in_memory=1)
    sampling = Stage2Sampling(**cfg.stage2_sampling)
    features, levels = [], []
    t = time.time()
    for n in range(len(source)):
        case = prep(source, n)
        rng = np.random.default_rng([_case_seed(source, n), 0x1E7E1])
        for _ in range(per_case):
            drawn = labelled_stage2_sample(case, tuple(cfg.size_kji), rng, sampling)
            if drawn.label is None or drawn.label not in anatomy.BY_LABEL:
                continue
            f, voxels = patch_features(model, torch.from_numpy(drawn.input)[None])
            if voxels[0] >= MIN_MASK_VOXELS:
                features.append(f[0])
                levels.append(drawn.label - 1)
        if (n + 1) % 10 == 0 or n + 1 == len(source):
            log(
                f"  {n + 1}/{len(source)} cases, {len(levels)} rows, {time.time() - t:.0f} s",
                flush=True,
            )
    if not features:
        raise ValueError(
            f"no patch of {len(source)} case(s) gave a prediction of {MIN_MASK_VOXELS} voxels or more"
        )
    return np.stack(features), np.asarray(levels, np.int64)


def fit_head(
    features: np.ndarray, levels: np.ndarray, weight_decay: float, iterations: int, seed: int
) -> LevelHead:
    """Multinomial logistic regression, full batch; level frequencies smoothed by one count."""
    torch.manual_seed(seed)
    head = LevelHead(features.shape[1])
    x = torch.as_tensor(features)
    y = torch.as_tensor(levels)
    head.mean.copy_(x.mean(0))
    head.scale.copy_(x.std(0) + 1e-6)
    counts = torch.bincount(y, minlength=N_LEVELS).float() + 1.0
    head.level_frequency.copy_(counts / counts.sum())
    optimizer = torch.optim.Adam(head.linear.parameters(), lr=0.01, weight_decay=weight_decay)
    for _ in range(iterations):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), y)
        loss.backward()
        optimizer.step()
    return head.eval()


def region_of_level(levels: np.ndarray) -> np.ndarray:
    """0 cervical, 1 thoracic, 2 lumbar (L6 too) for level classes 0..24."""
    return np.digitize(levels, [7, 19])


@torch.no_grad()
def head_figures(head: LevelHead, features: np.ndarray, levels: np.ndarray) -> dict[str, float]:
    """Top-1, within one level, region accuracy, and mean log-loss against a uniform guess."""
    log_p = head(torch.as_tensor(features)).log_softmax(1).numpy()
    guess = log_p.argmax(1)
    return {
        "rows": int(len(levels)),
        "top1": round(float(np.mean(guess == levels)), 3),
        "within_one_level": round(float(np.mean(np.abs(guess - levels) <= 1)), 3),
        "region": round(float(np.mean(region_of_level(guess) == region_of_level(levels))), 3),
        "log_loss": round(float(-log_p[np.arange(len(levels)), levels].mean()), 3),
        "log_loss_uniform": round(float(np.log(N_LEVELS)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage2", required=True, help="the stage-2 weight file to read features of")
    p.add_argument("--out", required=True, help="the level-head file to write")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="phantom crops and patch size")
    p.add_argument(
        "--data",
        default=None,
        help="fit on real CTs in the VerSe (or CSI 2014) layout instead of phantoms; the "
        "cases --config's val_cases holds out (as `spinelabeler train --data` does) give "
        "held-out figures of their own, next to the phantoms'",
    )
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--heldout-cases", type=int, default=30)
    p.add_argument("--per-case", type=int, default=16)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; remove it first (a head file is never overwritten)")
    model = nets.load_model(args.stage2, "stage2")
    cfg = TrainConfig.from_file(args.config)
    t = time.time()
    real_heldout: CaseSource | None = None
    if args.data:
        fit_source, real_heldout = real_split(VerseSource(args.data), cfg.val_cases)
        held = f", {len(real_heldout)} held out" if real_heldout else ", too few to hold any out"
        print(f"fit rows from {len(fit_source)} CTs under {args.data}{held}")
    else:
        fit_source = phantom_source(cfg, range(FIT_SEED_BASE, FIT_SEED_BASE + args.cases))
        print(f"fit rows from {args.cases} phantom crops (seeds {FIT_SEED_BASE}...)")
    x, y = draw_rows(model, cfg, fit_source, args.per_case)
    print(f"held-out rows from {args.heldout_cases} crops (seeds {HELDOUT_SEED_BASE}...)")
    seeds = range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + args.heldout_cases)
    hx, hy = draw_rows(model, cfg, phantom_source(cfg, seeds), args.per_case)
    head = fit_head(x, y, args.weight_decay, args.iterations, args.seed)
    figures = {"fit": head_figures(head, x, y), "heldout": head_figures(head, hx, hy)}
    if real_heldout is not None:
        print(f"held-out rows from {len(real_heldout)} of the CTs under {args.data}")
        rx, ry = draw_rows(model, cfg, real_heldout, args.per_case)
        figures["heldout_real"] = head_figures(head, rx, ry)
    meta = {
        "command": "python -m SpineLabelerLib.training.level_head "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": args.config,
        "fit_data": args.data or f"phantom seeds {FIT_SEED_BASE}-{FIT_SEED_BASE + args.cases - 1}",
        "heldout_seeds": [HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + args.heldout_cases - 1],
        "per_case": args.per_case,
        "weight_decay": args.weight_decay,
        "iterations": args.iterations,
        "seed": args.seed,
        "figures": figures,
        "wall_s": round(time.time() - t, 1),
    }
    digest = save_level_head(head, out, model.weights_sha256, meta)
    print(json.dumps({**figures, "sha256": digest[:16], "wall_s": meta["wall_s"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
