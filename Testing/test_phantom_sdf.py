"""Distance primitives and local fields of the phantom: signs, exact distances where
they are exact, bounds that hold the shape, and the narrow band agreeing with a full
evaluation."""

from __future__ import annotations

import numpy as np

from SpineLabelerLib.phantom.bones import SkullShell
from SpineLabelerLib.phantom.field import FAR_MM, Field, Frame, Grid
from SpineLabelerLib.phantom.sdf import (
    Capsule,
    Ellipsoid,
    EllipticColumn,
    FlatCapsule,
    RoundBox,
    canal_distance,
)


def _pts(*xyz):
    return tuple(np.array(c, np.float32) for c in zip(*xyz))


def test_capsule_distance_is_exact():
    cap = Capsule((0.0, 0.0, 0.0), (0.0, 0.0, 10.0), 2.0)
    u, v, w = _pts((5.0, 0.0, 5.0), (0.0, 0.0, 13.0), (0.0, 1.0, 0.0))
    assert np.allclose(cap(u, v, w), [3.0, 1.0, -1.0], atol=1e-5)


def test_ellipsoid_and_flat_capsule_are_zero_on_their_surface():
    e = Ellipsoid((1.0, 2.0, 3.0), (10.0, 5.0, 2.0))
    u, v, w = _pts((11.0, 2.0, 3.0), (1.0, 7.0, 3.0), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0))
    d = e(u, v, w)
    assert np.allclose(d[:3], 0.0, atol=1e-4) and d[3] < 0
    rib = FlatCapsule((0.0, 0.0, 0.0), (20.0, 0.0, 0.0), r1=5.0, r2=2.5, n1=(0.0, 0.0, 1.0))
    u, v, w = _pts((10.0, 0.0, 5.0), (10.0, 2.5, 0.0), (10.0, 0.0, 7.0))
    assert np.allclose(rib(u, v, w), [0.0, 0.0, 2.0], atol=1e-3)


def test_round_box_and_column_hold_their_points_within_their_bounds():
    rng = np.random.default_rng(0)
    for prim in (
        RoundBox((1.0, 2.0, 3.0), (4.0, 10.0, 6.0), 1.0, tilt_deg=30.0),
        EllipticColumn(0.0, 5.0, 8.0, 4.0, -3.0, 9.0),
    ):
        lo, hi = prim.bounds()
        pts = rng.uniform(lo - 10, hi + 10, size=(20000, 3)).astype(np.float32)
        inside = prim(pts[:, 0], pts[:, 1], pts[:, 2]) < 0
        assert inside.any()
        assert np.all((pts[inside] >= lo - 1e-3) & (pts[inside] <= hi + 1e-3))


def test_triangular_canal_is_smaller_than_the_elliptic_one():
    g = np.mgrid[-20:20:0.1, -5:25:0.1].astype(np.float32)
    u, v = g[0], g[1]
    ell = (canal_distance(u, v, 9.0, (11.0, 8.0), False) < 0).sum() * 0.01
    tri = (canal_distance(u, v, 9.0, (11.0, 8.0), True) < 0).sum() * 0.01
    assert abs(ell - np.pi * 11 * 8) < 3.0  # the ellipse's own area, mm^2
    assert 0.6 * ell < tri < 0.95 * ell


def test_field_unions_parts_and_narrow_band_matches_full_evaluation():
    grid = Grid((120, 130, 110), (-55.0, -70.0, -10.0), (1.0, 1.0, 1.0))
    frame = Frame(np.zeros(3), np.eye(3))
    skull = SkullShell((0.0, -5.0, 50.0), (50.0, 60.0, 55.0), 7.0, 15.0, (8.0, 12.0, 14.0))
    full = Field.around(grid, frame, [skull])
    band = Field.around(grid, frame, [skull])
    full.add(skull)
    band.add(skull, narrow_band=True)
    assert np.array_equal(full.sdf < 0, band.sdf < 0)
    near = np.abs(full.sdf) < 1.0
    assert np.allclose(full.sdf[near], band.sdf[near], atol=1e-5)
    two = Field.around(
        grid, frame, [Capsule((0, 0, 0), (0, 0, 20), 3.0), Capsule((10, 0, 0), (10, 0, 20), 3.0)]
    )
    two.add(Capsule((0.0, 0.0, 0.0), (0.0, 0.0, 20.0), 3.0))
    two.add(Capsule((10.0, 0.0, 0.0), (10.0, 0.0, 20.0), 3.0))
    assert (two.sdf < 0).sum() > 2 * 500 and two.sdf.max() <= FAR_MM
