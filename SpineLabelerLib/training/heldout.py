"""Figures for a model card: a shipped network on phantoms it never saw (held-out seeds).

Stage 1: Dice per region (C, T, L; argmax) and of the spine as a whole (p(background) < 0.5)
on whole phantom CTs of every field of view, predicted in one pass on the stage-1 grid. Stage 2: Dice of the predicted mask on patches drawn
by the training protocol (first vertebra, walk with memory, cut by the FOV, past the end),
without augmentation. Run as::

    python -m SpineLabelerLib.training.heldout stage1 Resources/Models/stage1.pt --config configs/stage1.json

``--clinical-spacing``: the same patients scanned at a drawn clinical spacing and orientation
(0.3-1 mm in-plane, 0.5-3 mm slices) and resampled to the net's grid, as every CT reaches the
nets at inference, instead of rendered on that grid as the training phantoms are.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
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
def region_probabilities(model: nets.UNet3D, ct_norm: np.ndarray) -> np.ndarray:
    """Softmax ``(4, K, J, I)`` of a whole normalized canonical CT (padded with air)."""
    m = model.config.multiple
    pads = [nets.pad_multiple(s, m) for s in ct_norm.shape]
    x = torch.from_numpy(np.ascontiguousarray(ct_norm))[None, None]
    x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), value=-1.0)
    out = model(x).softmax(1)[0]
    k, j, i = ct_norm.shape
    return out[:, :k, :j, :i].numpy()


def predict_regions(model: nets.UNet3D, ct_norm: np.ndarray) -> np.ndarray:
    """Region classes ``(K, J, I)`` uint8 (argmax) of a whole normalized canonical CT."""
    return region_probabilities(model, ct_norm).argmax(0).astype(np.uint8)


def stage1_figures(model: nets.UNet3D, cfg: TrainConfig, cases: int) -> dict[str, Any]:
    source = PhantomSource(range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + cases), cfg.phantom)
    prep = CasePreparer(cfg.spacing_mm, crop_to_spine=False)
    inter, total = np.zeros(4), np.zeros(4)
    per_case = []
    for n in range(len(source)):
        case = prep(source, n)
        prob = region_probabilities(model, case.ct)
        pred = prob.argmax(0)
        ref = preprocess.region_classes(case.labels)
        row = {"seed": source.seeds[n], **source.case_settings(n)}
        spine_pred, spine_ref = prob[0] < 0.5, ref > 0
        inter[0] += np.logical_and(spine_pred, spine_ref).sum()
        total[0] += spine_pred.sum() + spine_ref.sum()
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
    if total[0] > 0:
        pooled["dice_spine"] = round(float(2 * inter[0] / total[0]), 3)
    return {"pooled": pooled, "cases": per_case}


def heldout_config(cfg: TrainConfig, clinical_spacing: bool) -> TrainConfig:
    """The run's config, its phantoms drawn at a clinical spacing if asked (see the module docs)."""
    if not clinical_spacing:
        return cfg
    return replace(cfg, phantom={**cfg.phantom, "spacing_mm": None})


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


_NET_TEXT = {
    "stage1": "Semantic segmentation net: CT (1 channel, [-1, 1]) -> 4 region logits (bg, C, T, L)",
    "stage2": "Iterative instance net: (CT, memory) -> 1 logit, the vertebra nearest the patch centre not in memory",
}


def model_card(stage: str, weights_path: str, figures: dict[str, Any], heldout_command: str) -> str:
    """Markdown model card from a weight file's training meta and held-out figures."""
    payload = nets.read_weight_file(weights_path)
    meta, cfg = payload["meta"], payload["meta"].get("config", {})
    lines = [
        f"# SpineLabeler {stage} network",
        "",
        f"{_NET_TEXT[stage]}.",
        f"Architecture: `NetConfig{tuple(payload['config'].values())}` "
        f"(base_channels, depth, convs_per_level, max_channels); weights fp16, sha256 `{payload['sha256'][:16]}...`.",
        "",
        "## Training",
        f"- Data: phantoms drawn on the fly, seeds {cfg.get('train_seed_base')}..."
        f"{cfg.get('train_seed_base', 0) + cfg.get('train_cases', 0) - 1}; generator settings "
        f"`{json.dumps(cfg.get('phantom'))}`.",
        f"- Settings: spacing {cfg.get('spacing_mm')} mm, crop/patch (K, J, I) {cfg.get('size_kji')}, "
        f"batch {cfg.get('batch_size')}, Adam lr {cfg.get('lr')}, seed {cfg.get('seed')}, "
        "augmentation rotation +-15 deg, scaling +-20 %, noise sigma U[0, 50/1536].",
        f"- Loss: {'bootstrapped cross entropy, hardest 10 % of voxels' if stage == 'stage1' else 'Dice loss'}.",
        f"- Steps: {meta.get('steps')} ({meta.get('samples_seen')} samples), wall time "
        f"{meta.get('wall_s')} s on {meta.get('hardware')}, {meta.get('processes')} process(es).",
        f"- Command: `{meta.get('command')}`",
        "",
        "## Validation",
        f"- During training (validation seeds {cfg.get('val_seed_base')}..., unaugmented samples): "
        f"`{json.dumps(meta.get('validation'))}`",
        f"- Held-out phantoms (seeds {figures.get('heldout_seeds')}): `{json.dumps({k: v for k, v in figures.items() if k not in ('cases', 'heldout_seeds')})}`",
        f"- Reproduce: `{heldout_command}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=nets.KINDS)
    p.add_argument("weights")
    p.add_argument("--config", required=True)
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--samples", type=int, default=48, help="stage-2 patches")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--card", default=None, help="also write a markdown model card here")
    p.add_argument(
        "--clinical-spacing",
        action="store_true",
        help="phantoms scanned at a clinical spacing and resampled, as at inference",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = nets.load_model(args.weights, args.stage)
    cfg = heldout_config(TrainConfig.from_file(args.config), args.clinical_spacing)
    t = time.time()
    if args.stage == "stage1":
        figures = stage1_figures(model, cfg, args.cases)
    else:
        figures = stage2_figures(model, cfg, args.cases, args.samples)
    figures["heldout_seeds"] = [HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + args.cases - 1]
    figures["phantom_spacing_mm"] = cfg.phantom.get("spacing_mm", "generator default")
    figures["weights_sha256"] = model.weights_sha256[:16]
    figures["eval_s"] = round(time.time() - t, 1)
    print(json.dumps(figures, indent=1))
    if args.card:
        import shlex
        import sys

        command = "python -m SpineLabelerLib.training.heldout " + " ".join(
            shlex.quote(a)
            for a in (argv if argv is not None else sys.argv[1:])
            if a != "--card" and a != args.card
        )
        Path(args.card).write_text(model_card(args.stage, args.weights, figures, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
