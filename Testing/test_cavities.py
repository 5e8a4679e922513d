"""cavities.fill_cavities: what a vertebra encloses is its own; nothing else moves."""

import numpy as np

from SpineLabelerLib.cavities import fill_cavities


def _body_with_marrow_hole() -> np.ndarray:
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[2:10, 2:10, 2:10] = 3
    labels[5:7, 5:7, 5:7] = 0  # a fatty island the net left out
    return labels


def test_an_enclosed_hole_joins_its_vertebra():
    filled = fill_cavities(_body_with_marrow_hole())
    assert (filled[2:10, 2:10, 2:10] == 3).all()
    assert np.count_nonzero(filled) == 8**3


def test_a_canal_open_at_both_ends_stays_open():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[2:10, 2:10, 2:10] = 4
    labels[:, 5:7, 5:7] = 0  # a ring round the spinal canal, open above and below
    assert np.array_equal(fill_cavities(labels), labels)


def test_a_hole_another_vertebra_holds_is_left_to_it():
    labels = _body_with_marrow_hole()
    labels[5, 5, 5] = 4
    filled = fill_cavities(labels)
    assert filled[5, 5, 5] == 4
    assert np.count_nonzero(filled == 3) == 8**3 - 1


def test_a_mask_at_the_grid_edge_keeps_what_the_edge_opens():
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[0:4, 0:4, 0:4] = 2
    labels[0:2, 1:3, 1:3] = 0  # open to the grid's edge: the view cut it, nothing encloses it
    filled = fill_cavities(labels)
    assert np.array_equal(filled, labels)
    assert filled is not labels
