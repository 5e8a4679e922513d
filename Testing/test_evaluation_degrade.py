"""evaluation/degrade.py: thick slabs and tight crops of a CT keep the geometry true and
the expert's labels on the bone, whatever axis of the array runs head to foot."""

import numpy as np
import pytest

from SpineLabelerLib.evaluation.degrade import (
    crop_to_levels,
    half_voxel_regrid,
    superior_axis,
    thick_slabs,
)
from SpineLabelerLib.image import Image, index_to_lps

# verse005's grid: i runs posterior, j inferior, k to the patient's right
SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _ct_and_labels():
    """A 4 x 30 x 5 array on the sagittal grid; the CT's value is its j index (mm from the
    top), labels 20 on j 3-10 and 21 on j 14-25."""
    array = np.broadcast_to(np.arange(30, dtype=np.int16)[None, :, None] * 10, (4, 30, 5)).copy()
    labels = np.zeros(array.shape, np.uint8)
    labels[:, 3:11] = 20
    labels[:, 14:26] = 21
    ct = Image(array, (1.0, 1.0, 2.0), (5.0, -3.0, 7.0), SAGITTAL)
    return ct, ct.with_array(labels)


def test_the_superior_axis_is_found_on_any_grid():
    ct, _ = _ct_and_labels()
    assert superior_axis(ct) == 1
    assert superior_axis(Image(np.zeros((3, 4, 5)))) == 0  # axial: k runs head to foot


def test_thick_slabs_average_the_slices_and_keep_each_slab_where_its_slices_were():
    ct, labels = _ct_and_labels()
    thick, thick_labels = thick_slabs(ct, labels, 3.0)
    assert thick.array.shape == (4, 10, 5) and thick.spacing_mm == (1.0, 3.0, 2.0)
    assert thick.array[0, :, 0].tolist() == [10 * (3 * n + 1) for n in range(10)]
    # slab n's centre lies where thin slice 3n + 1 lay
    for n in (0, 4, 9):
        here = index_to_lps(thick, np.array([[2.0, n, 1.0]]))[0]
        there = index_to_lps(ct, np.array([[2.0, 3 * n + 1, 1.0]]))[0]
        assert here == pytest.approx(there)
    assert thick_labels.same_grid(thick)
    assert thick_labels.array[0, :, 0].tolist() == [0, 20, 20, 20, 0, 21, 21, 21, 21, 0]


def test_a_crop_keeps_the_named_levels_whole_and_a_margin_round_them():
    ct, labels = _ct_and_labels()
    crop, crop_labels = crop_to_levels(ct, labels, [20], margin_mm=2.0)
    assert crop.array.shape == (4, 12, 5)  # j 1-12
    assert (crop_labels.array == 20).sum() == (labels.array == 20).sum()
    top = index_to_lps(crop, np.zeros((1, 3)))[0]
    assert top == pytest.approx(index_to_lps(ct, np.array([[0.0, 1.0, 0.0]]))[0])
    with pytest.raises(ValueError, match="none of the levels"):
        crop_to_levels(ct, labels, [22], 2.0)


def test_a_half_voxel_regrid_samples_between_the_voxels_and_keeps_the_labels_on_the_bone():
    """On the sagittal grid the CT's value is 10 x its j index: half a voxel on, each value is
    the mean of two neighbours (+5), stored as int16; the grid moved half a voxel in LPS along
    each of its own axes, one voxel shorter on each; a voxel wholly inside a label keeps it,
    one wholly outside every label stays 0."""
    ct, labels = _ct_and_labels()
    moved, moved_labels = half_voxel_regrid(ct, labels)
    assert moved.array.shape == moved_labels.array.shape == (3, 29, 4)
    assert moved.array.dtype == np.int16 and moved_labels.array.dtype == labels.array.dtype
    np.testing.assert_array_equal(moved.array[0, :, 0], np.arange(29) * 10 + 5)
    shift = np.asarray(moved.origin_lps) - np.asarray(ct.origin_lps)
    np.testing.assert_allclose(shift, SAGITTAL @ [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(moved_labels.array[:, 3:10], 20)
    np.testing.assert_array_equal(moved_labels.array[:, 14:25], 21)
    np.testing.assert_array_equal(moved_labels.array[:, :2], 0)
    np.testing.assert_array_equal(moved_labels.array[:, 11:13], 0)
    np.testing.assert_array_equal(moved_labels.array[:, 26:], 0)
