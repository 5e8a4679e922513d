"""Fit the level head (level_head.py) on a frozen stage-2 net, and measure it.

Patches are drawn by the stage-2 training protocol (training/samples.py: target near the
centre, memory on one side or none, FOV cuts) from phantom crops scanned at a clinical
spacing and orientation and resampled to 1 mm, as every CT reaches the net at inference
(or, with ``--data DIR``, from real CTs in the VerSe layout: after fine-tuning stage 2 on
them, the head must be refit to the new net anyway; the cases the fine-tuning held out for
validation, ``loop.real_split`` with the same ``--config``, are held out here too and give
figures of their own); each patch whose prediction holds at
least MIN_MASK_VOXELS gives one (features, level) row. With ``--rendered-masks``, expert
masks rendered as CT (training/render.py) add their rows to the phantoms', so that the head
reads real shapes too (``Resources/Models/level_head.md``). The head is a multinomial logistic
regression (full-batch Adam, L2 weight decay) on those rows. Held-out rows come from other
seeds (HELDOUT_SEED_BASE) and give the card's figures: top-1 accuracy, within one level,
region accuracy, and the log-loss against guessing.

    spinelabeler fit-level-head --stage2 Resources/Models/stage2.pt \\
        --out Resources/Models/level_head.pt

(the command line, its arguments and its default config live in commands/fit_level_head.py;
``fit`` takes them as plain parameters).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from SpineLabelerLib import anatomy, nets
from SpineLabelerLib.device import describe, optimize_for_inference, resolve_device
from SpineLabelerLib.level_head import (
    BATCH,
    MIN_MASK_VOXELS,
    N_LEVELS,
    LevelHead,
    batch_features,
    save_level_head,
)
from SpineLabelerLib.training.data import (
    CasePreparer,
    CaseSource,
    LabelMapFile,
    PhantomSource,
    RenderedMaskSource,
    VerseSource,
    label_map_files,
)
from SpineLabelerLib.training.heldout import HELDOUT_SEED_BASE
from SpineLabelerLib.training.loop import TrainConfig, real_split
from SpineLabelerLib.training.samples import Stage2Sampling, labelled_stage2_sample

FIT_SEED_BASE = 400_000  # disjoint from the nets' training, validation, held-out and bench seeds
RENDER_SEED_BASE = 900_000  # the renders' appearance draws


def phantom_source(cfg: TrainConfig, seeds: range) -> PhantomSource:
    """The config's phantom crops at a clinical spacing, resampled (module doc)."""
    return PhantomSource(seeds, {**cfg.phantom, "spacing_mm": None})


def _case_seed(source: CaseSource, n: int) -> int:
    """A phantom's own seed; for real cases, one drawn from the case's key."""
    if isinstance(source, PhantomSource):
        return source.seeds[n]
    return zlib.crc32(source.key(n).encode())


class CasePatches(Dataset):
    """Item ``n``: case ``n``'s drawn patches ``(M, 2, K, J, I)`` and their level classes
    ``(M,)`` (0 = C1; draws without a vertebra are skipped). Preparing and sampling a case is
    numpy work that worker processes do while the main process runs the net; each case has
    its own random stream, so the rows do not depend on the number of workers."""

    def __init__(self, cfg: TrainConfig, source: CaseSource, per_case: int) -> None:
        self.source, self.per_case = source, per_case
        self.size = tuple(int(n) for n in cfg.size_kji)
        self.prep = CasePreparer(cfg.spacing_mm, crop_to_spine=True, max_in_memory=1)
        self.sampling = Stage2Sampling(**cfg.stage2_sampling)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        case = self.prep(self.source, n)
        rng = np.random.default_rng([_case_seed(self.source, n), 0x1E7E1])
        inputs, levels = [], []
        for _ in range(self.per_case):
            drawn = labelled_stage2_sample(case, self.size, rng, self.sampling)
            if drawn.label is not None and drawn.label in anatomy.BY_LABEL:
                inputs.append(drawn.input)
                levels.append(drawn.label - 1)
        if not inputs:
            return np.zeros((0, 2, *self.size), np.float32), np.zeros(0, np.int64)
        return np.stack(inputs).astype(np.float32), np.asarray(levels, np.int64)


def draw_rows(
    model: nn.Module,
    cfg: TrainConfig,
    source: CaseSource,
    per_case: int,
    log: Callable[..., None] = print,
    device: torch.device | None = None,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(features ``(N, F)``, level class ``(N,)``, 0 = C1) from ``per_case`` patches per case,
    kept where the net predicts at least MIN_MASK_VOXELS. ``model`` runs on ``device`` (CPU by
    default) BATCH patches at a time; ``workers`` processes prepare the cases meanwhile."""
    device = device or torch.device("cpu")
    loader = DataLoader(CasePatches(cfg, source, per_case), batch_size=None, num_workers=workers)
    features, levels = [], []
    t = time.time()
    for n, (inputs, drawn_levels) in enumerate(loader):
        inputs, drawn_levels = np.asarray(inputs), np.asarray(drawn_levels)
        for first in range(0, len(drawn_levels), BATCH):
            f, voxels = batch_features(model, device, inputs[first : first + BATCH])
            keep = voxels >= MIN_MASK_VOXELS
            features.append(f[keep])
            levels.append(drawn_levels[first : first + BATCH][keep])
        if (n + 1) % 10 == 0 or n + 1 == len(source):
            rows = sum(len(x) for x in levels)
            log(f"  {n + 1}/{len(source)} cases, {rows} rows, {time.time() - t:.0f} s", flush=True)
    if not sum(len(x) for x in levels):
        raise ValueError(
            f"no patch of {len(source)} case(s) gave a prediction of {MIN_MASK_VOXELS} voxels or more"
        )
    return np.concatenate(features), np.concatenate(levels)


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


def fit(
    stage2: str | Path,
    out: str | Path,
    config: Path,
    record: dict[str, Any],
    *,
    data: str | Path | None = None,
    rendered_masks: Sequence[str | Path] = (),
    renders: int = 50,
    cases: int = 200,
    heldout_cases: int = 30,
    per_case: int = 16,
    weight_decay: float = 0.01,
    iterations: int = 600,
    seed: int = 0,
    device: str = "auto",
    threads: int = 2,
    workers: int = 0,
) -> int:
    """Draw the rows, fit the head, measure it and write it to ``out`` (never overwritten).

    ``config``: the training config file (phantom crops and patch size) of the stage-2 net;
    ``record``: how the caller was asked (the command line, the config as named), kept first
    in the head file's meta; ``data``: a VerSe-layout folder to fit on instead of phantoms
    (module doc); ``rendered_masks``: expert masks whose ``renders`` renders (training/render.py)
    are fit on beside the phantoms. The other parameters are ``spinelabeler fit-level-head``'s
    options.
    """
    torch.set_num_threads(max(1, threads))
    out = Path(out)
    if out.exists():
        raise SystemExit(f"{out} exists; remove it first (a head file is never overwritten)")
    if data and not Path(data).is_dir():
        raise SystemExit(f"--data {data} is not a folder")
    cfg = TrainConfig.from_file(config)
    try:
        model = nets.load_model(stage2, "stage2")
    except nets.ModelFileError as exc:
        raise SystemExit(str(exc)) from None
    torch_device, messages = resolve_device(device)
    for message in messages:
        print(message)
    fast = optimize_for_inference(model, torch_device)  # the net as the pipeline runs it
    t = time.time()

    def rows(source: CaseSource) -> tuple[np.ndarray, np.ndarray]:
        return draw_rows(fast, cfg, source, per_case, device=torch_device, workers=workers)

    real_heldout: CaseSource | None = None
    if data:
        fit_source, real_heldout = real_split(VerseSource(data), cfg.val_cases)
        held = f", {len(real_heldout)} held out" if real_heldout else ", too few to hold any out"
        print(f"fit rows from {len(fit_source)} CTs under {data}{held}")
    else:
        fit_source = phantom_source(cfg, range(FIT_SEED_BASE, FIT_SEED_BASE + cases))
        print(f"fit rows from {cases} phantom crops (seeds {FIT_SEED_BASE}...)")
    masks = label_map_files(rendered_masks) if rendered_masks else []
    print(f"the net on {describe(torch_device)}, {workers} worker(s) drawing crops")
    x, y = rows(fit_source)
    if masks:
        seeds = range(RENDER_SEED_BASE, RENDER_SEED_BASE + renders)
        print(f"fit rows from {renders} renders of {len(masks)} expert masks")
        rx, ry = rows(RenderedMaskSource(masks, seeds))
        x, y = np.concatenate([x, rx]), np.concatenate([y, ry])
    print(f"held-out rows from {heldout_cases} crops (seeds {HELDOUT_SEED_BASE}...)")
    hx, hy = rows(phantom_source(cfg, range(HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + heldout_cases)))
    head = fit_head(x, y, weight_decay, iterations, seed)
    figures = {"fit": head_figures(head, x, y), "heldout": head_figures(head, hx, hy)}
    if real_heldout is not None:
        print(f"held-out rows from {len(real_heldout)} of the CTs under {data}")
        rx, ry = rows(real_heldout)
        figures["heldout_real"] = head_figures(head, rx, ry)
    meta = {
        **record,
        "fit_data": str(data)
        if data
        else f"phantom seeds {FIT_SEED_BASE}-{FIT_SEED_BASE + cases - 1}",
        "rendered_masks": [m.name for m in masks],
        "renders": renders if masks else 0,
        "heldout_seeds": [HELDOUT_SEED_BASE, HELDOUT_SEED_BASE + heldout_cases - 1],
        "per_case": per_case,
        "weight_decay": weight_decay,
        "iterations": iterations,
        "seed": seed,
        "device": describe(torch_device),
        "figures": figures,
        "wall_s": round(time.time() - t, 1),
    }
    digest = save_level_head(head, out, model.weights_sha256, meta)
    record_head_uses(out, stage2, fit_source if data else None, masks)
    print(json.dumps({**figures, "sha256": digest[:16], "wall_s": meta["wall_s"]}, indent=1))
    return 0


def record_head_uses(
    out: Path,
    stage2: str | Path,
    real_fit: CaseSource | None,
    masks: Sequence[LabelMapFile] = (),
) -> None:
    """The head's provenance record beside it: the real cases that chose its stage-2 file
    (it reads that net's features) and those it was fit on (phantoms: the CT their HU were
    matched to; expert masks rendered as CT); none where the stage-2 file has no record (the
    head is then unknown too)."""
    from SpineLabelerLib import provenance
    from SpineLabelerLib.training.real_uses import (
        PHANTOM_HU_USE,
        init_uses,
        rendered_from,
        trained_on,
    )

    chose_stage2 = init_uses(stage2)
    if chose_stage2 is None:
        print(f"{stage2} has no provenance record: none written for {out.name}")
        return
    own = [PHANTOM_HU_USE] if real_fit is None else trained_on(real_fit)
    own += rendered_from(masks)
    provenance.record_use(out.parent, out.name, (*chose_stage2, *own))
