"""SpineLabelerLib.image: index <-> LPS, LPS <-> RAS, Slicer's IJK-to-RAS and resampling,
checked on an oblique grid with a flipped axis against SimpleITK's own geometry."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BLOCKS_K, TINY_SPACING_MM

from SpineLabelerLib.image import (
    Image,
    ijk_to_lps_matrix,
    ijk_to_ras_matrix,
    image_from_ijk_to_ras,
    index_to_lps,
    lps_to_index,
    lps_to_ras,
    orientation_code,
    physical_extent_mm,
    ras_to_lps,
    resample_onto,
    resample_to_spacing,
    to_sitk,
)


def test_index_to_lps_matches_simpleitk_on_oblique_flipped_grid(tiny_ct):
    img = to_sitk(tiny_ct)
    ijk = np.array([[0.0, 0.0, 0.0], [3.5, 7.25, 11.0], [23.0, 19.0, 15.0]])
    expected = np.array([img.TransformContinuousIndexToPhysicalPoint(p.tolist()) for p in ijk])
    np.testing.assert_allclose(index_to_lps(tiny_ct, ijk), expected, atol=1e-9)
    np.testing.assert_allclose(lps_to_index(tiny_ct, expected), ijk, atol=1e-9)
    # Moving one voxel along j (the flipped axis) moves 1.1 mm against direction column 1's rotation.
    step = index_to_lps(tiny_ct, [0, 1, 0])[0] - index_to_lps(tiny_ct, [0, 0, 0])[0]
    np.testing.assert_allclose(step, TINY_SPACING_MM[1] * tiny_ct.direction[:, 1], atol=1e-12)
    assert np.linalg.det(tiny_ct.direction) == pytest.approx(-1.0)


def test_ras_lps_conversion_negates_x_and_y_and_is_its_own_inverse():
    p = np.array([[10.0, -20.0, 30.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(lps_to_ras(p), [[-10.0, 20.0, 30.0], [-1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(ras_to_lps(lps_to_ras(p)), p)
    np.testing.assert_array_equal(lps_to_ras(np.array([5.0, 6.0, 7.0])), [-5.0, -6.0, 7.0])


def test_ijk_to_ras_matrix_round_trip(tiny_ct):
    m = ijk_to_ras_matrix(tiny_ct)
    corner = np.array([23.0, 19.0, 15.0, 1.0])
    np.testing.assert_allclose(
        m @ corner, np.append(lps_to_ras(index_to_lps(tiny_ct, corner[:3])[0]), 1)
    )
    np.testing.assert_allclose(
        (ijk_to_lps_matrix(tiny_ct) @ corner)[:3], index_to_lps(tiny_ct, corner[:3])[0]
    )
    back = image_from_ijk_to_ras(tiny_ct.array, m)
    assert back.same_grid(tiny_ct, tol=1e-9)


def test_orientation_code_and_extent(tiny_ct):
    identity = Image(np.zeros((2, 3, 4)))
    assert (
        orientation_code(identity) == "LPS"
    )  # axis i points towards Left, j Posterior, k Superior
    flipped = Image(np.zeros((2, 3, 4)), direction=np.diag([-1.0, 1.0, -1.0]))
    assert orientation_code(flipped) == "RPI"
    np.testing.assert_allclose(physical_extent_mm(tiny_ct), (24 * 0.8, 20 * 1.1, 16 * 2.5))


def label_centroid_lps(labels: Image, label: int) -> np.ndarray:
    kji = np.argwhere(labels.array == label).mean(axis=0)
    return index_to_lps(labels, kji[::-1])[0]


def test_resample_to_spacing_keeps_physical_positions(tiny_labels):
    fine = resample_to_spacing(tiny_labels, (0.4, 0.55, 1.25), nearest=True)
    assert fine.size_ijk == (48, 40, 32)
    np.testing.assert_allclose(fine.direction, tiny_labels.direction)
    np.testing.assert_allclose(physical_extent_mm(fine), physical_extent_mm(tiny_labels))
    # Halving the spacing splits each voxel in 8, so every block centroid stays put exactly.
    for label in BLOCKS_K:
        np.testing.assert_allclose(
            label_centroid_lps(fine, label), label_centroid_lps(tiny_labels, label), atol=1e-6
        )
    # Going back onto the original grid gives the original labels.
    np.testing.assert_array_equal(
        resample_onto(fine, tiny_labels, nearest=True).array, tiny_labels.array
    )


def test_with_array_refuses_other_shape(tiny_ct):
    with pytest.raises(ValueError, match="does not match grid"):
        tiny_ct.with_array(np.zeros((2, 2, 2)))


def test_grow_box_stays_inside_the_array():
    from SpineLabelerLib.image import grow_box

    box = (slice(0, 3), slice(4, 6), slice(7, 10))
    assert grow_box(box, 2, (20, 20, 11)) == (slice(0, 5), slice(2, 8), slice(5, 11))


def test_bounding_box_of_a_mask_and_of_none():
    from SpineLabelerLib.image import bounding_box

    mask = np.zeros((5, 6, 7), bool)
    assert bounding_box(mask) is None
    mask[1, 2:4, 3] = mask[3, 2, 5] = True
    assert bounding_box(mask) == (slice(1, 4), slice(2, 4), slice(3, 6))
    assert bounding_box(mask[:, :, 1::2]) == (slice(1, 4), slice(2, 4), slice(1, 3))  # a view
