"""Figures for a model card: a shipped network on phantoms it never saw (held-out seeds).

Stage 1: Dice per region (C, T, L) on whole phantom CTs of every field of view, predicted in
one pass on the stage-1 canonical grid. Stage 2: Dice of the predicted mask on patches drawn
by the training protocol (first vertebra, walk with memory, cut by the FOV, past the end),
without augmentation. Run as::

    python -m SpineLabelerLib.training.heldout stage1 Resources/Models/stage1.pt --config configs/stage1.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from SpineLabelerLib import nets, preprocess
from SpineLabelerLib.training.data import CasePreparer, PhantomSource, StepSamples
from SpineLabelerLib.training.loop import TrainConfig, validate
from SpineLabelerLib.training.samples import Stage2Sampling

HELDOUT_SEED_BASE = 200_000  # disjoint from training (0...) and validation (100000...) seeds


@torch.no_grad()
def predict_regions(model: nets.UNet3D, ct_norm: np.ndarray) -> np.ndarray:
    """Region classes ``(K, J, I)`` of a whole normalized canonical CT (padded with air)."""
    m = model.config.multiple
    pads = [nets.pad_multiple(s, m) for s in ct_norm.shape]
    x = torch.from_numpy(np.ascontiguousarray(ct_norm))[None, None]
    x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), value=-1.0)
    out = model(x).argmax(1)[0]
    k, j, i = ct_norm.shape
    return out[:k, :j, :i].numpy().astype(np.uint8)


def stage1_figures(model: nets.UNet3D, cfg: TrainConfig, cases: int) -> dict[str, Any]:
    source = PhantomSource(range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + cases), cfg.phantom)
    prep = CasePreparer(cfg.spacing_mm, crop_to_spine=False)
    inter, total = np.zeros(4), np.zeros(4)
    per_case = []
    for n in range(len(source)):
        case = prep(source, n)
        pred = predict_regions(model, case.ct)
        ref = preprocess.region_classes(case.labels)
        row = {"seed": source.seeds[n], **source.case_settings(n)}
        for c, name in zip(range(1, 4), ("C", "T", "L")):
            a, b = pred == c, ref == c
            inter[c] += np.logical_and(a, b).sum()
            total[c] += a.sum() + b.sum()
            if b.any() or a.any():
                row[f"dice_{name}"] = round(
                    float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())), 3
                )
        row.pop("spacing_mm", None)
        per_case.append(row)
    pooled = {
        f"dice_{name}": round(float(2 * inter[c] / total[c]), 3)
        for c, name in zip(range(1, 4), ("C", "T", "L"))
        if total[c] > 0
    }
    return {"pooled": pooled, "cases": per_case}


def stage2_figures(
    model: nets.UNet3D, cfg: TrainConfig, cases: int, samples: int
) -> dict[str, Any]:
    source = PhantomSource(range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + cases), cfg.phantom)
    prep = CasePreparer(cfg.spacing_mm, crop_to_spine=True, max_in_memory=cases)
    sampling = Stage2Sampling(**cfg.stage2_sampling)
    ds = StepSamples(
        "stage2", source, prep, cfg.size_kji, seed=cfg.seed + 1, rank=0, sampling=sampling
    )
    drawn = [ds[n] for n in range(samples)]
    overall = validate("stage2", model, drawn)
    with_memory = [s for s in drawn if s[0][1].any() and s[1].any()]
    first = [s for s in drawn if not s[0][1].any() and s[1].any()]
    empty = [s for s in drawn if not s[1].any()]
    out = {"patches": len(drawn), **{k: round(v, 3) for k, v in overall.items()}}
    if with_memory:
        out["dice_with_memory"] = round(validate("stage2", model, with_memory)["dice"], 3)
    if first:
        out["dice_no_memory"] = round(validate("stage2", model, first)["dice"], 3)
    if empty:
        out["empty_target_correct"] = round(validate("stage2", model, empty)["dice"], 3)
    out["counts"] = {"with_memory": len(with_memory), "no_memory": len(first), "empty": len(empty)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=nets.KINDS)
    p.add_argument("weights")
    p.add_argument("--config", required=True)
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--samples", type=int, default=48, help="stage-2 patches")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = nets.load_model(args.weights, args.stage)
    cfg = TrainConfig.from_file(args.config)
    t = time.time()
    if args.stage == "stage1":
        figures = stage1_figures(model, cfg, args.cases)
    else:
        figures = stage2_figures(model, cfg, args.cases, args.samples)
    figures["heldout_seeds"] = [HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + args.cases - 1]
    figures["weights_sha256"] = model.weights_sha256[:16]
    figures["eval_s"] = round(time.time() - t, 1)
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
