"""The level head: which of the 25 levels (C1..L6) a vertebra segmented by stage 2 looks like.

Lessmann et al. (2019) gave their iterative net small heads beside the mask; this is the one
that can help identification. It reads what the *frozen* stage-2 net computes for the patch
centred on a vertebra (memory: the vertebrae above it), so it costs one stage-2 forward per
vertebra and never changes the masks:

- the bottleneck, averaged and max-pooled over the patch (what surrounds the vertebra: ribs,
  skull, pelvis, the size of the neighbours), 2 x 128 values;
- the two deepest decoder levels averaged inside the predicted mask (the vertebra itself),
  64 + 32 values;
- the predicted mask's volume (log ml) and extent along each axis (/50 mm), 4 values.

A linear layer on the standardized features gives the level posterior, read as a likelihood
ratio against the level frequencies the head was fit on, mixed with them (``PRIOR_MIX``) so
that one vertebra can never outweigh the rest. Identification does not vote with it (it
cost more than it bought); it checks the count with it (identify.py rule 6).

The file names the stage-2 weights it was fit to; it is refused for any other stage-2 file,
since another net's features mean something else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from SpineLabelerLib import anatomy
from SpineLabelerLib.nets import ModelFileError, plain_json, state_dict_sha256, write_payload
from SpineLabelerLib.training.samples import CT_FILL, crop_with_fill

HEAD_FORMAT = "spinelabeler-level-head"
HEAD_FORMAT_VERSION = 1
N_LEVELS = len(anatomy.VERTEBRAE)  # C1..L6; class c is VerSe label c + 1
GEOMETRY_FEATURES = 4
MIN_MASK_VOXELS = 300  # a smaller prediction (1 mm voxels) tells too little about its level
PRIOR_MIX = 0.1  # share of the fit's level frequencies mixed into the posterior
BATCH = 4  # patches per forward when reading a walk's vertebrae


def feature_count(widths: list[int]) -> int:
    """Length of the feature vector for a net with these level widths (NetConfig.widths())."""
    return 2 * widths[-1] + widths[-2] + widths[-3] + GEOMETRY_FEATURES


@torch.no_grad()
def patch_features(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(B, F)`` of stage-2 patches ``(B, 2, K, J, I)`` (see the module doc) and the
    size of each predicted mask in voxels ``(B,)``. Sizes must be a multiple of the net's."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.downs[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("bottom", o)),
        model.ups[0].register_forward_hook(lambda m, i, o: seen.__setitem__("up0", o)),
        model.ups[1].register_forward_hook(lambda m, i, o: seen.__setitem__("up1", o)),
    ]
    try:
        logit = model(x)
    finally:
        for h in hooks:
            h.remove()
    mask = (logit[:, :1].float() > 0).float()
    bottom = seen["bottom"].float()
    parts = [bottom.mean((2, 3, 4)), bottom.amax((2, 3, 4))]
    for key in ("up0", "up1"):
        feature = seen[key].float()
        share = F.avg_pool3d(mask, x.shape[2] // feature.shape[2])
        parts.append((feature * share).sum((2, 3, 4)) / share.sum((2, 3, 4)).clamp(min=1e-3))
    where = mask[:, 0].cpu().numpy() > 0
    voxels = where.sum(axis=(1, 2, 3))
    geometry = np.zeros((len(where), GEOMETRY_FEATURES), np.float32)
    for n, one in enumerate(where):
        extents = [
            (np.ptp(np.nonzero(one.any(axis=other))[0]) + 1) if voxels[n] else 0
            for other in ((1, 2), (0, 2), (0, 1))
        ]
        geometry[n] = [np.log(max(voxels[n], 1) / 1000.0), *(e / 50.0 for e in extents)]
    features = torch.cat(parts, dim=1).cpu().numpy()
    return np.concatenate([features, geometry], axis=1).astype(np.float32), voxels


def batch_features(
    model: nn.Module, device: torch.device, patches: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`patch_features` of ``(B, 2, K, J, I)`` float32 patches run as the pipeline runs
    the net (channels-last on the CPU, fp16 autocast on CUDA), so that a head is fit on the
    features it will be read with."""
    x = torch.from_numpy(np.ascontiguousarray(patches, np.float32)).to(device)
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast("cuda", dtype=torch.float16, enabled=device.type == "cuda"):
        return patch_features(model, x)


class LevelHead(nn.Module):
    """Standardize, then one linear layer: features ``(N, F)`` -> level logits ``(N, 25)``."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("level_frequency", torch.full((N_LEVELS,), 1.0 / N_LEVELS))
        self.linear = nn.Linear(n_features, N_LEVELS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.scale)

    @torch.no_grad()
    def log_likelihood_ratios(self, features: np.ndarray) -> np.ndarray:
        """``log p(level | features) / frequency(level)`` per level, ``(N, 25)``, the posterior
        mixed with the frequencies (PRIOR_MIX) so that no ratio falls below log(PRIOR_MIX)."""
        logits = self(torch.as_tensor(np.atleast_2d(features), dtype=torch.float32))
        posterior = logits.softmax(1)
        prior = self.level_frequency[None]
        mixed = (1.0 - PRIOR_MIX) * posterior + PRIOR_MIX * prior
        return torch.log(mixed / prior).numpy()


def save_level_head(head: LevelHead, path: str | Path, stage2_sha256: str, meta: dict) -> str:
    """Write the head with the stage-2 weights' sha256 it was fit to; returns its own sha256."""
    state = {k: v.detach().cpu().float().clone() for k, v in head.state_dict().items()}
    digest = state_dict_sha256(state)
    payload = {
        "format": HEAD_FORMAT,
        "format_version": HEAD_FORMAT_VERSION,
        "n_features": int(head.linear.in_features),
        "stage2_sha256": stage2_sha256,
        "state_dict": state,
        "sha256": digest,
        "meta": plain_json(meta),
    }
    write_payload(payload, path)
    return digest


def load_level_head(path: str | Path, stage2_sha256: str) -> LevelHead:
    """The head in ``path``; ModelFileError if unreadable, corrupt, of another version, or fit
    to other stage-2 weights than those with ``stage2_sha256``."""
    path = Path(path)
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/zip error means the file is unusable
        raise ModelFileError(f"{path} is not a readable level-head file ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != HEAD_FORMAT:
        raise ModelFileError(f"{path} is not a SpineLabeler level-head file")
    if payload.get("format_version") != HEAD_FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has level-head format version {payload.get('format_version')}; "
            f"this SpineLabeler reads version {HEAD_FORMAT_VERSION}"
        )
    if state_dict_sha256(payload["state_dict"]) != payload.get("sha256"):
        raise ModelFileError(f"{path} is corrupt: its tensors do not match their sha256")
    if payload.get("stage2_sha256") != stage2_sha256:
        raise ModelFileError(
            f"{path} was fit to stage-2 weights {str(payload.get('stage2_sha256'))[:12]}..., "
            f"not to the loaded ones ({stage2_sha256[:12]}...); refit it to them with "
            "spinelabeler fit-level-head --stage2 STAGE2.pt --out level_head.pt"
        )
    head = LevelHead(int(payload["n_features"]))
    try:
        head.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path} does not fit a level head: {exc}") from None
    head.meta = dict(payload.get("meta") or {})  # type: ignore[attr-defined]
    return head.eval()


def walk_level_ratios(
    model: nn.Module,
    device: torch.device,
    head: LevelHead,
    ct: np.ndarray,
    instances: np.ndarray,
    order: list[int],
    centres_kji: np.ndarray,
    patch_kji: tuple[int, int, int],
    before_each: Callable[[int, int], None] | None = None,
) -> list[np.ndarray | None]:
    """Level log-likelihood ratios ``(25,)`` for each instance in ``order`` (cranial first),
    from a patch centred on it with the instances above it in memory, as the head was fit;
    None where the net's prediction there is under MIN_MASK_VOXELS.

    ``ct``: the normalized 1 mm crop the walk ran on, ``instances`` its instance map,
    ``centres_kji`` ``(len(order), 3)`` each instance's centroid on that grid.
    Patches go through the net BATCH at a time (on 2 CPU threads 0.13 s a patch instead of
    0.24 alone); ``before_each(n, total)`` is called before each batch (progress, cancel).
    """
    size = np.asarray(patch_kji)
    out: list[np.ndarray | None] = []
    for first in range(0, len(order), BATCH):
        if before_each is not None:
            before_each(first, len(order))
        patches = []
        for n in range(first, min(first + BATCH, len(order))):
            start = np.round(centres_kji[n]).astype(int) - size // 2
            ct_patch = crop_with_fill(ct, start, tuple(size), CT_FILL).astype(np.float32)
            labels = crop_with_fill(instances, start, tuple(size), 0)
            patches.append([ct_patch, np.isin(labels, order[:n]).astype(np.float32)])
        features, voxels = batch_features(model, device, np.asarray(patches, np.float32))
        ratios = head.log_likelihood_ratios(features)
        out.extend(r if v >= MIN_MASK_VOXELS else None for r, v in zip(ratios, voxels))
    return out
