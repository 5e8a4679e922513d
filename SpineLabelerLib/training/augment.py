"""The paper's augmentation, in torch: random rotation and scaling plus Gaussian noise.

One random affine per sample is applied with ``affine_grid`` + ``grid_sample`` to the image
(trilinear) and to every label volume (nearest neighbour), so labels stay on their voxels.
The transform is built in voxel units about the volume centre, so a rotation stays a
rotation on non-cubic volumes (volumes here have isotropic voxels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NOISE_SIGMA_MAX = 50.0 / 1536.0  # normalized intensity units, as in the paper


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges: rotation about each axis U[-max_rotation_deg, +max_rotation_deg]; one isotropic
    scale U[1 - max_scale, 1 + max_scale]; noise sigma U[0, max_noise_sigma]."""

    max_rotation_deg: float = 15.0
    max_scale: float = 0.20
    max_noise_sigma: float = NOISE_SIGMA_MAX
    image_fill: float = -1.0  # air after normalization


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` angles (rad) about x, y, z -> ``(B, 3, 3)`` rotation matrices."""
    c, s = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], -1)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], -1)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], -1)
    return rx.view(-1, 3, 3) @ ry.view(-1, 3, 3) @ rz.view(-1, 3, 3)


def random_affine(
    batch: int,
    shape_kji: tuple[int, int, int],
    settings: AugmentSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """``(B, 3, 4)`` ``affine_grid`` matrices (normalized coordinates, x = i, y = j, z = k).

    Output voxel at centred voxel position p samples the input at ``A p`` with
    A = R(angles) / scale: the content is rotated and scaled by ``scale`` about the centre.
    """
    u = torch.rand(batch, 4, generator=generator, dtype=torch.float64)
    angles = (2 * u[:, :3] - 1) * math.radians(settings.max_rotation_deg)
    scale = 1 + (2 * u[:, 3] - 1) * settings.max_scale
    a_vox = _rotation(angles) / scale.view(-1, 1, 1)
    half = torch.tensor([shape_kji[2], shape_kji[1], shape_kji[0]], dtype=torch.float64) / 2
    # normalized (align_corners=False) -> centred voxel units: p = n * half
    theta = torch.zeros(batch, 3, 4, dtype=torch.float64)
    theta[:, :, :3] = torch.diag(1 / half) @ a_vox @ torch.diag(half)
    return theta.float()


def apply_affine(
    image: torch.Tensor, labels: list[torch.Tensor], theta: torch.Tensor, image_fill: float = -1.0
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Warp ``image (B, C, K, J, I)`` (linear, ``image_fill`` outside) and each label tensor
    ``(B, K, J, I)`` or ``(B, C, K, J, I)`` (nearest, 0 outside) with ``theta (B, 3, 4)``."""
    grid = F.affine_grid(theta.to(image.device), list(image.shape), align_corners=False)
    warped = (
        F.grid_sample(image - image_fill, grid, mode="bilinear", align_corners=False) + image_fill
    )
    out = []
    for lab in labels:
        squeeze = lab.dim() == 4
        x = (lab.unsqueeze(1) if squeeze else lab).float()
        y = F.grid_sample(x, grid.to(x.dtype), mode="nearest", align_corners=False)
        y = y.round().to(lab.dtype)
        out.append(y.squeeze(1) if squeeze else y)
    return warped, out


def add_noise(image: torch.Tensor, max_sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise, mean 0, one sigma ~ U[0, max_sigma] per sample, on ``(B, C, K, J, I)``."""
    sigma = torch.rand(image.shape[0], generator=generator) * max_sigma
    noise = torch.randn(image.shape, generator=generator)
    return image + (sigma.view(-1, *([1] * (image.dim() - 1))) * noise).to(
        image.device, image.dtype
    )


def augment(
    image: torch.Tensor,
    labels: list[torch.Tensor],
    settings: AugmentSettings,
    generator: torch.Generator,
    noise_channels: int = 1,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Random affine on image + labels, then noise on the first ``noise_channels`` image channels
    (the CT; a stage-2 memory channel is warped, as a label would be, but gets no noise).

    ``generator`` is a CPU generator: the same seed gives the same augmentation on any device.
    """
    theta = random_affine(image.shape[0], tuple(image.shape[2:]), settings, generator)  # type: ignore[arg-type]
    warped, warped_labels = apply_affine(image, labels, theta, settings.image_fill)
    ct = add_noise(warped[:, :noise_channels], settings.max_noise_sigma, generator)
    return torch.cat([ct, warped[:, noise_channels:]], dim=1), warped_labels
