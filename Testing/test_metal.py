"""metal.py: which vertebrae have metal beside them, on hand-built grids; and the pipeline's
note on an oracle spine with a rod behind one vertebra."""

import numpy as np
from test_pipeline import run, spine_ct

from SpineLabelerLib import metal

L2, L3, L4 = 21, 22, 23


def _three_vertebrae(spacing_kji=(2.0, 0.5, 0.5)):
    """L2, L3, L4 as boxes 30 mm apart on a grid of ``spacing_kji`` (mm); HU 300 inside."""
    size_mm = np.array([110.0, 60.0, 60.0])
    shape = tuple(int(n) for n in size_mm / spacing_kji)
    labels = np.zeros(shape, np.uint8)
    hu = np.zeros(shape, np.float32)

    def box(k_mm, j_mm, i_mm):
        return tuple(
            slice(int(a / s), int(b / s)) for (a, b), s in zip((k_mm, j_mm, i_mm), spacing_kji)
        )

    for label, top in ((L2, 100.0), (L3, 70.0), (L4, 40.0)):
        labels[box((top - 22, top), (10, 40), (15, 45))] = label
    hu[labels > 0] = 300.0
    return labels, hu, box


def test_a_screw_in_one_vertebra_names_that_one_on_a_fine_grid():
    labels, hu, box = _three_vertebrae()
    hu[box((55, 60), (15, 45), (20, 24))] = 3071.0  # a screw through L3's pedicle and body
    assert metal.vertebrae_beside_metal(labels, hu, (2.0, 0.5, 0.5)) == [L3]


def test_a_rod_behind_two_vertebrae_names_both_and_metal_far_away_none():
    labels, hu, box = _three_vertebrae((1.0, 1.0, 1.0))
    hu[box((50, 90), (44, 48), (28, 32))] = 3000.0  # a rod 4-8 mm behind L2 and L3
    assert metal.vertebrae_beside_metal(labels, hu, (1.0, 1.0, 1.0)) == [L2, L3]
    labels, hu, box = _three_vertebrae((1.0, 1.0, 1.0))
    hu[box((50, 90), (52, 58), (28, 34))] = 3000.0  # 12 mm behind: not beside them
    assert metal.vertebrae_beside_metal(labels, hu, (1.0, 1.0, 1.0)) == []


def test_dense_bone_and_a_few_bright_voxels_are_not_metal():
    labels, hu, box = _three_vertebrae((1.0, 1.0, 1.0))
    hu[labels == L3] = 2119.0  # the densest bone of a real case at hand (verse005)
    hu[60, 45, 30] = hu[60, 46, 30] = 3071.0  # two voxels: 0.002 ml
    assert metal.vertebrae_beside_metal(labels, hu, (1.0, 1.0, 1.0)) == []
    assert metal.metal_note([]) == []


def test_the_pipeline_says_which_vertebra_has_metal_beside_it():
    ct, truth, names = spine_ct("L2", "L5", above_mm=0.0)
    centre = np.argwhere(truth.array == L3).mean(0)  # (k, j, i) on the CT's grid
    front_back = np.argwhere(truth.array > 0)[:, 1]
    k, i = int(centre[0]), int(centre[2])
    array = ct.array.copy()
    array[k - 3 : k + 3, front_back.max() + 2 : front_back.max() + 6, i - 2 : i + 2] = 3071.0
    result = run(ct.with_array(array))
    assert [v.name for v in result.vertebrae] == names
    notes = [m for m in result.messages if m.startswith("metal beside")]
    assert notes and notes[0].startswith("metal beside L3 (")
    assert not any(m.startswith("metal") for m in run(ct).messages)
