"""bone_edges.py: outlines grown to the bone's edge, on hand-built volumes."""

import numpy as np

from SpineLabelerLib.bone_edges import BoneEdgeSettings, grow_to_bone


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
