"""Vertebra centroids from a labelmap: the one shared definition used by every module.

The paper computes centroids "from the final vertebra masks"; here a centroid is the centre
of mass of a label's voxels (every voxel weighted equally), mapped to LPS millimetres
through the image's full geometry, so oblique and flipped grids give the same physical point.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from SpineLabelerLib.image import Image, index_to_lps

Centroids = dict[int, np.ndarray]  # VerSe label -> (3,) LPS mm


def _label_boxes(array: np.ndarray) -> tuple[np.ndarray, list]:
    """The labelmap as integers and ``find_objects``' box per value (None where absent).

    One pass over the array as it is: no copy, also of a view into a clinical grid (a
    bincount would flatten it first, five times slower)."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("labelmap holds non-integer values; expected VerSe label values")
        array = array.astype(np.int64)
    if array.dtype.kind == "b":
        array = array.view(np.uint8)
    if array.dtype.kind not in "iu":
        raise ValueError(f"labelmap must hold integers, got {array.dtype}")
    if not array.size:
        return array, []
    if array.dtype.kind == "i" and array.min() < 0:
        raise ValueError(f"labelmap holds negative values (min {array.min()})")
    return array, ndi.find_objects(array)


def label_values(array: np.ndarray) -> list[int]:
    """Sorted non-zero values of an integer ``(K, J, I)`` labelmap."""
    return [n + 1 for n, box in enumerate(_label_boxes(array)[1]) if box is not None]


def centroids_from_labels(labels: Image) -> Centroids:
    """Centre of mass of every non-zero label, ``{label: np.array([x, y, z])}`` in LPS mm.

    ``labels.array`` is an integer ``(K, J, I)`` map (VerSe values, 0 = background).
    Labels are returned in ascending order; an all-background map gives ``{}``.
    """
    return centroids_and_counts(labels)[0]


def centroids_and_counts(labels: Image) -> tuple[Centroids, dict[int, int]]:
    """:func:`centroids_from_labels` and each label's voxel count, from the same one pass
    (the pipeline's records need both of a clinical-size grid)."""
    if np.ndim(labels.array) != 3:
        raise ValueError(f"labelmap must be 3D (K, J, I), got shape {np.shape(labels.array)}")
    array, boxes = _label_boxes(labels.array)
    centroids, counts = {}, {}
    for value, box in enumerate(boxes, start=1):
        if box is None:
            continue
        points = np.argwhere(array[box] == value)
        kji = points.mean(axis=0) + [s.start for s in box]
        centroids[value] = index_to_lps(labels, kji[::-1])[0]
        counts[value] = len(points)
    return centroids, counts
