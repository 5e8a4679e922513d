"""Metal beside the vertebrae (pedicle screws, rods, a disc prosthesis): said, by vertebra.

Why: the nets saw few instrumented spines (8 % of the training phantoms had screws), and
there they fail most: on the development phantoms the screwed vertebrae were the worst
outlined or not found at all (dev007 L4-L5 missed, dev011 L5 17 % Dice, dev048 T12 75 %,
against 90-97 % for the same cases' other vertebrae). A user who plans a revision on such a
CT should know which levels to check; the CT shows the metal plainly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import grow_box

# Above any bone but tooth enamel; metal saturates most scanners at 3071 HU.
METAL_HU = 2500.0
# Metal within this distance of a vertebra's mask is beside it (a screw's head sits on the
# lamina, a rod a few mm behind it).
REACH_MM = 10.0
# Less metal than this in all (a few bright voxels of noise or a clip) is not said.
MIN_METAL_ML = 0.05
# The search runs on a grid no finer than this (a screw is 5-7 mm across).
SEARCH_SPACING_MM = 1.0


def vertebrae_beside_metal(
    labels: np.ndarray, hu: np.ndarray, spacing_kji_mm: tuple[float, float, float]
) -> list[int]:
    """The labels of ``labels`` (K, J, I) that have at least ``MIN_METAL_ML`` of metal
    (``hu`` >= ``METAL_HU``, same grid; pieces under ``MIN_METAL_ML`` left out) within
    ``REACH_MM`` of their voxels and nearer them than any other vertebra, ascending."""
    step = tuple(max(1, int(SEARCH_SPACING_MM // s)) for s in spacing_kji_mm)
    grid = tuple(slice(None, None, n) for n in step)
    labels, metal = labels[grid], hu[grid] >= METAL_HU
    spacing = np.asarray(spacing_kji_mm, float) * step
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if metal.sum() * voxel_ml < MIN_METAL_ML or not labels.any():
        return []
    pieces, _ = ndimage.label(metal)
    sizes = np.bincount(pieces.ravel())
    margin = np.ceil(REACH_MM / spacing).astype(int)
    counts = np.zeros(int(labels.max()) + 1, np.int64)
    for piece, where in enumerate(ndimage.find_objects(pieces), start=1):
        if where is None or sizes[piece] * voxel_ml < MIN_METAL_ML:
            continue
        box = grow_box(where, margin, labels.shape)
        near = labels[box]
        if not near.any():
            continue
        distance, nearest = ndimage.distance_transform_edt(
            near == 0, sampling=spacing, return_indices=True
        )
        beside = (pieces[box] == piece) & (distance <= REACH_MM)
        counts += np.bincount(near[tuple(axis[beside] for axis in nearest)], minlength=len(counts))
    return [int(v) for v in np.nonzero(counts * voxel_ml >= MIN_METAL_ML)[0] if v > 0]


def metal_note(labels: list[int]) -> list[str]:
    """The note for the vertebrae with metal beside them (none without)."""
    if not labels:
        return []
    names = ", ".join(anatomy.vertebra(v).name for v in labels)
    return [
        f"metal beside {names} (screws, rods or a prosthesis): the networks saw few "
        "instrumented spines; check those vertebrae's outlines, and the levels next to them"
    ]
