"""bone_edges.py: outlines grown to the bone's edge, on hand-built volumes."""

import numpy as np

from SpineLabelerLib.bone_edges import (
    BoneEdgeSettings,
    EdgeSnapSettings,
    edge_candidates,
    grow_to_bone,
    snap_to_edge,
    snapped_at,
)


def _two_vertebrae_with_a_bone_rim():
    """Two 1 mm blocks (labels 1, 2) inside bone 3 voxels wider than them, a bony bridge
    between them; soft tissue (40 HU) and one bright speck far away."""
    labels = np.zeros((40, 20, 20), np.uint8)
    hu = np.full(labels.shape, 40, np.int16)
    labels[5:15, 6:14, 6:14] = 1
    labels[22:32, 6:14, 6:14] = 2
    hu[2:35, 3:17, 3:17] = 600  # bone around and between both
    hu[labels > 0] = 700
    hu[37, 10, 10] = 900  # a speck 5 mm below vertebra 2: out of reach
    return labels, hu


def test_each_vertebra_takes_the_bone_beside_it_and_nothing_else():
    labels, hu = _two_vertebrae_with_a_bone_rim()
    grown = grow_to_bone(labels, hu, (1.0, 1.0, 1.0), BoneEdgeSettings(reach_mm=2.0))
    assert np.all(grown[labels > 0] == labels[labels > 0])  # the net's voxels stay theirs
    assert grown[5, 10, 4] == 1 and grown[10, 4, 10] == 1  # 2 mm beside vertebra 1
    assert grown[10, 10, 3] == 0  # 3 mm away: beyond the reach
    assert grown[33, 10, 10] == 2 and grown[34, 10, 10] == 0  # 2 mm below vertebra 2, not 3
    assert grown[37, 10, 10] == 0 and not grown[hu == 40].any()  # no soft tissue, no speck
    gap = grown[15:22, 10, 10]  # the bridge between them: each takes its side
    assert list(gap[:2]) == [1, 1] and list(gap[-2:]) == [2, 2] and 0 in gap


def test_the_reach_is_in_millimetres_along_each_axis():
    labels, hu = _two_vertebrae_with_a_bone_rim()
    thick = grow_to_bone(labels, hu, (3.0, 1.0, 1.0), BoneEdgeSettings(reach_mm=2.0))
    assert thick[4, 10, 10] == 0  # one 3 mm slice above is beyond 2 mm
    assert thick[10, 10, 4] == 1  # in plane, 2 voxels of 1 mm


def test_bone_is_judged_against_the_patient_s_own_vertebrae():
    labels, hu = _two_vertebrae_with_a_bone_rim()
    osteoporotic = np.where(hu > 100, hu // 4, hu).astype(np.int16)  # rim 150, bodies 175
    grown = grow_to_bone(labels, osteoporotic, (1.0, 1.0, 1.0), BoneEdgeSettings(2.0, 0.5, 50.0))
    assert grown[5, 10, 4] == 1  # 150 HU is bone where the vertebrae themselves are 175
    assert np.array_equal(grow_to_bone(np.zeros_like(labels), hu, (1.0,) * 3), labels * 0)


def _bone_beyond_the_mask(halo_hu: int):
    """A 1 mm vertebra (label 1) whose net mask stops short of its bone: at 700 HU the bone
    goes on 3 voxels to the left (i below 6) and ends at the mask elsewhere, where a one-voxel
    blur halo of ``halo_hu`` lies on soft tissue (40 HU)."""
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[6:14, 6:14, 6:14] = 1
    hu = np.full(labels.shape, 40, np.int16)
    hu[5:15, 5:15, 5:15] = halo_hu
    hu[6:14, 6:14, 3:14] = 700
    return labels, hu


def test_snap_takes_the_one_voxel_layer_of_bone_going_on():
    labels, hu = _bone_beyond_the_mask(halo_hu=370)  # the halo half-way: blur, not bone
    snapped = snap_to_edge(labels, hu, (1.0, 1.0, 1.0))
    assert np.all(snapped[labels > 0] == 1)
    added = (snapped == 1) & (labels == 0)
    assert added[8, 8, 5] and not added[8, 8, 4]  # one layer of the bone going on, no more
    assert np.array_equal(np.argwhere(added)[:, 2], np.full(added.sum(), 5))  # nothing else


def test_snap_takes_a_rim_as_bright_as_the_bone_but_not_dim_bone():
    labels, hu = _bone_beyond_the_mask(halo_hu=680)
    assert snap_to_edge(labels, hu, (1.0, 1.0, 1.0))[8, 8, 14] == 1  # bone, not blur
    dim = np.where(hu > 100, hu // 6, hu).astype(np.int16)  # 116 HU bone: below 150
    assert np.array_equal(snap_to_edge(labels, dim, (1.0, 1.0, 1.0)), labels)


def test_edge_candidates_judged_at_a_contrast_are_the_snap_at_that_contrast():
    """What benchmarks/edge_snap.py reads: the blur half-way up is taken at 0.5, not at 0.8."""
    labels, hu = _bone_beyond_the_mask(halo_hu=370)
    candidates = edge_candidates(labels, hu, (1.0, 1.0, 1.0))
    for contrast in (0.3, 0.5, 0.8):
        snapped = snapped_at(labels, candidates, contrast)
        expected = snap_to_edge(labels, hu, (1.0, 1.0, 1.0), EdgeSnapSettings(contrast=contrast))
        assert np.array_equal(snapped, expected)
    assert (snap_to_edge(labels, hu, (1.0, 1.0, 1.0), EdgeSnapSettings(contrast=0.5)) > 0).sum() > (
        snap_to_edge(labels, hu, (1.0, 1.0, 1.0)) > 0
    ).sum()


def test_snap_adds_no_layer_along_thick_slices():
    labels, hu = _bone_beyond_the_mask(halo_hu=680)
    snapped = snap_to_edge(labels, hu, (3.0, 1.0, 1.0))
    assert snapped[5, 8, 8] == 0 and snapped[14, 8, 8] == 0  # the 3 mm axis: none
    assert snapped[8, 8, 5] == 1 and snapped[8, 5, 8] == 1  # in plane: one layer


def test_snap_keeps_neighbours_apart_and_their_voxels_theirs():
    labels = np.zeros((24, 12, 12), np.uint8)
    labels[4:10, 3:9, 3:9] = 1
    labels[11:17, 3:9, 3:9] = 2
    hu = np.full(labels.shape, 40, np.int16)
    hu[3:18, 3:9, 3:9] = 700  # one bone through both and the gap between them
    snapped = snap_to_edge(labels, hu, (1.0, 1.0, 1.0))
    assert snapped[10, 5, 5] == 2  # the gap voxel both reach: the caudal one keeps it
    assert snapped[3, 5, 5] == 1 and snapped[17, 5, 5] == 2
    assert np.array_equal(snapped[labels > 0], labels[labels > 0])
