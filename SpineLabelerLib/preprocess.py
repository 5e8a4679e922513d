"""Working grids and intensities shared by training and inference (ARCHITECTURE "Working grids").

Both stages see the CT on a *canonical* grid: axis-aligned in LPS (identity direction, so index
axis i runs to patient Left, j to Posterior, k to Superior), at the stage's isotropic spacing,
covering the CT's whole physical extent. Intensities are clipped to [-512, 1024] HU and scaled
linearly to [-1, 1]. Labels travel by nearest neighbour, both onto the canonical grid and back
to the CT's own grid. All resampling goes through :func:`image.resample_onto`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, index_to_lps, resample_onto

HU_MIN = -512.0
HU_MAX = 1024.0
AIR_HU = -1024.0
# Named setting: the paper uses 1 mm; 3 mm is the CPU default (trade-off measured by inference).
STAGE1_SPACING_MM = 3.0
STAGE2_SPACING_MM = 1.0
STAGE2_PATCH_KJI: tuple[int, int, int] = (64, 96, 96)  # (K, J, I) voxels at 1 mm

# VerSe values outside the C1-L6 table that still are vertebrae of a region (28 = T13).
_EXTRA_REGION_LABELS = {28: anatomy.REGION_CLASS["thoracic"]}


def _as_spacing(spacing_mm: float | Sequence[float]) -> np.ndarray:
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,)).copy()
    if not np.all(spacing > 0):
        raise ValueError(f"spacing must be positive, got {spacing_mm!r}")
    return spacing


def physical_bounds_lps(image: Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS (min, max) corners (mm) of the box holding every voxel of ``image`` (voxel edges)."""
    n = np.asarray(image.size_ijk, float)
    corners = np.array(
        [
            [a, b, c]
            for a in (-0.5, n[0] - 0.5)
            for b in (-0.5, n[1] - 0.5)
            for c in (-0.5, n[2] - 0.5)
        ]
    )
    lps = index_to_lps(image, corners)
    return lps.min(axis=0), lps.max(axis=0)


def canonical_grid(
    image: Image,
    spacing_mm: float | Sequence[float],
    box_lps: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Image:
    """An empty axis-aligned LPS grid (identity direction) at ``spacing_mm`` (i, j, k order).

    It covers ``image``'s physical extent, or only ``box_lps = (min_lps, max_lps)`` (mm) when
    given, e.g. the spine region's box for stage 2. The array is ``(K, J, I)`` uint8 zeros.
    """
    spacing = _as_spacing(spacing_mm)
    if box_lps is None:
        lo, hi = physical_bounds_lps(image)
    else:
        lo, hi = (np.asarray(b, float) for b in box_lps)
        if np.any(hi <= lo):
            raise ValueError(f"empty box: min {lo} max {hi}")
    size = np.maximum(np.ceil((hi - lo) / spacing - 1e-6).astype(int), 1)
    origin = lo + 0.5 * spacing
    return Image(np.zeros(size[::-1], np.uint8), tuple(spacing), tuple(origin), np.eye(3))


def to_canonical(
    ct: Image,
    spacing_mm: float | Sequence[float],
    box_lps: tuple[Sequence[float], Sequence[float]] | None = None,
    fill_hu: float = AIR_HU,
) -> Image:
    """The CT (HU) linearly resampled onto :func:`canonical_grid`; outside the CT reads ``fill_hu``.

    Returns float32 HU, not yet normalized (see :func:`normalize_hu`).
    """
    reference = canonical_grid(ct, spacing_mm, box_lps)
    return resample_onto(ct, reference, nearest=False, fill=fill_hu, float32=True)


def labels_onto(labels: Image, reference: Image) -> Image:
    """A labelmap moved onto ``reference``'s grid by nearest neighbour (0 outside)."""
    out = resample_onto(labels, reference, nearest=True, fill=0)
    return out.with_array(out.array.astype(labels.array.dtype, copy=False))


def labels_to_canonical(
    labels: Image,
    spacing_mm: float | Sequence[float],
    box_lps: tuple[Sequence[float], Sequence[float]] | None = None,
) -> Image:
    """A labelmap on the same canonical grid that :func:`to_canonical` gives its CT."""
    return labels_onto(labels, canonical_grid(labels, spacing_mm, box_lps))


def to_input_grid(labels: Image, ct: Image) -> Image:
    """A canonical-grid labelmap back onto the CT's own grid (nearest neighbour)."""
    return labels_onto(labels, ct)


def normalize_hu(array: np.ndarray) -> np.ndarray:
    """HU -> [-1, 1] float32: clip to [HU_MIN, HU_MAX] = [-512, 1024], then scale linearly."""
    a = np.clip(np.asarray(array, np.float32), HU_MIN, HU_MAX)
    return ((a - HU_MIN) * (2.0 / (HU_MAX - HU_MIN)) - 1.0).astype(np.float32)


def hu_from_normalized(value: float) -> float:
    """The inverse of :func:`normalize_hu` for one value inside [-1, 1] (HU)."""
    return (float(value) + 1.0) * (HU_MAX - HU_MIN) / 2.0 + HU_MIN


def region_classes(labels: np.ndarray) -> np.ndarray:
    """VerSe label values -> stage-1 classes (0 bg, 1 C, 2 T, 3 L) as uint8, same shape.

    Values that are not a vertebra of the table (e.g. 26 sacrum) become background.
    """
    lab = np.asarray(labels)
    if lab.size and (lab.min() < 0):
        raise ValueError("labels must be non-negative VerSe values")
    top = int(max(lab.max() if lab.size else 0, anatomy.MAX_LABEL, *_EXTRA_REGION_LABELS))
    lut = np.zeros(top + 1, np.uint8)
    for v in anatomy.VERTEBRAE:
        lut[v.label] = v.region_class
    for value, cls in _EXTRA_REGION_LABELS.items():
        lut[value] = cls
    return lut[lab.astype(np.int64)]
