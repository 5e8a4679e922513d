"""The scan: field of view, voxel spacing and orientation of one phantom CT.

A scan is drawn in two grids: the *output* grid (what the CT file holds: any spacing,
flipped, permuted or oblique axes) and the axis-aligned *render* grid the phantom is
painted on. When the output axes are a signed permutation of LPS the two hold the same
voxels (the output is a transpose/flip of the render); otherwise (oblique) the render
grid covers the output box and is resampled onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.phantom.body import BodyModel
from SpineLabelerLib.phantom.field import Grid
from SpineLabelerLib.phantom.layout import SpineLayout

FOVS: tuple[str, ...] = ("whole", "head-neck", "chest", "abdomen", "lumbar", "lumbar-crop", "leg")
MAX_VOXELS = 64_000_000  # clinical draws keep a case under ~256 MB of float32
# A spacing given by hand may go finer, up to this (a 512 x 512 x 2000 CT; the painting needs
# several arrays of this size): finer than that is refused before anything is allocated.
MAX_GIVEN_VOXELS = 8 * MAX_VOXELS


@dataclass(frozen=True)
class ScanGeometry:
    """Output grid (``spacing_mm``/``size_ijk`` (i, j, k), ``direction`` columns = LPS unit
    vectors of the index axes, ``origin_lps``) and the render grid it is drawn on."""

    spacing_mm: tuple[float, float, float]
    size_ijk: tuple[int, int, int]
    direction: np.ndarray
    origin_lps: np.ndarray
    render: Grid
    permutation: tuple[int, int, int] | None  # LPS axis of each output axis, if not oblique
    signs: tuple[int, int, int] | None
    orientation: str  # "axial" | "flipped" | "permuted" | "oblique" | "roi"
    tight: bool


def _level_z(layout: SpineLayout, name: str, rng: np.random.Generator) -> float:
    """Height somewhere inside the named vertebra (a FOV edge may cut it anywhere)."""
    for p in layout.poses + layout.sacrum:
        if p.name == name:
            return float(p.frame.origin[2] + rng.uniform(-0.5, 0.5) * p.height_mm)
    raise KeyError(name)


def _pick(rng: np.random.Generator, names: list[str], layout: SpineLayout) -> str:
    present = {p.name for p in layout.poses + layout.sacrum}
    names = [n for n in names if n in present]
    return str(names[int(rng.integers(0, len(names)))])


def fov_z_range(
    fov: str, layout: SpineLayout, body: BodyModel, rng: np.random.Generator
) -> tuple[float, float]:
    """(bottom, top) patient heights (model z, mm) of a field of view (PHANTOM.md)."""
    zb = body.z
    if fov == "whole":
        return zb["hip"] - rng.uniform(20, 120), zb["C1"] + rng.uniform(20, 120)
    if fov == "head-neck":
        return _level_z(layout, _pick(rng, ["T1", "T2", "T3"], layout), rng), zb[
            "C1"
        ] + rng.uniform(70, 150)
    if fov == "chest":
        return (
            _level_z(layout, _pick(rng, ["T12", "L1", "L2"], layout), rng),
            _level_z(layout, _pick(rng, ["C6", "C7", "T1"], layout), rng),
        )
    if fov == "abdomen":
        return (
            zb["hip"] - rng.uniform(0, 80),
            _level_z(layout, _pick(rng, ["T9", "T10", "T11"], layout), rng),
        )
    if fov == "lumbar":
        return (
            _level_z(layout, _pick(rng, ["S1", "S2", "S3"], layout), rng),
            _level_z(layout, _pick(rng, ["T11", "T12", "L1"], layout), rng),
        )
    if fov == "lumbar-crop":  # a spine-only lumbar reconstruction that cuts the sacrum's top
        s1 = next(p for p in layout.sacrum if p.name == "S1")
        bottom = float(s1.frame.origin[2] + rng.uniform(0.0, 0.45) * s1.height_mm)
        return bottom, _level_z(layout, _pick(rng, ["T11", "T12", "L1"], layout), rng)
    if fov == "leg":
        top = zb["crotch"] - rng.uniform(10, 120)
        return top - rng.uniform(200, 450), top
    raise ValueError(f"unknown field of view {fov!r}; expected one of {', '.join(FOVS)}")


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def draw_orientation(
    rng: np.random.Generator,
) -> tuple[str, np.ndarray, tuple[int, int, int], tuple[int, int, int]]:
    """Direction cosines of the output axes: mostly axial, some flipped, permuted or oblique.
    Returns (kind, direction, permutation, signs) with permutation/signs of the nearest
    signed permutation."""
    u = rng.random()
    perm, signs = [0, 1, 2], [1, 1, 1]
    kind = "axial"
    if u < 0.55:
        pass
    elif u < 0.70:
        kind = "flipped"
        signs = [int(s) for s in rng.choice([-1, 1], 3)]
        if signs == [1, 1, 1]:
            signs[2] = -1
    elif u < 0.85:
        kind = "permuted"
        perm = [int(p) for p in rng.permutation(3)]
        signs = [int(s) for s in rng.choice([-1, 1], 3)]
    else:
        kind = "oblique"
    P = np.zeros((3, 3))
    for c in range(3):
        P[perm[c], c] = signs[c]
    if kind == "oblique":
        P = _rotation(rng.standard_normal(3), np.deg2rad(rng.uniform(5, 20))) @ P
    return kind, P, tuple(perm), tuple(signs)  # type: ignore[return-value]


def draw_spacing(
    rng: np.random.Generator, extent_xy: float, length: float, tight: bool
) -> tuple[float, float, float]:
    """A clinical spacing (in-plane 0.3-1.0, slices 0.5-3 mm) for axial axes (x, y, z),
    coarse enough to stay near ``MAX_VOXELS``: long fields of view get a coarser
    in-plane spacing first (up to 1 mm), then thicker slices (up to 3 mm)."""
    inplane = float(np.clip(extent_xy / 512.0 * rng.uniform(1.0, 1.1), 0.3, 1.0))  # <= 512 x 512
    if tight:
        inplane = float(rng.uniform(0.3, 1.0))
    slice_mm = float(rng.uniform(0.5, 3.0))

    def min_slice(s_xy: float) -> float:
        return (extent_xy / s_xy) ** 2 * length / MAX_VOXELS

    if min_slice(inplane) > 3.0:
        inplane = float(min(max(inplane, extent_xy * np.sqrt(length / (MAX_VOXELS * 3.0))), 1.0))
    # never thicker than 3 mm (clinical range): a very long field may pass the budget a little
    slice_mm = float(np.clip(max(slice_mm, min_slice(inplane)), 0.5, 3.0))
    return inplane, inplane, slice_mm


def draw_scan(
    rng: np.random.Generator,
    fov: str,
    layout: SpineLayout,
    body: BodyModel,
    spacing_mm: tuple[float, float, float] | None,
    orientation: str | None,
    roi_lps: tuple[np.ndarray, np.ndarray] | None,
) -> ScanGeometry:
    """Draw the output grid and the render grid of one scan."""
    if roi_lps is not None:
        centre, size = np.asarray(roi_lps[0], float), np.asarray(roi_lps[1], float)
        kind, P, perm, signs = "roi", np.eye(3), (0, 1, 2), (1, 1, 1)
        tight = True
    else:
        z0, z1 = fov_z_range(fov, layout, body, rng)
        zm = 0.5 * (z0 + z1)
        a, b, back, _ = body.at(zm)
        spine = layout.point_at_z(np.array([zm]))[0]
        tight = fov == "lumbar-crop" or (fov not in ("leg", "whole") and rng.random() < 0.2)
        if tight:  # a spine-only reconstruction (VerSe style): tight around the vertebrae
            cx, cy = spine[0] + rng.uniform(-8, 8), spine[1] + rng.uniform(5, 25)
            ex, ey = rng.uniform(90, 170), rng.uniform(100, 170)
        else:
            half = max(a, b) if fov != "leg" else a
            extent = float(np.clip(2 * half + rng.uniform(20, 120), 200, 500))
            cx = spine[0] + rng.uniform(-15, 15)
            cy = spine[1] + back - b + rng.uniform(-10, 25)
            ex = ey = extent
        centre = np.array([cx, cy, zm])
        size = np.array([ex, ey, z1 - z0])
    if orientation is None:
        orientation = "random" if spacing_mm is None else "axial"
    if orientation == "random" and roi_lps is None:
        kind, P, perm, signs = draw_orientation(rng)
    elif roi_lps is None:
        kind, P, perm, signs = "axial", np.eye(3), (0, 1, 2), (1, 1, 1)
    if spacing_mm is None:
        sp_xyz = np.array(draw_spacing(rng, float(max(size[0], size[1])), float(size[2]), tight))
        if tight and rng.random() < 0.6:  # thick axis in any direction (issue 7)
            sp_xyz = sp_xyz[rng.permutation(3)]
        spacing = tuple(
            float(sp_xyz[perm[c]]) for c in range(3)
        )  # output axis c along LPS axis perm[c]
    else:
        spacing = tuple(float(s) for s in spacing_mm)
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"spacing_mm must be three positive numbers, got {spacing_mm!r}")
    spacing_arr = np.array(spacing)
    size_out = np.array([max(int(round(size[perm[c]] / spacing_arr[c])), 1) for c in range(3)])
    if spacing_mm is not None and float(np.prod(size_out.astype(float))) > MAX_GIVEN_VOXELS:
        raise ValueError(
            f"a {spacing_mm!r} mm spacing gives this field of view "
            f"{' x '.join(str(int(n)) for n in size_out)} voxels (more than "
            f"{MAX_GIVEN_VOXELS // 1_000_000} million); choose a coarser spacing"
        )
    origin = centre - P @ ((size_out - 1) / 2 * spacing_arr)
    if kind != "oblique":
        sp_lps = np.array([spacing[perm.index(a_)] for a_ in range(3)])
        n_lps = np.array([size_out[perm.index(a_)] for a_ in range(3)])
        corner = np.array(
            [
                origin[a_]
                if signs[perm.index(a_)] > 0
                else origin[a_] - (n_lps[a_] - 1) * sp_lps[a_]
                for a_ in range(3)
            ]
        )
        render = Grid(tuple(int(n) for n in n_lps[::-1]), tuple(corner), tuple(sp_lps))
        return ScanGeometry(
            spacing, tuple(int(n) for n in size_out), P, origin, render, perm, signs, kind, tight
        )
    corners = np.array(
        [
            origin + P @ (np.array([i, j, k]) * (size_out - 1) * spacing_arr)
            for i in (0, 1)
            for j in (0, 1)
            for k in (0, 1)
        ]
    )
    sp_lps = np.array([spacing[int(np.argmax(np.abs(P[a_])))] for a_ in range(3)])
    lo, hi = corners.min(0) - sp_lps, corners.max(0) + sp_lps
    n_lps = np.ceil((hi - lo) / sp_lps).astype(int) + 1
    render = Grid(tuple(int(n) for n in n_lps[::-1]), tuple(lo), tuple(sp_lps))
    return ScanGeometry(
        spacing, tuple(int(n) for n in size_out), P, origin, render, None, None, kind, tight
    )
