import numpy as np
import pytest

from SpineLabelerLib import preprocess
from SpineLabelerLib.image import Image, index_to_lps, lps_to_index


def _oblique_ct():
    """A (K, J, I) = (20, 30, 40) CT at (0.8, 0.7, 2.0) mm, rotated 90 deg about S and flipped in k."""
    arr = np.full((20, 30, 40), -1000.0, np.float32)
    arr[8:12, 10:20, 15:25] = 700.0  # a bright block
    direction = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    return Image(arr, (0.8, 0.7, 2.0), (10.0, -20.0, 50.0), direction)


def test_normalize_hu_clips_and_scales():
    out = preprocess.normalize_hu(np.array([-2000, -512, 256, 1024, 3000]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-6)


def test_hu_from_normalized_inverts_normalize_hu_inside_the_window():
    for hu in (-512.0, 0.0, 150.0, 300.0, 1024.0):
        back = preprocess.hu_from_normalized(preprocess.normalize_hu(np.array([hu]))[0])
        assert back == pytest.approx(hu, abs=1e-3)


def test_canonical_grid_is_axis_aligned_and_covers_the_ct():
    ct = _oblique_ct()
    grid = preprocess.canonical_grid(ct, 2.0)
    np.testing.assert_array_equal(grid.direction, np.eye(3))
    assert grid.spacing_mm == (2.0, 2.0, 2.0)
    lo, hi = preprocess.physical_bounds_lps(ct)
    # extent: i-axis of the CT (0.8 mm x 40) runs along P, j (0.7 x 30) along L, k (2 x 20) along S
    np.testing.assert_allclose(hi - lo, [21.0, 32.0, 40.0], atol=1e-6)
    assert grid.size_ijk == (11, 16, 20)
    g_lo, g_hi = preprocess.physical_bounds_lps(grid)
    assert np.all(g_lo <= lo + 1e-6) and np.all(g_hi >= hi - 1e-6)


def test_to_canonical_keeps_physical_positions():
    ct = _oblique_ct()
    can = preprocess.to_canonical(ct, 1.0)
    assert can.array.dtype == np.float32
    centre_ct = index_to_lps(ct, [[19.5, 14.5, 9.5]])  # centre of the bright block
    ijk = np.round(lps_to_index(can, centre_ct)[0]).astype(int)
    assert can.array[ijk[2], ijk[1], ijk[0]] == pytest.approx(700.0, abs=1.0)
    assert can.array.min() == pytest.approx(-1000.0)  # a 90-degree grid has no corner outside
    assert (can.array > 0).sum() * 1.0 == pytest.approx(4 * 2.0 * 10 * 0.7 * 10 * 0.8, rel=0.35)


def test_oblique_ct_corners_read_as_air():
    a = np.deg2rad(30.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ct = Image(np.zeros((4, 10, 10), np.float32), (1.0, 1.0, 1.0), (0, 0, 0), rot)
    can = preprocess.to_canonical(ct, 1.0)
    assert can.array[:, 0, 0].max() == pytest.approx(preprocess.AIR_HU)
    assert can.array[:, 6, 6].max() == pytest.approx(0.0)


def test_labels_round_trip_to_canonical_and_back():
    ct = _oblique_ct()
    labels = ct.with_array((ct.array > 0).astype(np.uint8) * 20)
    can = preprocess.labels_to_canonical(labels, 0.5)
    assert set(np.unique(can.array)) == {0, 20} and can.array.dtype == np.uint8
    back = preprocess.to_input_grid(can, ct)
    assert back.same_grid(ct)
    assert (back.array == labels.array).mean() > 0.99


def test_box_restricts_the_grid():
    ct = _oblique_ct()
    grid = preprocess.canonical_grid(ct, 1.0, box_lps=([0, 0, 0], [10, 20, 30]))
    assert grid.size_ijk == (10, 20, 30)
    np.testing.assert_allclose(grid.origin_lps, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="empty box"):
        preprocess.canonical_grid(ct, 1.0, box_lps=([0, 0, 0], [0, 20, 30]))


def test_region_classes():
    labels = np.array([0, 1, 7, 8, 19, 20, 25, 26, 28])
    np.testing.assert_array_equal(preprocess.region_classes(labels), [0, 1, 1, 2, 2, 3, 3, 0, 2])
