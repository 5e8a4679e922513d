"""The paper's losses: bootstrapped cross entropy (stage 1) and Dice loss (stage 2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bootstrapped_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, fraction: float = 0.10
) -> torch.Tensor:
    """Mean cross entropy over the hardest ``fraction`` of voxels of the whole batch.

    ``logits (B, C, K, J, I)``, ``target (B, K, J, I)`` class indices. The hardest voxels are
    those whose posterior for the true class is lowest, i.e. whose cross entropy is highest;
    exactly ``ceil(fraction * B*K*J*I)`` voxels are kept, the rest get no gradient.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ce = F.cross_entropy(logits.float(), target.long(), reduction="none").flatten()
    k = max(1, math.ceil(fraction * ce.numel()))
    return torch.topk(ce, k, sorted=False).values.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) and the binary target, per sample, averaged.

    ``logits (B, 1, K, J, I)``, ``target (B, K, J, I)`` or ``(B, 1, K, J, I)`` in {0, 1}. The
    ``smooth`` term makes an empty target well defined: the loss then pushes every voxel to 0.
    """
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().reshape(p.shape)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def dice_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Hard Dice of two boolean masks (any shape); 1.0 when both are empty."""
    pred, target = pred.bool(), target.bool()
    total = int(pred.sum()) + int(target.sum())
    return 1.0 if total == 0 else 2.0 * int((pred & target).sum()) / total
