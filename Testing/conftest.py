"""Shared fixtures: a tiny CT on an oblique grid with one flipped axis, and its labels.

The grid is deliberately awkward (anisotropic spacing, rotated direction cosines, a
left-handed index frame) so that any writer or reader that drops or mangles geometry
moves the labelled voxels in physical space, which the tests measure.
"""

from __future__ import annotations

import numpy as np
import pytest

from SpineLabelerLib.image import Image

# (K, J, I) array shape; spacing (i, j, k) mm; origin LPS mm.
TINY_SHAPE_KJI = (16, 20, 24)
TINY_SPACING_MM = (0.8, 1.1, 2.5)
TINY_ORIGIN_LPS = (12.5, -30.25, 101.0)
# One voxel carrying its own label (C7 = 7), index (i, j, k), to follow through round trips.
MARKED_VOXEL_IJK = (5, 14, 14)
MARKED_LABEL = 7
# Vertebra blocks along k (k runs roughly towards S, so T12 is cranial of L1 and L2):
# label -> (k0, k1) slab, inside i 8..16, j 6..14.
BLOCKS_K = {21: (2, 6), 20: (7, 11), 19: (12, 15)}


def oblique_flipped_direction() -> np.ndarray:
    """Rotation of ~20 deg about S and ~10 deg about L, with index axis j flipped (det -1)."""
    a, b = np.deg2rad(20.0), np.deg2rad(10.0)
    rot_s = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot_l = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rot_s @ rot_l @ np.diag([1.0, -1.0, 1.0])


def make_tiny_labels() -> Image:
    labels = np.zeros(TINY_SHAPE_KJI, np.uint8)
    for label, (k0, k1) in BLOCKS_K.items():
        labels[k0:k1, 6:14, 8:16] = label
    i, j, k = MARKED_VOXEL_IJK
    labels[k, j, i] = MARKED_LABEL
    return Image(labels, TINY_SPACING_MM, TINY_ORIGIN_LPS, oblique_flipped_direction())


def make_tiny_ct() -> Image:
    """int16 HU: air around a soft-tissue body (40 HU) with bone (700 HU) where labels are."""
    ct = np.full(TINY_SHAPE_KJI, -1000, np.int16)
    ct[:, 3:18, 3:21] = 40
    ct[make_tiny_labels().array > 0] = 700
    return Image(ct, TINY_SPACING_MM, TINY_ORIGIN_LPS, oblique_flipped_direction())


@pytest.fixture
def tiny_ct() -> Image:
    return make_tiny_ct()


@pytest.fixture
def tiny_labels() -> Image:
    return make_tiny_labels()


@pytest.fixture
def tiny_centroids_lps(tiny_labels: Image) -> dict[int, np.ndarray]:
    """Centroid (LPS mm, shape (3,)) of every label of ``tiny_labels``."""
    from SpineLabelerLib.image import index_to_lps

    out = {}
    for label in np.unique(tiny_labels.array[tiny_labels.array > 0]):
        kji = np.argwhere(tiny_labels.array == label).mean(axis=0)
        out[int(label)] = index_to_lps(tiny_labels, kji[::-1])[0]
    return out
