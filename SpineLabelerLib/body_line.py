"""Whether the last mask of a column has a body in line with the bodies above it.

A short view's foot can cut the next vertebra off behind its body: what stays in view is
its arch, whose front lies a body's depth behind the front of the body above. The sacrum's
top, cut as thin, keeps its body, whose front lies nearer. ``front_step_in_body_depths``
measures that step looking along the column, in depths of the bodies above, so that it
scales with the patient (column.recognise_sacrum reads it).

Measured on the masks the walk left where column.recognise_sacrum runs (session 27): the
arches the phantoms' L2-L3 views cut off the next vertebra started 0.67-1.06 depths back
where their bone was wide enough to pass for the sacrum's (0.14-1.32 all told); the real
sacra 0.07-0.57 (verse005 0.41-0.57, verse008 0.07-0.30, on 1 and 3 mm slices); whole bottom
vertebrae -0.01-0.31.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# Half the width of the band round a vertebra's midline in which its body's depth is read, mm.
MIDLINE_HALF_WIDTH_MM = 5.0
# The bins, mm, in which the midline is read from the front back to the canal.
DEPTH_BIN_MM = 1.0


def front_step_in_body_depths(
    instances: np.ndarray, indices: Sequence[int], spacing_mm: Sequence[float]
) -> float | None:
    """How far the front of the last vertebra of ``indices`` (values in ``instances``,
    ``(K, J, I)`` on the canonical LPS grid, j towards the back; top to bottom) lies behind
    the front of the one before it, in the median depth of the bodies of the others.

    The fronts are read perpendicular to the column's line through the two vertebrae
    before the last (the lumbar lordosis tilts the bodies, and a front read along j alone
    put the sacrum up to 33 mm behind L5's); a body's depth is its midline from the front
    to the canal. Needs three vertebrae; None where nothing can be read."""
    if len(indices) < 3:
        return None
    spacing_kji = np.asarray(spacing_mm, float)[::-1]
    boxes = ndimage.find_objects(instances)
    voxels = [_voxels_mm(instances, boxes, index, spacing_kji) for index in indices]
    if any(len(v) == 0 for v in voxels):
        return None
    centroids = [v.mean(axis=0) for v in voxels]
    along = centroids[-2] - centroids[-3]
    if not np.linalg.norm(along):
        return None
    along /= np.linalg.norm(along)
    anterior = np.array([0.0, -1.0, 0.0])  # j runs towards the back
    front = anterior - (anterior @ along) * along
    if np.linalg.norm(front) < 0.1:  # a column running front to back has no front to read
        return None
    front /= np.linalg.norm(front)
    side = np.cross(along, front)
    fronts = [float(np.percentile(v @ front, 99)) for v in voxels]
    depths = [
        d
        for v, f, c in zip(voxels[:-1], fronts[:-1], centroids[:-1])
        if (d := _body_depth_mm(v @ front, (v - c) @ side, f)) is not None
    ]
    if not depths:
        return None
    return (fronts[-2] - fronts[-1]) / float(np.median(depths))


def _voxels_mm(
    instances: np.ndarray, boxes: list, index: int, spacing_kji: np.ndarray
) -> np.ndarray:
    """The (k, j, i) positions, mm, of the voxels of vertebra ``index`` (``boxes``: the
    instances' ndimage.find_objects)."""
    box = boxes[index - 1] if index - 1 < len(boxes) else None
    if box is None:
        return np.zeros((0, 3))
    offset = np.array([s.start for s in box])
    return (np.argwhere(instances[box] == index) + offset) * spacing_kji


def _body_depth_mm(forward: np.ndarray, sideways: np.ndarray, front: float) -> float | None:
    """The depth of a vertebra's body: the first unbroken run of its midline voxels from its
    front backwards (behind it lies the canal), mm; None without one."""
    behind = front - forward[np.abs(sideways) < MIDLINE_HALF_WIDTH_MM]
    bins = np.floor(behind[behind >= 0] / DEPTH_BIN_MM).astype(int)
    if not len(bins):
        return None
    filled = np.bincount(bins) > 0
    first = int(np.argmax(filled))
    gaps = np.nonzero(~filled[first:])[0]
    if not len(gaps):
        return None
    return float(first + gaps[0]) * DEPTH_BIN_MM
