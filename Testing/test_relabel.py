"""Corrections on labelmaps: relabel from here, merge, split, centroids (SpineLabelerLib.relabel)."""

from __future__ import annotations

import numpy as np
import pytest

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, index_to_lps
from SpineLabelerLib.relabel import (
    apply_mapping,
    carry_over,
    merge,
    present_labels,
    relabel_from_here,
    relabel_mapping,
    renumber_in_order,
    spine_axis,
    spine_order,
    split,
    summarize,
    vertebra_centroids_lps,
    write_vertebrae_csv,
)

L = anatomy.vertebra  # L("T12").label == 19


def _rotation(deg_about_i: float, deg_about_k: float) -> np.ndarray:
    a, b = np.radians(deg_about_i), np.radians(deg_about_k)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rz @ rx


def spine(
    names: list[str],
    height: int = 6,
    disc: int = 2,
    direction: np.ndarray | None = None,
    spacing=(1.0, 1.0, 2.0),
) -> Image:
    """Boxes stacked along k (superior = +k for identity direction); names[0] is the
    most cranial, so it sits at the top (highest k). Each box is 8 x 8 voxels across."""
    n = len(names)
    size_k = n * (height + disc) + disc
    arr = np.zeros((size_k, 12, 12), np.uint8)
    for pos, name in enumerate(names):
        top = size_k - disc - pos * (height + disc)
        arr[top - height : top, 2:10, 2:10] = L(name).label
    return Image(arr, spacing, (10.0, -20.0, 30.0), np.eye(3) if direction is None else direction)


def names_top_down(labels: Image) -> list[str]:
    """Names of the label values met walking down the k axis from the top."""
    seen: list[str] = []
    for k in range(labels.array.shape[0] - 1, -1, -1):
        values = np.unique(labels.array[k])
        for v in values[values != 0]:
            name = L(int(v)).name
            if name not in seen:
                seen.append(name)
    return seen


def test_centroids_are_lps_mm_on_an_oblique_grid():
    direction = _rotation(20.0, 35.0)
    labels = Image(np.zeros((10, 9, 8), np.int16), (0.7, 0.8, 2.5), (-5.0, 12.0, 40.0), direction)
    labels.array[2:5, 3:7, 1:4] = 20  # k 2..4, j 3..6, i 1..3
    labels.array[7, 0, 0] = 21
    centroids = vertebra_centroids_lps(labels)
    assert set(centroids) == {20, 21}
    expected = np.array([2.0, 4.5, 3.0])  # mean (i, j, k) of the box
    manual = labels.origin_lps + direction @ (np.array(labels.spacing_mm) * expected)
    np.testing.assert_allclose(centroids[20], manual, atol=1e-9)
    np.testing.assert_allclose(centroids[21], index_to_lps(labels, [[0, 0, 7]])[0], atol=1e-9)


def test_summary_rows_are_in_position_order_with_volumes():
    labels = spine(["T11", "T12", "L1"])
    rows = summarize(labels)
    assert [r.name for r in rows] == ["T11", "T12", "L1"]
    assert [r.label for r in rows] == [18, 19, 20]
    # 6 x 8 x 8 voxels of 1 x 1 x 2 mm = 768 mm3
    assert all(r.voxels == 384 for r in rows)
    assert rows[0].volume_ml == pytest.approx(0.768)
    assert rows[0].centroid_lps[2] > rows[1].centroid_lps[2] > rows[2].centroid_lps[2]


def test_position_order_ignores_label_values_and_scanner_tilt():
    # Names deliberately out of order: the top box is called L2.
    tilted = _rotation(25.0, 0.0)
    labels = spine(["L2", "T11", "L1", "T12"], direction=tilted)
    order = spine_order(vertebra_centroids_lps(labels))
    assert [L(v).name for v in order] == ["L2", "T11", "L1", "T12"]
    axis = spine_axis(np.array(list(vertebra_centroids_lps(labels).values())))
    assert axis[2] < 0  # points caudally (-S)
    np.testing.assert_allclose(np.abs(axis), np.abs(tilted[:, 2]), atol=1e-6)


def test_relabel_from_here_shifts_every_name_and_keeps_the_voxels():
    labels = spine(["T10", "T11", "T12", "L1", "L2"])
    edit = relabel_from_here(labels, "T12", "L1")
    assert names_top_down(edit.labels) == ["T11", "T12", "L1", "L2", "L3"]
    assert edit.renamed == {17: 18, 18: 19, 19: 20, 20: 21, 21: 22}
    np.testing.assert_array_equal(edit.labels.array > 0, labels.array > 0)
    assert edit.labels.same_grid(labels) and edit.labels.array.dtype == labels.array.dtype
    # Going the other way (cranially) by two levels works the same.
    back = relabel_from_here(edit.labels, 20, "T11")
    assert names_top_down(back.labels) == ["T9", "T10", "T11", "T12", "L1"]


def test_relabel_keeps_a_gap_left_by_a_missed_vertebra_unless_told_not_to():
    labels = spine(["T10", "T11", "L1", "L2"])  # T12 was missed: the names already skip it
    kept = relabel_from_here(labels, "T10", "T11")
    assert names_top_down(kept.labels) == ["T11", "T12", "L2", "L3"]
    closed = relabel_from_here(labels, "T10", "T11", keep_gaps=False)
    assert names_top_down(closed.labels) == ["T11", "T12", "L1", "L2"]


def test_relabel_makes_repeated_or_backward_names_consecutive():
    labels = spine(["T11", "L1", "T12", "L2"])  # two names swapped
    edit = relabel_from_here(labels, "T11", "T11")
    assert names_top_down(edit.labels) == ["T11", "T12", "L1", "L2"]


def test_relabel_outside_c1_to_l6_is_refused_with_a_clear_message():
    labels = spine(["L4", "L5", "L6"])
    with pytest.raises(ValueError, match="outside C1..L6"):
        relabel_from_here(labels, "L4", "L5")
    with pytest.raises(ValueError, match="not in the segmentation"):
        relabel_from_here(labels, "T1", "T2")
    with pytest.raises(KeyError, match="unknown vertebra"):
        relabel_from_here(labels, "L4", "S1")


def test_renumber_in_order_uses_top_and_bottom_of_merged_items():
    # A merged item spanning old L1..L2 followed by old L3: the step to L3 is 1.
    assert renumber_in_order([19, 20, 22], [19, 21, 22], 1, 20) == [19, 20, 21]
    assert renumber_in_order([5, 6], [5, 5], 0, 5) == [5, 6]  # a split: parts L, L+1
    assert renumber_in_order([3, 6, 7], [3, 6, 7], 0, 4) == [4, 7, 8]  # gap kept
    assert renumber_in_order([3, 6, 5], [3, 6, 5], 0, 4) == [4, 5, 6]  # out of order
    with pytest.raises(ValueError, match="anchor"):
        renumber_in_order([1, 2], [1, 2], 2, 1)


def test_relabel_mapping_and_apply_mapping_agree():
    labels = spine(["C6", "C7", "T1"])
    mapping = relabel_mapping(vertebra_centroids_lps(labels), "C7", "T1")
    assert mapping == {6: 7, 7: 8, 8: 9}
    assert present_labels(apply_mapping(labels, mapping)) == [7, 8, 9]


def test_merge_joins_two_halves_and_gives_the_level_back():
    # L1 was cut in two ("L1", "L2"); the real L2 was therefore called "L3".
    labels = spine(["T12", "L1", "L2", "L3"], disc=1)
    edit = merge(labels, "L2", "L1")
    assert names_top_down(edit.labels) == ["T12", "L1", "L2"]
    assert edit.renamed == {19: 19, 22: 21}
    merged = edit.labels.array == L("L1").label
    np.testing.assert_array_equal(merged, np.isin(labels.array, (20, 21)))
    caudal = merge(labels, "L1", "L2", keep="caudal")
    assert names_top_down(caudal.labels) == ["L1", "L2", "L3"]


def test_merge_refuses_non_neighbours_and_missing_segments():
    labels = spine(["T12", "L1", "L2"])
    with pytest.raises(ValueError, match="not neighbours"):
        merge(labels, "T12", "L2")
    with pytest.raises(ValueError, match="not in the segmentation"):
        merge(labels, "T12", "L4")
    with pytest.raises(ValueError, match="two different"):
        merge(labels, "L1", "L1")


def _two_vertebrae_in_one_mask(direction: np.ndarray | None = None) -> Image:
    """ "L1" holds two bodies (k 14..21 and k 4..11) joined by a thin 2 x 2 bridge at k 12..13;
    T12 above, "L2" below (really L3)."""
    arr = np.zeros((36, 12, 12), np.uint8)
    arr[28:34, 2:10, 2:10] = L("T12").label
    arr[14:22, 2:10, 2:10] = L("L1").label
    arr[12:14, 5:7, 5:7] = L("L1").label
    arr[4:12, 2:10, 2:10] = L("L1").label
    arr[0:2, 2:10, 2:10] = L("L2").label
    return Image(
        arr, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3) if direction is None else direction
    )


def test_split_cuts_at_the_thinnest_section_and_renames_below():
    labels = _two_vertebrae_in_one_mask()
    edit = split(labels, "L1")
    assert names_top_down(edit.labels) == ["T12", "L1", "L2", "L3"]
    upper = np.argwhere(edit.labels.array == L("L1").label)[:, 0]
    lower = np.argwhere(edit.labels.array == L("L2").label)[:, 0]
    assert upper.min() >= 12 and upper.max() == 21  # the cut lies inside the bridge
    assert lower.min() == 4 and lower.max() <= 13
    assert (edit.labels.array == L("L3").label).sum() == 2 * 64  # old "L2" box, renamed
    assert edit.renamed == {19: 19, 21: 22}
    np.testing.assert_array_equal(edit.labels.array > 0, labels.array > 0)


def test_split_on_an_oblique_grid_and_through_the_centroid():
    labels = _two_vertebrae_in_one_mask(_rotation(30.0, 40.0))
    thinnest = split(labels, "L1")
    assert sorted(present_labels(thinnest.labels)) == [19, 20, 21, 22]
    lower_k = np.argwhere(thinnest.labels.array == 21)[:, 0]
    assert lower_k.max() <= 13
    centroid = split(labels, "L1", cut="centroid", keep="caudal")
    assert names_top_down(centroid.labels) == ["T11", "T12", "L1", "L2"]
    # The centroid plane (k = 12.5 here) splits the symmetric mask into equal halves.
    upper = (centroid.labels.array == L("T12").label).sum()
    lower = (centroid.labels.array == L("L1").label).sum()
    assert upper == lower


def test_split_of_a_lone_mask_uses_its_own_axis_and_refuses_a_sliver():
    labels = _two_vertebrae_in_one_mask()
    lone = labels.with_array(np.where(labels.array == 20, 20, 0).astype(np.uint8))
    edit = split(lone, "L1")
    assert present_labels(edit.labels) == [20, 21]
    assert np.argwhere(edit.labels.array == 21)[:, 0].max() <= 13
    speck = labels.with_array(np.where(labels.array == 19, 19, 0).astype(np.uint8))
    speck.array[8, 5, 5] = 20  # a one-voxel "L1" below T12 cannot be two vertebrae
    with pytest.raises(ValueError, match="really two vertebrae"):
        split(speck, "L1")


def test_bad_labelmaps_are_refused():
    with pytest.raises(ValueError, match="integers"):
        present_labels(Image(np.zeros((3, 3, 3), np.float32)))
    arr = np.zeros((3, 3, 3), np.uint8)
    arr[1, 1, 1] = 28
    with pytest.raises(ValueError, match=r"\[28\] are not vertebrae"):
        vertebra_centroids_lps(Image(arr))
    with pytest.raises(ValueError, match="3D"):
        present_labels(Image(np.zeros((3, 3, 3, 2), np.uint8)))
    negative = np.zeros((3, 3, 3), np.int16)
    negative[0, 0, 0] = -1
    with pytest.raises(ValueError, match="negative"):
        present_labels(Image(negative))


def test_label_counts_in_slabs_equal_a_plain_count():
    from SpineLabelerLib.relabel import _label_counts

    rng = np.random.default_rng(0)
    array = rng.integers(0, 26, size=(30, 40, 50)).astype(np.uint8)
    np.testing.assert_array_equal(
        _label_counts(array, chunk_voxels=999), np.bincount(array.ravel())
    )


def test_values_follow_their_vertebra_through_edits():
    labels = spine(["T12", "L1", "L2", "L3"], disc=1)
    confidence = {19: 0.9, 20: 0.8, 21: 0.7, 22: 0.6}
    shifted = relabel_from_here(labels, "T12", "L1")
    assert carry_over(confidence, shifted.renamed) == {20: 0.9, 21: 0.8, 22: 0.7, 23: 0.6}
    merged = merge(labels, "L1", "L2")
    assert carry_over(confidence, merged.renamed) == {19: 0.9, 21: 0.6}  # the merged L1 has none


def test_vertebrae_csv(tmp_path):
    labels = spine(["L1", "L2"])
    path = write_vertebrae_csv(tmp_path / "vertebrae.csv", labels)
    lines = path.read_text().splitlines()
    assert lines[0] == "name,label,l_mm,p_mm,s_mm,volume_ml,voxels"
    first = lines[1].split(",")
    assert first[:2] == ["L1", "20"] and first[5:] == ["0.768", "384"]
    centroid = vertebra_centroids_lps(labels)[20]
    assert [float(v) for v in first[2:5]] == pytest.approx(centroid, abs=1e-3)
    assert lines[2].startswith("L2,21,")
    with pytest.raises(FileExistsError):
        write_vertebrae_csv(path, labels)
    write_vertebrae_csv(path, labels, force=True)


@pytest.fixture(scope="module")
def whole_spine() -> Image:
    """Labels of a whole-spine phantom (C1-L5, curved), 2.5 mm, no scanner physics."""
    from SpineLabelerLib.phantom import generate_case

    return generate_case(5, "whole", spacing_mm=(2.5, 2.5, 2.5), physics=False).labels


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_position_order_of_a_curved_phantom_spine_is_its_anatomical_order(whole_spine):
    order = spine_order(vertebra_centroids_lps(whole_spine))
    assert order == list(range(1, 25))
    edit = relabel_from_here(whole_spine, "L1", "L2")
    assert present_labels(edit.labels) == list(range(2, 26))
    with pytest.raises(ValueError, match="outside C1..L6"):
        relabel_from_here(edit.labels, "C2", "C3")  # L6 would become "L7"


@pytest.mark.parametrize(("upper", "min_dice"), [("C4", 0.90), ("T5", 0.90), ("L2", 0.95)])
def test_split_recovers_two_fused_phantom_vertebrae(whole_spine, upper, min_dice):
    """Fuse a vertebra with the one below, split it again: both come back (Dice, 2.5 mm).

    Measured on this phantom: C4/C5 0.94, T5/T6 0.94, L2/L3 0.98; the bounds leave room for
    the phantom generator's changes."""
    top = anatomy.vertebra(upper).label
    fused = whole_spine.with_array(np.where(whole_spine.array == top + 1, top, whole_spine.array))
    edit = split(fused, upper)
    for label in (top, top + 1):
        assert _dice(edit.labels.array == label, whole_spine.array == label) >= min_dice
    # Everything below kept its name (the pair was named L, L+1 again).
    np.testing.assert_array_equal(edit.labels.array == 24, whole_spine.array == 24)
    # Merging the two back gives the fused mask; the names below then close up by one.
    rejoined = merge(edit.labels, upper, top + 1)
    np.testing.assert_array_equal(rejoined.labels.array == top, fused.array == top)
    assert present_labels(rejoined.labels) == list(range(1, 24))


def test_split_keeps_names_below_that_already_skipped_the_hidden_vertebra():
    labels = _two_vertebrae_in_one_mask()
    already_right = labels.with_array(
        np.where(labels.array == 21, 22, labels.array).astype(np.uint8)
    )
    edit = split(already_right, "L1")  # "L1" holds L1 + L2; the one below is already "L3"
    assert names_top_down(edit.labels) == ["T12", "L1", "L2", "L3"]
    assert edit.renamed == {19: 19, 22: 22}
    # Trusting the names below instead: the caudal part keeps "L1", everything above moves up.
    caudal = split(labels, "L1", keep="caudal")
    assert names_top_down(caudal.labels) == ["T11", "T12", "L1", "L2"]
