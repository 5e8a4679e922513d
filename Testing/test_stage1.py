"""stage1.py: windows, cleaning, boxes, centre line and boundaries on hand-built maps."""

import numpy as np
import pytest

from SpineLabelerLib import stage1
from SpineLabelerLib.image import Image
from SpineLabelerLib.progress import CancelFlag, Cancelled


def spine_map(spacing=3.0, shape=(60, 20, 20)):
    """A straight column along k (Superior): C at the top, T in the middle, L at the bottom.

    Column occupies i 8..11, j 6..9; k 0..19 lumbar, 20..39 thoracic, 40..54 cervical.
    """
    a = np.zeros(shape, np.uint8)
    a[0:20, 6:10, 8:12] = 3
    a[20:40, 6:10, 8:12] = 2
    a[40:55, 6:10, 8:12] = 1
    return Image(a, (spacing,) * 3, (-30.0, -30.0, -100.0))


def test_window_starts_cover_the_axis_with_overlap():
    assert stage1.window_starts(10, 16, 0.25) == [0]
    starts = stage1.window_starts(100, 32, 0.25)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:]))


def test_sliding_windows_equal_whole_volume_for_a_voxelwise_predictor():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(1, 30, 25, 20)).astype(np.float32)

    def predict(x):  # per-voxel "network": softmax of (x, -x)
        e = np.exp(np.concatenate([x, -x]))
        return (e / e.sum(axis=0)).astype(np.float32)

    whole = stage1.sliding_window_probabilities(vol, predict, 2, (64, 64, 64))
    tiled = stage1.sliding_window_probabilities(vol, predict, 2, (16, 16, 8), overlap=0.5)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    with pytest.raises(ValueError, match="C, K, J, I"):
        stage1.sliding_window_probabilities(vol[0], predict, 2, (8, 8, 8))


def test_sliding_windows_report_progress_and_stop_on_cancel():
    vol = np.zeros((1, 16, 16, 16), np.float32)
    seen = []
    stage1.sliding_window_probabilities(
        vol,
        lambda x: np.ones((1, *x.shape[1:]), np.float32),
        1,
        (8, 8, 8),
        0.0,
        progress=lambda s, f, m: seen.append(f),
    )
    assert len(seen) == 8 and seen[-1] == 1.0
    flag = CancelFlag()
    flag.set()
    with pytest.raises(Cancelled):
        stage1.sliding_window_probabilities(vol, lambda x: x, 1, (8, 8, 8), 0.0, cancel=flag)


def test_cleaning_removes_specks_and_keeps_the_column():
    img = spine_map()
    a = img.array.copy()
    a[5, 1, 1] = 2  # a one-voxel (0.027 ml) speck
    a[50:52, 15:17, 15:17] = 3  # 8 voxels = 0.216 ml
    cleaned = stage1.clean_region_map(a, 0.027)
    np.testing.assert_array_equal(cleaned, img.array)


def test_cleaning_keeps_vertebrae_a_disc_split_off_the_column():
    """At 3 mm a disc is a voxel or two, and stage 1 may call it background: a vertebra past
    it (C1-C2 under the skull, one the view's edge cuts) is the column's, not a stray."""
    a = np.zeros((80, 24, 24), np.uint8)
    a[30:80, 8:14, 8:14] = 2  # the column: 1800 voxels = 48.6 ml at 3 mm
    a[24:29, 8:12, 8:12] = 2  # one voxel of disc below: 80 voxels, 2.2 ml (< 10 % of 48.6)
    a[18:23, 8:12, 8:12] = 3  # one voxel below that one: a chain
    a[40:45, 8:12, 16:20] = 1  # two voxels beside the column: a stray, dropped
    cleaned = stage1.clean_region_map(a, 0.027)
    np.testing.assert_array_equal(cleaned[:80, :, :15], a[:80, :, :15])
    assert not cleaned[:, :, 15:].any()
    no_joining = stage1.CleaningSettings(join_gap_mm=0.0)
    assert not stage1.clean_region_map(a, 0.027, no_joining)[:29].any()
    # the gap is in mm: on a 6 mm grid one voxel of disc is wider than it, nothing joins
    assert not stage1.clean_region_map(a, 6.0**3 / 1000)[:29].any()


def test_cleaning_of_a_few_false_voxels_finds_no_spine():
    a = np.zeros((30, 30, 30), np.uint8)
    a[10:13, 10:13, 10:13] = 2  # 27 voxels at 3 mm = 0.73 ml: a speck on a leg CT
    assert not stage1.clean_region_map(a, 0.027).any()
    result = stage1.summarize(Image(a, (3.0, 3.0, 3.0)))
    assert not result.found and result.centerline is None and result.boxes == {}


def test_boxes_centre_line_and_boundaries_in_lps_mm():
    result = stage1.summarize(spine_map())
    assert result.found and result.regions_present() == ["cervical", "thoracic", "lumbar"]
    box = result.boxes["thoracic"]
    # i 8..11 -> x -7.5..4.5; j 6..9 -> y -13.5..-1.5; k 20..39 -> z -41.5..18.5 (voxel edges)
    np.testing.assert_allclose(box.min_lps, (-7.5, -13.5, -41.5))
    np.testing.assert_allclose(box.max_lps, (4.5, -1.5, 18.5))
    assert box.volume_ml == pytest.approx(20 * 16 * 0.027)
    line = result.centerline
    np.testing.assert_allclose(line.point_at(0.0), (-1.5, -7.5, 0.0))
    np.testing.assert_allclose(line.tangent_at(0.0), (0.0, 0.0, 1.0))
    bounds = dict(stage1.region_boundaries_z(result.classes))
    assert bounds["C/T"] == pytest.approx(-100 + 3 * 39.5)  # between k 39 (T) and k 40 (C)
    assert bounds["T/L"] == pytest.approx(-100 + 3 * 19.5)


def test_centre_line_follows_a_tilted_column():
    a = np.zeros((40, 30, 30), np.uint8)
    for k in range(40):
        i0 = 5 + k // 4  # drifts 1 voxel to the Left every 4 slices
        a[k, 10:13, i0 : i0 + 3] = 2
    line = stage1.centerline_of(Image(a, (2.0, 2.0, 2.0)), smooth_mm=8.0)
    t = line.tangent_at(40.0)
    assert t[0] == pytest.approx(0.25 / np.hypot(0.25, 1.0), abs=0.03)
    assert line.point_at(40.0)[0] == pytest.approx(2.0 * (5 + 20 / 4 + 1), abs=1.0)


def test_scattered_bone_pieces_of_a_leg_are_no_spine():
    a = np.zeros((60, 60, 60), np.uint8)
    for k0 in (5, 25, 45):  # three 7.3 ml pieces (270 voxels at 3 mm): each less than C1 + C2
        a[k0 : k0 + 10, 20:29, 20:23] = 3
    assert not stage1.clean_region_map(a, 0.027).any()
    a[5:40, 40:46, 40:46] = 2  # a 34 ml column: a spine, and the pieces over 10 % of it stay
    cleaned = stage1.clean_region_map(a, 0.027)
    assert (cleaned == 2).sum() == 35 * 36 and (cleaned == 3).sum() == 3 * 270
