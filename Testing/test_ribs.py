"""Rib evidence beside each vertebra (ribs.py): hand-built volumes with known answers, and
phantom levels that do and do not carry ribs."""

import numpy as np
import pytest

from SpineLabelerLib import anatomy, phantom, preprocess
from SpineLabelerLib.ribs import rib_scores

SHAPE = (60, 100, 160)  # k (superior), j (posterior), i (left), 1 mm
CENTRE = (30, 40, 80)


def _volume(hu_fill: float = 40.0):
    ct = np.full(SHAPE, hu_fill, np.float32)
    instances = np.zeros(SHAPE, np.int16)
    k, j, i = CENTRE
    instances[k - 12 : k + 12, j - 15 : j + 15, i - 30 : i + 31] = 1  # body + processes
    ct[instances == 1] = 400.0
    return ct, instances


def _add_ribs(ct, hu=900.0):
    """A rib on each side leaving the tips of the processes, crossing the band."""
    k, j, i = CENTRE
    ct[k - 4 : k + 4, j + 5 : j + 15, i + 31 : i + 70] = hu
    ct[k - 4 : k + 4, j + 5 : j + 15, i - 70 : i - 30] = hu


def _score(ct, instances, valid=None):
    valid = np.ones(SHAPE, bool) if valid is None else valid
    return rib_scores(preprocess.normalize_hu(ct), valid, instances, [1], 1.0)[0]


def test_ribs_beside_a_vertebra_score_one_and_soft_tissue_zero():
    ct, instances = _volume()
    assert _score(ct, instances) == 0.0
    _add_ribs(ct)
    assert _score(ct, instances) == pytest.approx(1.0)


def test_enhanced_organs_and_noise_are_not_ribs():
    rng = np.random.default_rng(0)
    ct, instances = _volume(hu_fill=220.0)  # a contrast-filled kidney all round
    ct += rng.normal(0, 45, SHAPE).astype(np.float32)
    ct[instances == 1] = 400.0
    assert _score(ct, instances) < 0.1


def test_a_long_plate_beside_the_vertebra_is_not_a_rib():
    ct, instances = _volume()
    k, j, i = CENTRE
    ct[:, j : j + 20, i + 33 : i + 50] = 900.0  # the ilium: taller than any rib
    ct[:, j : j + 20, i - 50 : i - 33] = 900.0
    assert _score(ct, instances) == 0.0


def test_a_plate_the_view_cuts_short_is_not_a_rib():
    # The ilium beside the lowest lumbar vertebra of a crop that ends in the pelvis: only
    # 40 mm of it show (the crop's first slice, or the field of view's edge, cuts it), short
    # as a rib, but its length is unknown.
    ct, instances = _volume()
    k, j, i = CENTRE
    for side in (slice(i + 33, i + 50), slice(i - 50, i - 33)):
        ct[: k + 10, j - 15 : j - 5, side] = 900.0
    assert _score(ct, instances) == 0.0
    valid = np.ones(SHAPE, bool)
    valid[:5] = False  # the field of view ends five slices into the crop
    assert _score(ct, instances, valid) == 0.0
    _add_ribs(ct)  # whole ribs beside it still count
    assert _score(ct, instances, valid) == pytest.approx(1.0)


def test_a_band_outside_the_field_of_view_is_not_measured():
    ct, instances = _volume()
    _add_ribs(ct)
    valid = np.ones(SHAPE, bool)
    valid[:, :, CENTRE[2] + 32 :] = False  # a tight crop: nothing beside the left side
    assert _score(ct, instances, valid) == pytest.approx(1.0)  # the right side still counts
    valid[:, :, : CENTRE[2] - 31] = False
    assert _score(ct, instances, valid) is None
    assert rib_scores(np.zeros(SHAPE, np.float32), valid, instances, [2], 1.0) == [None]


def test_a_vertebra_the_view_cuts_through_is_not_measured_one_it_grazes_is():
    # Cut through by the field of view's top: the ribs may leave the part not in view.
    ct, instances = _volume()
    _add_ribs(ct)
    k, j, i = CENTRE
    valid = np.ones(SHAPE, bool)
    valid[k + 6 :] = False
    cut = np.where(valid, instances, 0)
    assert _score(ct, cut, valid) is None
    # A slanted field of view's end grazes the front corner of the body from above: the
    # rounded corner (two rows short of the view's edge) is all it takes; measured as whole.
    valid = np.ones(SHAPE, bool)
    valid[k + 8 :, : j - 13] = False
    grazed = instances.copy()
    grazed[k + 8 :, : j - 11] = 0
    assert _score(ct, grazed, valid) == pytest.approx(1.0)
    # The same view's edge beside the vertebra (across, not from above) is a cut.
    beside = instances.copy()
    beside[:, : j - 13] = 0
    valid[:, : j - 13] = False
    assert _score(ct, beside, valid) is None


@pytest.mark.parametrize("level, has_ribs", [("T6", True), ("L3", False), ("C4", False)])
def test_phantom_levels_with_and_without_ribs(level, has_ribs):
    label = anatomy.vertebra(level).label
    case = phantom.generate_case(
        11, fov="whole", crop_around_label=label, roi_size_mm=(170.0, 150.0, 100.0)
    )
    grid = preprocess.to_canonical(case.ct, 1.0)
    labels = preprocess.labels_onto(case.labels, grid).array.astype(np.int16)
    valid = np.ones(labels.shape, bool)
    (score,) = rib_scores(preprocess.normalize_hu(grid.array), valid, labels, [label], 1.0)
    assert score is not None
    assert (score > 0.5) if has_ribs else (score < 0.2), score


def test_the_work_region_gives_the_whole_crops_floats(monkeypatch):
    # rib_scores smooths and dilates only the (j, i) box of the vertebrae and their bands,
    # grown by the filters' reach: every score must be the float the whole crop gives.
    from SpineLabelerLib import ribs

    ct, instances = _volume()
    k, j, i = CENTRE
    # In the left band (i 113-125 here) bone just under the threshold (0.7 x 400 HU), and
    # outside the band dense bone whose blur lifts the band's last voxels over it.
    ct[k - 4 : k + 4, j + 5 : j + 15, i + 33 : i + 46] = 270.0
    ct[k - 4 : k + 4, j + 5 : j + 15, i + 46 : i + 56] = 1000.0
    instances[k - 12 : k + 12, 60:75, 20:35] = 2
    unsaturated = ribs.RibSettings(rib_bone_mm3=1e5)  # scores below 1 show every voxel
    args = (preprocess.normalize_hu(ct), np.ones(SHAPE, bool), instances, [1, 2], 1.0, unsaturated)
    boxed = rib_scores(*args)
    assert ribs._work_region([np.argwhere(instances > 0)], SHAPE, 4, 1.0, ribs.RibSettings())[
        1:
    ] != (
        slice(0, SHAPE[1]),
        slice(0, SHAPE[2]),
    )  # the box is smaller than the crop here
    monkeypatch.setattr(
        ribs, "_work_region", lambda voxels, shape, *a: tuple(slice(0, n) for n in shape)
    )
    assert boxed == rib_scores(*args) and 0.0 < boxed[0] < 1.0
