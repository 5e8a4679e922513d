"""benchmarks/dice_losses.py sorts wrong voxels by kind and by distance from the surface."""

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "dice_losses.py"
_SPEC = importlib.util.spec_from_file_location("dice_losses", _PATH)
dice_losses = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(dice_losses)


def cube(shape=(40, 40, 40), lo=10, hi=30, label=1):
    out = np.zeros(shape, np.uint8)
    out[lo:hi, lo:hi, lo:hi] = label
    return out


def test_a_boundary_one_voxel_off_is_all_near_the_surface():
    ref = cube()
    pred = np.roll(ref, 1, axis=0)  # one face gains a layer, the opposite one loses it
    losses = dice_losses.vertebra_losses(pred, ref, 1)
    assert losses["missed_bg"] == losses["extra_bg"] == 20 * 20
    assert losses["near"] == 2 * 20 * 20
    assert losses["missed_other"] == losses["extra_other"] == 0


def test_a_missing_part_is_far_and_a_neighbours_gain_is_counted_as_traded():
    ref = cube()
    pred = ref.copy()
    pred[14:26, 14:26, 14:18] = 0  # a hole deep inside: missed, not a boundary error
    pred[10:30, 10:30, 28:30] = 2  # the neighbour takes two layers of this vertebra
    losses = dice_losses.vertebra_losses(pred, ref, 1)
    assert losses["missed_bg"] == 12 * 12 * 4
    assert losses["missed_other"] == 20 * 20 * 2
    assert losses["near"] == 20 * 20 * 2  # the traded layers lie at the surface; the hole does not
    assert losses["pred"] == 20 * 20 * 18 - 12 * 12 * 4
