"""stage2.py: the walk on hand-built scenes with an oracle patch predictor (no network)."""

import numpy as np
import pytest

from SpineLabelerLib import stage2
from SpineLabelerLib.image import Image
from SpineLabelerLib.progress import CancelFlag, Cancelled
from SpineLabelerLib.stage1 import Centerline

SHAPE = (260, 40, 48)  # (K, J, I) at 1 mm
HEIGHT, GAP = 16, 6  # vertebra height and disc gap along k, voxels


def scene(n=10, k0=20, drift=0.1):
    """n box vertebrae stacked along k (label 1 the most caudal), drifting in i with k.

    The CT encodes each voxel's label as value label / 100 so that the oracle can see it.
    """
    labels = np.zeros(SHAPE, np.int16)
    for v in range(n):
        k = k0 + v * (HEIGHT + GAP)
        i = int(12 + drift * k)
        labels[k : k + HEIGHT, 12:28, i : i + 14] = v + 1
    ct = Image(labels.astype(np.float32) / 100.0, (1.0, 1.0, 1.0), (-24.0, -20.0, -130.0))
    return ct, labels


def oracle(ct_patch, memory):
    """Mask of the labelled object nearest the patch centre that is not in memory."""
    labels = np.round(np.clip(ct_patch, 0, None) * 100).astype(int)
    labels[memory > 0.5] = 0
    center = (np.array(ct_patch.shape) - 1) / 2.0
    best, best_d = None, np.inf
    for value in np.unique(labels[labels > 0]):
        d = np.linalg.norm(np.argwhere(labels == value).mean(axis=0) - center)
        if d < best_d:
            best, best_d = value, d
    return (
        (labels == best).astype(np.float32)
        if best is not None
        else np.zeros(ct_patch.shape, np.float32)
    )


def straight_line(ct, drift=0.1):
    z = np.arange(SHAPE[0], dtype=float)
    x = ct.origin_lps[0] + 12 + drift * z + 6.5
    pts = np.stack([x, np.full_like(z, ct.origin_lps[1] + 19.5), ct.origin_lps[2] + z], axis=1)
    return Centerline(pts[:, 2], pts)


def run(ct, valid=None, start_k=None, box_z=None, **kw):
    start_k = 20 + 4 * (HEIGHT + GAP) + 3 if start_k is None else start_k
    line = straight_line(ct)
    start = line.point_at(ct.origin_lps[2] + start_k)
    valid = np.ones(SHAPE, bool) if valid is None else valid
    settings = stage2.WalkSettings(patch_kji=(32, 32, 32), min_volume_ml=0.5)
    box_z = box_z or (ct.origin_lps[2], ct.origin_lps[2] + SHAPE[0] - 1)
    return stage2.walk(ct, valid, oracle, line, start, 20.0, box_z, settings, **kw)


def test_walk_finds_every_vertebra_in_order_with_exact_centroids():
    ct, labels = scene()
    result = run(ct)
    assert len(result.vertebrae) == 10
    # Above, nothing past the top vertebra is the skull; below, nothing is no sign of the
    # sacrum, which stage 2 segments as a mask past stage 1's box (next tests).
    assert result.end_above == "spine" and result.end_below == "unseen"
    assert result.probability.array[labels > 0].min() >= 128  # every mask voxel reads >= 0.5
    found_z = [v.centroid_lps[2] for v in result.vertebrae]
    assert found_z == sorted(found_z, reverse=True)  # cranial -> caudal
    for rank, v in enumerate(result.vertebrae):
        truth = labels == 10 - rank
        np.testing.assert_array_equal(result.instances.array == v.index, truth)
        expected = np.argwhere(truth).mean(axis=0)[::-1] + np.array(ct.origin_lps)
        np.testing.assert_allclose(v.centroid_lps, expected, atol=1e-6)
        assert v.converged and not v.partial and v.volume_ml == pytest.approx(truth.sum() / 1000)


def test_start_in_a_disc_gap_and_far_from_a_vertebra_still_walks_everything():
    ct, _ = scene()
    assert len(run(ct, start_k=20 + 5 * (HEIGHT + GAP) - 3).vertebrae) == 10
    # No vertebra near the start point at all: candidates one step apart are tried.
    ct_high, _ = scene(n=4, k0=150)
    result = run(ct_high, start_k=40)
    assert len(result.vertebrae) == 4


def test_vertebra_cut_by_the_field_of_view_is_partial_and_ends_the_walk():
    ct, labels = scene()
    valid = np.ones(SHAPE, bool)
    top_k = 20 + 9 * (HEIGHT + GAP)
    valid[top_k + 8 :] = False  # the CT ends half-way up the top vertebra
    cut = ct.with_array(np.where(valid, ct.array, 0.0).astype(np.float32))
    result = run(cut, valid=valid)
    assert len(result.vertebrae) == 10
    assert result.vertebrae[0].partial and not any(v.partial for v in result.vertebrae[1:])
    assert result.end_above == "fov" and result.end_below == "unseen"


def test_a_sliver_at_the_field_of_view_edge_counts_but_a_small_blob_inside_it_does_not():
    ct, labels = scene()
    top_k = 20 + 9 * (HEIGHT + GAP)
    valid = np.ones(SHAPE, bool)
    valid[top_k + 2 :] = False  # two slices of the top vertebra left: 0.45 ml (< 0.5 ml)
    cut = ct.with_array(np.where(valid, ct.array, 0.0).astype(np.float32))
    result = run(cut, valid=valid)  # min_volume_ml 0.5; min_partial_volume_ml 0.02
    assert len(result.vertebrae) == 10 and result.vertebrae[0].partial
    assert np.all(labels[result.instances.array == result.vertebrae[0].index] == 10)
    assert result.end_above == "fov"
    # the same two slices inside the view, the rest of the vertebra gone: not a vertebra
    blob = np.where((labels == 10) & ~valid, 0, labels).astype(np.float32) / 100.0
    result = run(ct.with_array(blob))
    assert len(result.vertebrae) == 9 and result.end_above == "spine"


def test_one_slice_of_a_vertebra_at_the_view_edge_counts():
    # 0.22 ml in view: the benchmark's lumbar crops and abdomens end on such slivers of T10-T11
    _, labels = scene()
    valid = np.ones(SHAPE, bool)
    valid[20 + 9 * (HEIGHT + GAP) + 1 :] = False
    result = walk_in_view(labels, valid, min_volume_ml=0.5)
    top = result.vertebrae[0]
    assert len(result.vertebrae) == 10 and top.partial
    assert top.volume_ml == pytest.approx(0.224)


def test_nothing_to_segment_returns_an_empty_walk():
    ct = Image(np.zeros(SHAPE, np.float32), (1.0, 1.0, 1.0), (-24.0, -20.0, -130.0))
    result = run(ct)
    assert result.vertebrae == [] and not result.instances.array.any() and result.predictions > 0


def test_progress_reaches_one_and_cancel_stops_the_walk():
    ct, _ = scene()
    seen = []
    run(ct, progress=lambda s, f, m: seen.append((s, f)))
    assert seen[-1] == ("stage2", 1.0) and all(s == "stage2" for s, _ in seen)
    flag = CancelFlag()
    calls = []

    def cancelling(stage, fraction, message):
        calls.append(fraction)
        if len(calls) == 3:
            flag.set()

    with pytest.raises(Cancelled):
        run(ct, progress=cancelling, cancel=flag)
    assert len(calls) == 3


def test_patch_extraction_pads_outside_the_crop():
    vol = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    sl = stage2._patch_slices(np.array([0.0, 0.0, 0.0]), (3, 3, 3), vol.shape)
    patch = stage2._extract(vol, sl, (3, 3, 3), -1.0)
    assert (
        patch[0, 0, 0] == -1.0 and patch[1, 1, 1] == vol[0, 0, 0] and patch[2, 2, 2] == vol[1, 1, 1]
    )
    assert stage2._patch_slices(np.array([50.0, 0, 0]), (3, 3, 3), vol.shape) is None


def test_bad_inputs_are_clear_errors():
    ct, _ = scene()
    with pytest.raises(ValueError, match="valid mask shape"):
        stage2.walk(
            ct, np.ones((2, 2, 2), bool), oracle, straight_line(ct), np.zeros(3), 20.0, (0, 1)
        )


def test_a_mask_well_inside_the_patch_needs_few_predictions():
    ct, _ = scene()
    result = run(ct)
    # Masks land well inside the patch a few mm from where they were expected: one
    # prediction per vertebra (a second for a few), plus two empty looks past each end.
    assert result.predictions <= 10 + 2 + 4
    assert all(v.iterations <= 2 for v in result.vertebrae)


def test_a_vertebra_past_stage_one_spine_box_is_not_taken():
    # The most caudal object (label 1, k 20..35) lies below the box stage 1 gave: a sacrum.
    ct, labels = scene()
    bottom_of_label2 = ct.origin_lps[2] + 20 + HEIGHT + GAP
    result = run(ct, box_z=(bottom_of_label2, ct.origin_lps[2] + SHAPE[0] - 1))
    assert len(result.vertebrae) == 9 and result.end_below == "spine"
    assert not (result.instances.array[labels == 1]).any()
    assert not result.probability.array[labels == 1].any()  # dropped with its mask


def walk_in_view(labels: np.ndarray, valid: np.ndarray, **settings) -> stage2.WalkResult:
    """The walk from the middle of the scene on what ``valid`` (the field of view) shows."""
    ct = scene()[0]
    cut = ct.with_array(np.where(valid, labels / 100.0, 0.0).astype(np.float32))
    line = straight_line(ct)
    start = line.point_at(ct.origin_lps[2] + 20 + 4 * (HEIGHT + GAP) + 3)
    box_z = (ct.origin_lps[2], ct.origin_lps[2] + SHAPE[0] - 1)
    walk_settings = stage2.WalkSettings(patch_kji=(32, 32, 32), **settings)
    return stage2.walk(cut, valid, oracle, line, start, 20.0, box_z, walk_settings)


def oblique_view(k_front: float, slope: float) -> np.ndarray:
    """A field of view whose top edge climbs from ``k_front`` at the front of the boxes (j 12)
    by ``slope`` voxels per voxel towards the back."""
    jj = np.arange(SHAPE[1])[None, :, None]
    kk = np.arange(SHAPE[0])[:, None, None]
    return np.broadcast_to(kk < k_front + (jj - 12) * slope, SHAPE).copy()


def test_a_sliver_left_by_an_oblique_field_of_view_edge_is_kept():
    _, labels = scene()
    # The edge climbs from k 206 (through vertebra 9, k 196-211) at the front of the boxes
    # (j 12) to k 225 at the back (j 27): vertebra 10 (k 218-233) keeps a sliver behind.
    # A stall threshold above the sliver's advance (it would be dropped as a stall).
    result = walk_in_view(labels, oblique_view(206, 1.3), min_volume_ml=0.02, min_advance=0.9)
    top, below = result.vertebrae[0], result.vertebrae[1]
    assert len(result.vertebrae) == 10 and top.partial and below.partial
    assert top.centroid_lps[2] - below.centroid_lps[2] < 0.9 * 20.0  # it really was a "stall"
    assert np.all(labels[result.instances.array == top.index] == 10)
    assert result.end_above == "fov"


def test_an_oblique_edge_through_three_vertebrae_keeps_a_piece_of_each():
    _, labels = scene()
    # The edge climbs from k 185 at the front (j 12) to k 230 at the back (j 27): it cuts
    # vertebra 8 (k 174-189), leaves ~2 ml of 9 (k 196-211) and a 0.4 ml scrap of 10 behind.
    # 9's piece advances 21.4 mm on 8's, under 0.98 steps (21.6): the edge's short-step case,
    # after which the walk looks once more beyond the piece and finds 10's scrap.
    result = walk_in_view(labels, oblique_view(185, 3.0), min_volume_ml=0.02, min_advance=0.98)
    found = [int(labels[result.instances.array == v.index].max()) for v in result.vertebrae]
    assert found == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1] and result.end_above == "fov"
    assert all(v.partial for v in result.vertebrae[:3])


def process_tip_scene(tip_k: int):
    """The scene with vertebra 10's process (behind the boxes, j 30-36) hanging down to
    ``tip_k`` and the view ending at k 214: (ct, labels, the cut ct, the view mask)."""
    ct, labels = scene()
    i = int(12 + 0.1 * 218)
    labels[tip_k:234, 30:37, i : i + 14] = 10
    valid = np.ones(SHAPE, bool)
    valid[214:] = False
    cut = ct.with_array(np.where(valid, labels / 100.0, 0.0).astype(np.float32))
    return ct, labels, cut, valid


def test_the_tip_of_a_process_below_the_view_edge_is_found_past_the_last_body():
    # Vertebra 10 (body k 218-233, out of view) has a process behind the boxes (j 30-36)
    # that hangs down to k 204, beside vertebra 9's body (k 196-211), as a thoracic spinous
    # process does. The view ends at k 214: the next centre and the half step lie outside
    # it, but the process's tip (k 204-213, ~1 ml) is in view and is vertebra 10's.
    ct, labels, cut, valid = process_tip_scene(204)
    result = run(cut, valid=valid)
    assert len(result.vertebrae) == 10 and result.end_above == "fov"
    top = result.vertebrae[0]
    assert top.partial and top.volume_ml == pytest.approx(10 * 7 * 14 / 1000)
    assert np.all(labels[result.instances.array == top.index] == 10)
    # without the process the walk ends at vertebra 9 and adds nothing
    plain = ct.with_array(np.where(valid, ct.array, 0.0).astype(np.float32))
    result = run(plain, valid=valid)
    assert len(result.vertebrae) == 9 and not result.vertebrae[0].partial


def test_the_last_look_past_the_view_edge_keeps_to_stage_one_box():
    # Vertebra 10's process reaches down to k 210, the view ends at k 214: the piece in view
    # (k 210-213) has its centroid at k 211.5. Stage 1's spine box ending at k 210 leaves it
    # out (the main walk refuses such a centroid too); a box ending at k 213 keeps it.
    ct, labels, cut, valid = process_tip_scene(210)
    bottom = ct.origin_lps[2]
    result = run(cut, valid=valid, box_z=(bottom, bottom + 210))
    assert len(result.vertebrae) == 9 and not (result.instances.array[labels == 10]).any()
    result = run(cut, valid=valid, box_z=(bottom, bottom + 213))
    assert len(result.vertebrae) == 10 and result.vertebrae[0].partial


@pytest.mark.parametrize("front_j, kept", [(30, True), (28, False)])
def test_a_sliver_level_with_the_cut_vertebra_counts_only_apart_from_it(front_j, kept):
    # The view ends at k 206, through vertebra 9 (k 196-211). Vertebra 10's process hangs
    # down behind the boxes to k 196: its piece in view (k 196-205, ~1 ml) is level with 9's
    # cut body. Three voxels behind 9 (j from 30) it is another vertebra's; right against it
    # (j from 28, 9 ends at 27) it could be a scrap of 9 and is not counted.
    _, labels = scene()
    i = int(12 + 0.1 * 218)
    labels[196:234, front_j:37, i : i + 14] = 10
    result = walk_in_view(labels, oblique_view(206, 0.0))  # a sliver: under 2 ml (default)
    top = result.vertebrae[0]
    assert len(result.vertebrae) == (10 if kept else 9) and result.end_above == "fov"
    assert int(labels[result.instances.array == top.index].max()) == (10 if kept else 9)
    if kept:
        assert top.partial and abs(top.centroid_lps[2] - result.vertebrae[1].centroid_lps[2]) < 1


@pytest.mark.parametrize("back_j, kept", [(33, True), (37, False)])
def test_a_piece_over_the_sliver_size_level_with_the_cut_vertebra_counts_while_small(back_j, kept):
    # As above, but the floor of a whole mask (0.4 ml) lies under vertebra 10's piece in view
    # (k 196-205, j 30-32: 0.42 ml; no sliver): it counts while under a quarter of 9's cut
    # body in view (k 196-205: 2.24 ml), and not when as large as a body's end (j 30-36).
    # (The first patch holds only half the piece: a partial mask counts from 0.1 ml.)
    _, labels = scene()
    i = int(12 + 0.1 * 218)
    labels[196:234, 30:back_j, i : i + 14] = 10
    view = oblique_view(206, 0.0)
    result = walk_in_view(labels, view, min_volume_ml=0.4, min_partial_volume_ml=0.1)
    assert len(result.vertebrae) == (10 if kept else 9)
    top = result.vertebrae[0]
    assert int(labels[result.instances.array == top.index].max()) == (10 if kept else 9)


def test_an_arch_cut_off_its_body_stays_with_it_but_a_neighbour_does_not():
    # One prediction, four pieces (axis 0 superior): a body (k 10-29), its arch level with
    # it and half its size but not joined to it, a neighbour's body above (k 34-49), and a
    # speck. The body and its arch are one vertebra; the rest is not.
    from scipy import ndimage

    pred = np.zeros((64, 40, 40), bool)
    pred[10:30, 5:20, 10:30] = True  # body, 6000 voxels
    pred[12:30, 25:35, 12:28] = True  # arch, 2880
    pred[34:50, 5:20, 10:30] = True  # the next body, cut by the patch
    pred[2:4, 30:32, 2:4] = True  # speck
    comp, _ = ndimage.label(pred)
    sizes = np.bincount(comp.ravel())[1:]
    keep, box = stage2._pieces_of_one_vertebra(comp, sizes, 0.2)
    kept = keep[comp]
    assert kept[20, 10, 20] and kept[20, 30, 20]
    assert not kept[40, 10, 20] and not kept[3, 31, 3]
    assert box == (slice(10, 30), slice(5, 35), slice(10, 30))  # body and arch together


def test_an_arch_found_apart_from_its_body_is_kept_but_not_stepped_from():
    # A net that finds one vertebra's arch (label 50) before its body: stepping on from the
    # arch, behind the bodies, would reach the body below and skip this one's.
    ct, labels = scene()
    k3, i3 = 20 + 2 * (HEIGHT + GAP), int(12 + 0.1 * (20 + 2 * (HEIGHT + GAP)))
    labels[k3 + 2 : k3 + 12, 29:35, i3 + 2 : i3 + 12] = 50  # 0.6 ml, under 1/4 of a body
    ct = ct.with_array(labels.astype(np.float32) / 100.0)

    def arch_first(ct_patch, memory):
        arch = (np.round(np.clip(ct_patch, 0, None) * 100) == 50) & (memory < 0.5)
        return arch.astype(np.float32) if arch.any() else oracle(ct_patch, memory)

    line = straight_line(ct)
    start = line.point_at(ct.origin_lps[2] + 20 + 4 * (HEIGHT + GAP) + 3)
    settings = stage2.WalkSettings(patch_kji=(32, 32, 32), min_volume_ml=0.5)
    box_z = (ct.origin_lps[2], ct.origin_lps[2] + SHAPE[0] - 1)
    result = stage2.walk(ct, np.ones(SHAPE, bool), arch_first, line, start, 20.0, box_z, settings)
    found = [int(np.unique(labels[result.instances.array == v.index])[0]) for v in result.vertebrae]
    assert found == [10, 9, 8, 7, 6, 5, 4, 50, 3, 2, 1]  # the piece is kept for the pipeline
    assert [v.piece for v in result.vertebrae] == [False] * 7 + [True] + [False] * 3
    assert result.end_below == "unseen"  # walked on to the last one: nothing below it
