"""Checks that a volume can be a CT before any work is spent on it.

Every refusal raises :class:`CTInputError` with a message that says what was seen, so a
user knows why the file was refused (a 2D image, an RGB screenshot, an MR, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from SpineLabelerLib.image import Image

MAX_SPACING_MM = 20.0  # coarser than this is no diagnostic CT
MIN_VOXELS_PER_AXIS = 4
MIN_TOTAL_VOXELS = 4096  # 16^3
# A CT in HU holds fat (~ -100 HU) or air (-1000 HU) and bone (> +150 HU); an MR or an
# unscaled/normalised volume does not.
CT_LOWEST_AT_MOST_HU = -50.0
CT_HIGHEST_AT_LEAST_HU = 150.0
CT_VALUE_LIMIT_HU = 100000.0


class CTInputError(ValueError):
    """The input cannot be used as a CT; the message says what was seen."""


def check_layout(
    size: Sequence[int], spacing_mm: Sequence[float], components: int = 1, source: str = "image"
) -> None:
    """Refuse anything that is not a scalar 3D volume with sane spacing.

    ``size`` and ``spacing_mm`` are per index axis (i, j, k, ...); their length is the
    image's dimension.
    """
    size = [int(n) for n in size]
    shape_text = " x ".join(str(n) for n in size)
    if len(size) != 3:
        raise CTInputError(
            f"{source}: a {len(size)}D image ({shape_text} voxels); a CT volume must be 3D"
        )
    if components != 1:
        raise CTInputError(
            f"{source}: a vector/RGB image with {components} components per voxel; "
            "a CT has one value (HU) per voxel"
        )
    if min(size) == 1:
        raise CTInputError(
            f"{source}: a single slice ({shape_text} voxels); a CT volume needs several slices"
        )
    spacing = [float(s) for s in spacing_mm]
    spacing_text = " x ".join(f"{s:g}" for s in spacing)
    if not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise CTInputError(f"{source}: voxel spacing {spacing_text} mm; spacing must be > 0")
    if max(spacing) > MAX_SPACING_MM:
        raise CTInputError(
            f"{source}: voxel spacing {spacing_text} mm; more than {MAX_SPACING_MM:g} mm "
            "between voxels is not a usable CT"
        )
    if min(size) < MIN_VOXELS_PER_AXIS or int(np.prod(size)) < MIN_TOTAL_VOXELS:
        raise CTInputError(
            f"{source}: only {shape_text} voxels; need at least {MIN_VOXELS_PER_AXIS} per axis "
            f"and {MIN_TOTAL_VOXELS} in all"
        )


def check_ct_values(array: np.ndarray, source: str = "image") -> tuple[float, float]:
    """Refuse NaN/inf and value ranges that cannot be HU; return (lowest, highest) HU."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise CTInputError(f"{source}: voxel type {array.dtype}; a CT holds integer or float HU")
    low, high = float(array.min()), float(array.max())  # NaN and inf propagate into these
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise CTInputError(f"{source}: {bad} voxels are NaN or infinite")
    seen = f"values {low:g} .. {high:g}"
    if low == high:
        raise CTInputError(f"{source}: every voxel is {low:g}; an empty volume is not a CT")
    if low < -CT_VALUE_LIMIT_HU or high > CT_VALUE_LIMIT_HU:
        raise CTInputError(f"{source}: {seen}; these are not Hounsfield units")
    if low > CT_LOWEST_AT_MOST_HU:
        raise CTInputError(
            f"{source}: {seen}, nothing below {CT_LOWEST_AT_MOST_HU:g}: no air (-1000 HU) "
            "or fat (-100 HU), so this is not a CT in HU (an MR, or CT stored without its "
            "rescale slope/intercept?)"
        )
    if high < CT_HIGHEST_AT_LEAST_HU:
        raise CTInputError(
            f"{source}: {seen}, nothing above {CT_HIGHEST_AT_LEAST_HU:g}: no bone, so this "
            "is not a CT in HU (normalised intensities or an MR?)"
        )
    return low, high


def check_ct(image: Image, source: str = "image") -> tuple[float, float]:
    """All checks on an :class:`Image` (e.g. one that came from Slicer); returns the HU range."""
    components = 1 if image.array.ndim == 3 else int(image.array.shape[-1])
    if image.array.ndim not in (3, 4):
        raise CTInputError(f"{source}: array of shape {image.array.shape}; a CT volume must be 3D")
    check_layout(image.size_ijk, image.spacing_mm, components, source)
    return check_ct_values(image.array, source)
