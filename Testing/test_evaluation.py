"""Metric values on hand-built cases whose answers are worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from SpineLabelerLib.evaluation import (
    centroids_from_labels,
    dice,
    evaluate,
    format_tables,
    hausdorff_sitk_mm,
    label_overlap,
    localization_scores,
    surface_distances_mm,
    write_tables,
)
from SpineLabelerLib.evaluation.centroids import centroids_and_counts
from SpineLabelerLib.image import Image

N = 10  # cube edge, voxels
SURFACE_VOXELS = N**3 - (N - 2) ** 3  # 488


def two_cubes(shift_ijk: tuple[int, int, int], shape=(30, 30, 30)) -> tuple[np.ndarray, np.ndarray]:
    """An N-voxel cube at index 5 and the same cube shifted by ``shift_ijk`` voxels."""
    ref = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    ref[5 : 5 + N, 5 : 5 + N, 5 : 5 + N] = True
    di, dj, dk = shift_ijk
    pred[5 + dk : 5 + dk + N, 5 + dj : 5 + dj + N, 5 + di : 5 + di + N] = True
    return pred, ref


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_shifted_cubes_one_voxel_anisotropic(axis):
    """Shift by one voxel along axis a (spacing s): Dice (N-1)/N, HD s, and
    ASSD = s * (N^2 + (N-2)^2) / (N^3 - (N-2)^3): the shifted-away face (N^2 voxels) and the
    inside of the opposite face ((N-2)^2) are one voxel off, every other surface voxel 0.
    (This holds when the shift axis has the finest spacing; the others are coarser.)"""
    spacing = [1.3, 2.5, 1.9]
    spacing[axis] = 0.8
    shift = [0, 0, 0]
    shift[axis] = 1
    pred, ref = two_cubes(tuple(shift))
    s = spacing[axis]
    assert dice(pred, ref) == pytest.approx((N - 1) / N)
    assd, hd = surface_distances_mm(pred, ref, spacing)
    assert hd == pytest.approx(s, abs=1e-5)
    assert assd == pytest.approx(s * (N**2 + (N - 2) ** 2) / SURFACE_VOXELS, abs=1e-5)
    assert hausdorff_sitk_mm(pred, ref, spacing) == pytest.approx(s, abs=1e-5)


def test_shifted_cubes_three_voxels_hd_and_dice():
    pred, ref = two_cubes((0, 3, 0))
    spacing = (1.0, 0.7, 2.0)
    assert dice(pred, ref) == pytest.approx(7 / 10)
    assd, hd = surface_distances_mm(pred, ref, spacing)
    assert hd == pytest.approx(3 * 0.7, abs=1e-5)
    assert 0 < assd < hd


def test_diagonal_shift_hd_is_euclidean():
    pred, ref = two_cubes((1, 1, 0))
    _, hd = surface_distances_mm(pred, ref, (3.0, 4.0, 1.0))
    # The corner face voxel is one voxel off along i and j: sqrt(3^2 + 4^2) = 5 mm.
    assert hd == pytest.approx(5.0, abs=1e-5)


def test_identical_masks_and_empty_masks():
    pred, ref = two_cubes((0, 0, 0))
    assert dice(pred, ref) == 1.0
    assert surface_distances_mm(pred, ref, (1, 1, 1)) == (0.0, 0.0)
    empty = np.zeros_like(ref)
    assert dice(empty, ref) == 0.0
    assd, hd = surface_distances_mm(empty, ref, (1, 1, 1))
    assert math.isnan(assd) and math.isnan(hd)


def test_cut_by_field_of_view_has_closed_surface():
    """A cube cut by the grid border still has a surface: a copy shifted along the cut axis is
    one voxel off on its far face only."""
    ref = np.zeros((12, 12, 12), bool)
    ref[0:6, 2:8, 2:8] = True  # touches k = 0
    pred = np.zeros_like(ref)
    pred[0:7, 2:8, 2:8] = True
    _, hd = surface_distances_mm(pred, ref, (1.0, 1.0, 2.0))
    assert hd == pytest.approx(2.0, abs=1e-5)


def test_label_overlap_resamples_prediction_onto_reference_grid():
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[4:12, 4:12, 4:12] = 20
    ref_img = Image(ref, (1.0, 1.0, 1.0))
    # The same cube on a grid of half the resolution, 2 mm voxels; origin at the centre of
    # a 2x2x2 block of the reference voxels (0.5 mm) so that nearest neighbour is exact.
    pred = np.zeros((10, 10, 10), np.uint8)
    pred[2:6, 2:6, 2:6] = 20
    pred_img = Image(pred, (2.0, 2.0, 2.0), (0.5, 0.5, 0.5))
    scores = label_overlap(pred_img, ref_img)
    assert scores[20].dice == pytest.approx(1.0)
    assert scores[20].hd_mm == pytest.approx(0.0)


def test_centroids_from_labels_oblique(tiny_labels, tiny_centroids_lps):
    got = centroids_from_labels(tiny_labels)
    assert sorted(got) == sorted(tiny_centroids_lps)
    for label, point in tiny_centroids_lps.items():
        np.testing.assert_allclose(got[label], point, atol=1e-9)


def test_centroids_from_labels_known_point():
    a = np.zeros((4, 5, 6), np.uint8)
    a[1, 2, 3] = 20
    a[0:2, 0, 0] = 21  # k = 0 and 1 -> mean k 0.5
    got = centroids_from_labels(Image(a, (2.0, 3.0, 4.0), (10.0, 0.0, 0.0)))
    np.testing.assert_allclose(got[20], [16.0, 6.0, 4.0])
    np.testing.assert_allclose(got[21], [10.0, 0.0, 2.0])
    assert centroids_from_labels(Image(np.zeros((2, 2, 2), np.uint8))) == {}
    assert centroids_and_counts(Image(a, (2.0, 3.0, 4.0)))[1] == {20: 1, 21: 2}
    with pytest.raises(ValueError, match="non-integer"):
        centroids_from_labels(Image(np.full((2, 2, 2), 0.5)))


def column(spacing_mm: float = 30.0, labels=(20, 21, 22, 23, 24)) -> dict[int, np.ndarray]:
    """Reference centroids on a vertical line, ``spacing_mm`` apart, L1 on top."""
    return {lab: np.array([0.0, 0.0, -spacing_mm * n]) for n, lab in enumerate(labels)}


def test_perfect_prediction_identifies_all():
    ref = column()
    scores = localization_scores(ref, ref)
    assert all(s.identified and s.error_mm == 0.0 for s in scores.values())


def test_swapped_pair_lowers_id_rate_by_two_of_five():
    ref = column()
    pred = dict(ref)
    pred[21], pred[22] = ref[22], ref[21]
    scores = localization_scores(pred, ref)
    identified = [lab for lab, s in scores.items() if s.identified]
    assert identified == [20, 23, 24]
    assert scores[21].error_mm == pytest.approx(30.0)
    assert scores[21].closest_ref_label == 22


def test_within_20mm_but_closer_to_neighbour_is_not_identified():
    ref = column(spacing_mm=30.0)
    pred = dict(ref)
    pred[22] = ref[22] + np.array([0.0, 0.0, 16.0])  # 16 mm off, 14 mm from L2
    scores = localization_scores(pred, ref)
    assert scores[22].error_mm == pytest.approx(16.0)
    assert scores[22].closest_ref_label == 21
    assert not scores[22].identified


def test_25mm_off_is_not_identified_even_when_closest():
    ref = column(spacing_mm=60.0)
    pred = dict(ref)
    pred[22] = ref[22] + np.array([25.0, 0.0, 0.0])
    pred[23] = ref[23] + np.array([0.0, 19.9, 0.0])
    scores = localization_scores(pred, ref)
    assert scores[22].closest_ref_label == 22 and not scores[22].identified
    assert scores[23].identified


def test_missed_vertebra_counts_against_rate_and_has_no_error():
    ref = column()
    pred = {k: v for k, v in ref.items() if k != 24}
    scores = localization_scores(pred, ref)
    assert not scores[24].identified and math.isnan(scores[24].error_mm)


def labelled_column(shift_k: int = 0, swap: tuple[int, int] | None = None) -> Image:
    """Five 6-voxel slabs (T12, L1, L2 + two lumbar) 8 voxels apart along k at 2.5 mm."""
    a = np.zeros((48, 16, 16), np.uint8)
    labels = [19, 20, 21, 22, 23]
    if swap:
        x, y = labels.index(swap[0]), labels.index(swap[1])
        labels[x], labels[y] = labels[y], labels[x]
    for n, lab in enumerate(labels):
        k0 = 4 + 8 * n + shift_k
        a[k0 : k0 + 6, 4:12, 4:12] = lab
    return Image(a, (1.0, 1.0, 2.5), (3.0, -4.0, 5.0))


def test_evaluate_tables_and_regions():
    ref = labelled_column()
    ev = evaluate(labelled_column(swap=(21, 22)), ref)
    rows = {r.name: r for r in ev.rows}
    assert rows["L2"].dice == 0.0 and rows["L1"].dice == 1.0
    assert rows["L2"].loc_error_mm == pytest.approx(8 * 2.5)
    summary = {s.group: s for s in ev.summary}
    assert summary["all"].n == 5 and summary["all"].n_identified == 3
    assert summary["all"].id_rate_pct == pytest.approx(60.0)
    assert summary["thoracic"].n == 1 and summary["thoracic"].id_rate_pct == 100.0
    assert summary["lumbar"].id_rate_pct == pytest.approx(50.0)
    assert summary["lumbar"].dice_pct == pytest.approx(50.0)
    assert summary["cervical"].n == 0 and math.isnan(summary["cervical"].id_rate_pct)
    # Error of 20 mm on both swapped ones, 0 on the three others.
    assert summary["all"].loc_mean_mm == pytest.approx(8.0)
    text = format_tables(ev)
    assert "Table 1" in text and "Table 2" in text and "60" in text


def test_evaluate_shift_one_slice_and_missed_extra():
    ref = labelled_column()
    pred_arr = labelled_column(shift_k=1).array.copy()
    pred_arr[pred_arr == 23] = 24  # L4 predicted as L5: L4 missed, L5 extra
    ev = evaluate(Image(pred_arr, ref.spacing_mm, ref.origin_lps), ref)
    rows = {r.name: r for r in ev.rows}
    assert rows["L1"].dice == pytest.approx(5 / 6)
    assert rows["L1"].hd_mm == pytest.approx(2.5, abs=1e-5)
    assert rows["L1"].loc_error_mm == pytest.approx(2.5)
    assert not rows["L4"].predicted and not rows["L4"].identified
    assert ev.extra_predicted_labels == [24]
    voxel_ml = float(np.prod(ref.spacing_mm)) / 1000.0  # the missed L4 is still measured
    assert rows["L4"].reference_ml == pytest.approx(np.sum(ref.array == 23) * voxel_ml)


def test_write_tables_refuses_overwrite(tmp_path):
    ev = evaluate(labelled_column(), labelled_column())
    paths = write_tables(ev, tmp_path)
    doc = json.loads(paths[2].read_text())
    assert doc["summary"][0]["id_rate_pct"] == 100.0
    assert doc["summary"][1]["dice_pct"] is None  # no cervical vertebra
    assert paths[0].read_text().splitlines()[0].startswith("label,name,region,dice")
    with pytest.raises(FileExistsError):
        write_tables(ev, tmp_path)
    write_tables(ev, tmp_path, force=True)


def test_evaluate_command_prints_and_writes(tmp_path, capsys):
    import SimpleITK as sitk

    from SpineLabelerLib.cli import main
    from SpineLabelerLib.image import to_sitk

    ref = labelled_column()
    pred = labelled_column(swap=(21, 22))
    sitk.WriteImage(to_sitk(ref), str(tmp_path / "ref.nii.gz"))
    sitk.WriteImage(to_sitk(pred), str(tmp_path / "pred.nii.gz"))
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        str(tmp_path / "pred.nii.gz"),
        str(tmp_path / "ref.nii.gz"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Table 2" in text
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["summary"][0]["id_rate_pct"] == pytest.approx(60.0)
    assert main(argv) == 1  # refuses to overwrite
    assert main([*argv, "--force"]) == 0
    assert main(["evaluate", str(tmp_path / "missing.nii.gz"), str(tmp_path / "ref.nii.gz")]) == 2


def test_evaluate_command_reads_centroid_files(tmp_path, capsys):
    """Centroid files replace the mask centroids: one moved 25 mm is not identified."""
    import SimpleITK as sitk

    from SpineLabelerLib.cli import main
    from SpineLabelerLib.image import to_sitk
    from SpineLabelerLib.io.centroids import write_verse_centroids

    ref = labelled_column()
    sitk.WriteImage(to_sitk(ref), str(tmp_path / "ref.nii.gz"))
    centroids = centroids_from_labels(ref)
    moved = dict(centroids)
    moved[21] = centroids[21] + np.array([25.0, 0.0, 0.0])
    write_verse_centroids(tmp_path / "ref.json", centroids)
    write_verse_centroids(tmp_path / "pred.json", moved)
    argv = ["evaluate", str(tmp_path / "ref.nii.gz"), str(tmp_path / "ref.nii.gz")]
    files = [
        "--pred-centroids",
        str(tmp_path / "pred.json"),
        "--ref-centroids",
        str(tmp_path / "ref.json"),
    ]
    assert main([*argv, *files, "--out", str(tmp_path / "e")]) == 0
    doc = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert doc["summary"][0]["id_rate_pct"] == pytest.approx(80.0)
    assert doc["summary"][0]["dice_pct"] == pytest.approx(100.0)
    (tmp_path / "bad.json").write_text("[{}]")
    assert main([*argv, "--pred-centroids", str(tmp_path / "bad.json")]) == 2
    assert "not a VerSe centroid file" in capsys.readouterr().err


def slab_maps(pred_slabs: dict[int, tuple[int, int]], ref_slabs: dict[int, tuple[int, int]]):
    """A predicted and a reference labelmap of 10 x 4 x 4 voxels, each label a slab of
    k-slices ``[k0, k1)`` (16 voxels a slice), on the same 1 mm grid."""
    maps = []
    for slabs in (pred_slabs, ref_slabs):
        a = np.zeros((10, 4, 4), np.uint8)
        for label, (k0, k1) in slabs.items():
            a[k0:k1] = label
        maps.append(Image(a, (1.0, 1.0, 1.0)))
    return maps


def test_outline_scores_see_the_outline_past_a_wrong_name():
    """Expert L1 = slices 0-3, L2 = 4-7. Prediction: slices 0-3 named T12 (the right outline,
    the wrong name), slices 5-8 named L2 (one slice short of L2 at the top, one over below).
    L1: recall 0 and no precision (nothing named L1), outline T12 with Dice 1. L2: recall
    3/4, precision 3/4, outline L2 with Dice 2*3/(4+4)."""
    from SpineLabelerLib.evaluation import outline_scores

    pred, ref = slab_maps({19: (0, 4), 21: (5, 9)}, {20: (0, 4), 21: (4, 8)})
    scores = outline_scores(pred, ref)
    assert set(scores) == {20, 21}
    l1, l2 = scores[20], scores[21]
    assert (l1.recall, l1.outline_label, l1.outline_dice) == (0.0, 19, 1.0)
    assert math.isnan(l1.precision)
    assert l2.recall == pytest.approx(0.75)
    assert l2.precision == pytest.approx(0.75)
    assert (l2.outline_label, l2.outline_dice) == (21, pytest.approx(0.75))
    assert (l1.to_neighbours, l2.to_neighbours) == (0.0, 0.0)  # L2's top slice: nobody's


def test_outline_scores_take_the_prediction_covering_most_and_zero_when_none():
    """Expert L3 = slices 0-5 is covered by L2 on 0-1 and L4 on 2-5 (L4 covers most: Dice
    2*4/(6+4); the neighbour L2 holds 2 of its 6 slices); expert L5 = slices 8-9 is not
    touched (outline Dice 0, no label, nothing held by a neighbour)."""
    from SpineLabelerLib.evaluation import outline_scores

    pred, ref = slab_maps({21: (0, 2), 23: (2, 6)}, {22: (0, 6), 24: (8, 10)})
    scores = outline_scores(pred, ref)
    assert scores[22].outline_label == 23
    assert scores[22].outline_dice == pytest.approx(0.8)
    assert scores[22].recall == 0.0
    assert scores[22].to_neighbours == pytest.approx(2 / 6)
    assert (scores[24].outline_label, scores[24].outline_dice, scores[24].recall) == (
        None,
        0.0,
        0.0,
    )
    assert scores[24].to_neighbours == 0.0


def test_predicted_matches_sort_right_wrong_and_extra():
    """L1 lies on expert L1 (right), the prediction named L3 lies 3 of 4 slices on expert L2
    (wrong), L5 lies on voxels the expert left unlabelled (extra, a sacrum)."""
    from SpineLabelerLib.evaluation import predicted_matches

    pred, ref = slab_maps({20: (0, 3), 22: (3, 7), 24: (8, 10)}, {20: (0, 3), 21: (3, 6)})
    found = predicted_matches(pred, ref)
    assert set(found) == {20, 22, 24}
    assert found[20].named_right and not found[20].extra and found[20].share == 1.0
    assert (found[22].covers, found[22].share) == (21, pytest.approx(0.75))
    assert not found[22].named_right and not found[22].extra
    assert found[24].extra and found[24].covers == 0
