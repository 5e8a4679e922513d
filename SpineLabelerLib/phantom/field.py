"""The render grid and local distance fields.

The phantom is drawn on an axis-aligned LPS grid (identity direction; index axis i runs
to patient Left, j to Posterior, k to Superior), so that a horizontal slice has one
patient height and the body outline is evaluated slice by slice. Each shape is
evaluated in its own small box of that grid (``Field``), in the local frame of the
thing it belongs to, and only there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.phantom.sdf import Primitive

FAR_MM = np.float32(60.0)  # distance stored where no primitive is near ("outside")
NARROW_BAND_MIN_VOXELS = 400_000  # below this, evaluating every voxel is cheaper

Box = tuple[slice, slice, slice]  # (k, j, i) slices into a grid array


@dataclass(frozen=True)
class Grid:
    """Axis-aligned LPS grid: ``shape`` (K, J, I); ``origin_lps``/``spacing_mm`` (i, j, k)."""

    shape: tuple[int, int, int]
    origin_lps: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]

    def axis_mm(self, axis: int) -> np.ndarray:
        """LPS coordinate (mm) of every voxel centre along index axis 0=i (x), 1=j (y), 2=k (z)."""
        n = self.shape[2 - axis]
        return (self.origin_lps[axis] + self.spacing_mm[axis] * np.arange(n)).astype(np.float32)

    def box_of(self, lo_lps: np.ndarray, hi_lps: np.ndarray) -> Box | None:
        """Smallest (k, j, i) box of voxels whose centres can lie in [lo, hi] (LPS mm)."""
        o, s = np.asarray(self.origin_lps), np.asarray(self.spacing_mm)
        a = np.floor((np.asarray(lo_lps) - o) / s).astype(int)
        b = np.ceil((np.asarray(hi_lps) - o) / s).astype(int) + 1
        size = np.array(self.shape[::-1])
        a, b = np.clip(a, 0, size), np.clip(b, 0, size)
        if np.any(b <= a):
            return None
        return (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))


@dataclass(frozen=True)
class Frame:
    """A local frame: ``origin`` (LPS mm) and ``axes`` whose columns are the LPS unit
    vectors of local u (left), v (posterior), w (superior)."""

    origin: np.ndarray
    axes: np.ndarray

    def to_lps(self, local: np.ndarray) -> np.ndarray:
        """``(N, 3)`` local mm to ``(N, 3)`` LPS mm."""
        return np.atleast_2d(local) @ self.axes.T + self.origin

    def to_local(self, lps: np.ndarray) -> np.ndarray:
        return (np.atleast_2d(lps) - self.origin) @ self.axes


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array(
        [
            [(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]]
            for a in (0, 1)
            for b in (0, 1)
            for c in (0, 1)
        ]
    )


class Field:
    """Signed distance of one object (a vertebra, a rib) over a box of the grid.

    ``sdf``: the distance over the box, ``FAR_MM`` where nothing was added. Parts are unions, holes are subtractions, each
    evaluated only inside its own bounding box (plus ``margin`` mm).
    """

    def __init__(self, grid: Grid, frame: Frame, box: Box, margin: float = 4.0) -> None:
        self.grid, self.frame, self.box, self.margin = grid, frame, box, margin
        self.start = np.array([box[2].start, box[1].start, box[0].start])  # (i, j, k)
        xs = [grid.axis_mm(a)[(box[2], box[1], box[0])[a]] - frame.origin[a] for a in range(3)]
        ax = frame.axes.astype(np.float32)
        # local = axes^T (p - origin) is a sum of three 1D ramps; coordinates are built
        # only inside each part's own sub-box.
        self._ramps = [(xs[2] * ax[2, c], xs[1] * ax[1, c], xs[0] * ax[0, c]) for c in range(3)]
        self.sdf = np.full((len(xs[2]), len(xs[1]), len(xs[0])), FAR_MM, np.float32)

    def coords(self, sub: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local (u, v, w) mm of the voxel centres of a sub-box of this field."""
        return tuple(  # type: ignore[return-value]
            rk[sub[0]][:, None, None] + rj[sub[1]][None, :, None] + ri[sub[2]][None, None, :]
            for rk, rj, ri in self._ramps
        )

    @classmethod
    def around(
        cls, grid: Grid, frame: Frame, parts: list[Primitive], margin: float = 4.0
    ) -> Field | None:
        """A field whose box holds every part (plus margin); None if it misses the grid."""
        lo = np.min([p.bounds()[0] for p in parts], axis=0) - margin
        hi = np.max([p.bounds()[1] for p in parts], axis=0) + margin
        lps = frame.to_lps(_corners(lo, hi))
        box = grid.box_of(lps.min(0), lps.max(0))
        return None if box is None else cls(grid, frame, box, margin)

    def _sub(self, prim: Primitive) -> Box | None:
        lo, hi = prim.bounds()
        lps = self.frame.to_lps(
            _corners(np.asarray(lo) - self.margin, np.asarray(hi) + self.margin)
        )
        o, s = np.asarray(self.grid.origin_lps), np.asarray(self.grid.spacing_mm)
        a = np.floor((lps.min(0) - o) / s).astype(int) - self.start
        b = np.ceil((lps.max(0) - o) / s).astype(int) + 1 - self.start
        size = np.array(self.sdf.shape[::-1])
        a, b = np.clip(a, 0, size), np.clip(b, 0, size)
        if np.any(b <= a):
            return None
        return (slice(a[2], b[2]), slice(a[1], b[1]), slice(a[0], b[0]))

    def add(self, prim: Primitive, narrow_band: bool = False) -> None:
        """Union with a part. ``narrow_band``: for big thin shapes (skull, iliac wings),
        evaluate exactly only near the surface (see ``_add_narrow``)."""
        sub = self._sub(prim)
        if sub is None:
            return
        if narrow_band and np.prod([sl.stop - sl.start for sl in sub]) > NARROW_BAND_MIN_VOXELS:
            self._add_narrow(prim, sub)
            return
        d = prim(*self.coords(sub))
        np.minimum(self.sdf[sub], d, out=self.sdf[sub])

    def _add_narrow(self, prim: Primitive, sub: Box, step: int = 4) -> None:
        """Evaluate on every ``step``-th voxel first; blocks whose coarse distance is farther
        from the surface than a block diagonal (+ margin) are settled from it (outside:
        untouched, deep inside: the coarse value), only the rest is evaluated per voxel."""
        ks, js, is_ = (np.arange(sl.start, sl.stop) for sl in sub)
        coarse = [a[::step] for a in (ks, js, is_)]
        ramps = self._ramps
        cu, cv, cw = (
            rk[coarse[0]][:, None, None]
            + rj[coarse[1]][None, :, None]
            + ri[coarse[2]][None, None, :]
            for rk, rj, ri in ramps
        )
        d_coarse = prim(cu, cv, cw)
        # approximate distances are not exactly 1-Lipschitz: a generous band
        reach = np.float32(1.5 * step * np.sqrt(3.0) * max(self.grid.spacing_mm) + self.margin)
        near = np.abs(d_coarse) < reach
        deep = d_coarse <= -reach
        shape = (len(ks), len(js), len(is_))

        def expand(block: np.ndarray) -> np.ndarray:
            full = block.repeat(step, 0).repeat(step, 1).repeat(step, 2)
            return full[: shape[0], : shape[1], : shape[2]]

        view = self.sdf[sub]
        if deep.any():
            inside = expand(deep)
            np.minimum(view, np.where(inside, expand(d_coarse), FAR_MM), out=view)
        idx = np.nonzero(expand(near))
        if idx[0].size:
            u, v, w = (rk[ks[idx[0]]] + rj[js[idx[1]]] + ri[is_[idx[2]]] for rk, rj, ri in ramps)
            view[idx] = np.minimum(view[idx], prim(u, v, w))

    def cut(self, prim: Primitive) -> None:
        """Subtract a hole (a canal, a foramen)."""
        sub = self._sub(prim)
        if sub is not None:
            d = prim(*self.coords(sub))
            np.maximum(self.sdf[sub], -d, out=self.sdf[sub])

    def overlap(self, other: Field) -> tuple[Box, Box] | None:
        """Matching sub-boxes of ``self.sdf`` and ``other.sdf`` over their common voxels."""
        a = np.maximum(self.start, other.start)
        b = np.minimum(self.start + self.sdf.shape[::-1], other.start + other.sdf.shape[::-1])
        if np.any(b <= a):
            return None
        mine = tuple(slice(a[c] - self.start[c], b[c] - self.start[c]) for c in (2, 1, 0))
        theirs = tuple(slice(a[c] - other.start[c], b[c] - other.start[c]) for c in (2, 1, 0))
        return mine, theirs  # type: ignore[return-value]
