"""body_line: where a column's bottom mask starts, looking along the column, in body depths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from SpineLabelerLib import body_line

# A lumbar vertebra on a canonical 1 mm (K, J, I) grid, j towards the back: a body 30 mm
# deep in front of the canal, pedicles beside the canal and an arch behind it.
BODY = slice(10, 40)
CANAL = slice(40, 55)
ARCH = slice(55, 70)


def lumbar_column(bottom: str) -> np.ndarray:
    """Four vertebrae 24 mm high, top (high k) to bottom, and below them ``bottom``: "body"
    (a thin top of a body 4 mm behind the bodies' fronts, as the sacrum's at 3 mm), "arch"
    (the next vertebra cut off behind its body by the view) or "whole" (a vertebra)."""
    inst = np.zeros((130, 80, 60), np.int16)

    def vertebra(index: int, ks: slice, body_shift: int = 0, with_body: bool = True) -> None:
        if with_body:
            inst[ks, BODY.start + body_shift : BODY.stop + body_shift, 18:42] = index
        inst[ks, CANAL, 16:22] = index  # pedicles and articular processes
        inst[ks, CANAL, 38:44] = index
        inst[ks, ARCH, 16:44] = index

    for index, top in zip((1, 2, 3, 4), (126, 98, 70, 42)):
        vertebra(index, slice(top - 24, top))
    if bottom == "body":
        inst[4:12, BODY.start + 4 : BODY.stop + 4, 18:42] = 5
    elif bottom == "arch":
        vertebra(5, slice(4, 12), with_body=False)
    else:
        vertebra(5, slice(0, 14))
    return inst


@pytest.mark.parametrize(("bottom", "step"), [("body", 4 / 30), ("whole", 0.0), ("arch", 1.0)])
def test_the_bottom_s_front_is_read_in_depths_of_the_bodies_above(bottom: str, step: float):
    """The phantoms' and real short views cut the next vertebra off behind its body (0.67-1.06
    depths back where its bone is wide); the real sacra at 3 mm start 0.41 and 0.08 back."""
    inst = lumbar_column(bottom)
    got = body_line.front_step_in_body_depths(inst, [1, 2, 3, 4, 5], (1.0, 1.0, 1.0))
    assert got == pytest.approx(step, abs=0.05)


def test_a_tilted_column_is_read_across_its_own_line():
    """Lordosis tilts the column: each vertebra here 6 mm further back than the one above it
    (12 degrees). Read along j alone, the whole bottom vertebra would start 6 mm behind the
    one above; across the column's line it starts where the bodies above do."""
    inst = np.pad(lumbar_column("whole"), ((0, 0), (30, 30), (0, 0)))
    tilted = np.zeros_like(inst)
    for index, back in zip((1, 2, 3, 4, 5), (-24, -18, -12, -6, 0)):
        tilted[np.roll(inst == index, back, axis=1)] = index
    got = body_line.front_step_in_body_depths(tilted, [1, 2, 3, 4, 5], (1.0, 1.0, 1.0))
    assert abs(got) < 0.1


def test_nothing_to_read_is_never_in_line():
    """Without bodies whose canal shows behind them, with too few vertebrae or with a column
    that runs front to back, nothing can be read (and column.recognise_sacrum takes no mask as
    in line then)."""
    inst = lumbar_column("body")
    no_canal = inst.copy()
    no_canal[:, 40:55, 18:42] = no_canal[:, 39:40, 18:42]  # bodies that run into the arch
    assert body_line.front_step_in_body_depths(no_canal, [1, 2, 3, 4, 5], (1, 1, 1)) is None
    assert body_line.front_step_in_body_depths(inst, [4, 5], (1, 1, 1)) is None
    lying = np.zeros((10, 90, 10), np.int16)  # vertebrae one behind the other along j
    for index, j in zip((1, 2, 3), (5, 35, 65)):
        lying[2:8, j : j + 20, 2:8] = index
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero front on the way
        assert body_line.front_step_in_body_depths(lying, [1, 2, 3], (1, 1, 1)) is None
