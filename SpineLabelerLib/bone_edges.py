"""Outlines to the bone's edge: each vertebra grown over the CT's bone next to it.

Why: on real CT the stage-2 net, trained on phantoms, stops short of the bone's edge: the
real cases' missed expert voxels are bright bone (median 263 HU), 44 % of them within 1 mm
of the net's mask (endplates, the body's rim) and most of the rest the ends of the arches
and the spinous processes (benchmarks/real_case_misses.py). The CT itself shows where the
bone ends. Each vertebra's mask on the input grid is grown into the bone that touches it,
up to ``reach_mm`` away, layer by layer through bone only, so neighbours stay apart where
they meet. Bone is the CT above ``bone_fraction`` of the vertebrae's own 90th-percentile HU
(the patient's density and the scanner's calibration), never below ``min_bone_hu``.
The reach stays short: bone beyond the vertebra that touches it (the sacrum under L5, a
rib head beside a thoracic vertebra) would be taken too; and the phantoms' reference masks,
drawn to the geometric surface, lose a little where the blurred bone outside them is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class BoneEdgeSettings:
    reach_mm: float = 1.5
    bone_fraction: float = 0.5  # of the vertebrae's 90th-percentile HU
    min_bone_hu: float = 150.0


def grow_to_bone(
    labels: np.ndarray,
    hu: np.ndarray,
    spacing_kji_mm: tuple[float, float, float],
    settings: BoneEdgeSettings = BoneEdgeSettings(),
) -> np.ndarray:
    """``labels`` (K, J, I) grown over the bone of ``hu`` (same grid, HU) within
    ``settings.reach_mm`` of them, one voxel layer at a time (a layer along an axis only
    while it stays within the reach there); a new array. Where two vertebrae reach the same
    voxel in one layer the caudal one (higher label) takes it: at a reach of a few mm that
    is a facet joint's few voxels. Give it a box with the reach as margin around the labels."""
    inside = labels > 0
    if not inside.any():
        return labels.copy()
    threshold = max(settings.min_bone_hu, settings.bone_fraction * np.percentile(hu[inside], 90))
    bone = hu >= threshold
    layers = [int(settings.reach_mm // s) for s in spacing_kji_mm]
    grown = labels.copy()
    for layer in range(max(layers)):
        size = tuple(3 if layer < n else 1 for n in layers)
        reached = ndimage.grey_dilation(grown, size=size)
        take = (grown == 0) & bone & (reached > 0)
        grown[take] = reached[take]
    return grown
