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


def centroids_from_labels(labels: Image) -> Centroids:
    """Centre of mass of every non-zero label, ``{label: np.array([x, y, z])}`` in LPS mm.

    ``labels.array`` is an integer ``(K, J, I)`` map (VerSe values, 0 = background).
    Labels are returned in ascending order; an all-background map gives ``{}``.
    """
    array = np.asarray(labels.array)
    if array.ndim != 3:
        raise ValueError(f"labelmap must be 3D (K, J, I), got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("labelmap holds non-integer values; expected VerSe label values")
    array = array.astype(np.int64, copy=False)
    values = np.unique(array)
    values = values[values != 0]
    if values.size == 0:
        return {}
    if values.min() < 0:
        raise ValueError(f"labelmap holds negative values (min {values.min()})")
    centres_kji = ndi.center_of_mass(np.ones_like(array, dtype=np.uint8), array, values)
    ijk = np.asarray(centres_kji, float)[:, ::-1]
    lps = index_to_lps(labels, ijk)
    return {int(v): lps[n] for n, v in enumerate(values)}
