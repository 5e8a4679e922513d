"""Signed-distance primitives (mm) in a vertebra's or organ's local frame.

Every shape of the phantom is a union / difference of these. Each primitive knows its
local bounding box, so it is evaluated only on the voxels near it (see ``field.Field``),
which keeps a whole spine at 1 mm down to seconds. Negative inside, positive outside;
the ellipsoidal distances are first-order approximations (exact on the surface, good to
a fraction of a mm within a few mm of it), which is what shell thickness and soft edges need.

Coordinates ``u, v, w`` are float32 arrays of the same (broadcastable) shape: in a
vertebra frame u = patient left, v = posterior, w = superior (mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_EPS = np.float32(1e-6)

Vec = tuple[float, float, float]


def f32(x: float) -> np.float32:
    """A float32 scalar, so that array arithmetic stays float32."""
    return np.float32(x)


def ellipsoid_distance(x: np.ndarray, y: np.ndarray, z: np.ndarray, r: Vec) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid of semi-axes ``r`` at 0."""
    rx, ry, rz = (f32(c) for c in r)
    k0 = np.sqrt((x / rx) ** 2 + (y / ry) ** 2 + (z / rz) ** 2)
    k1 = np.sqrt((x / (rx * rx)) ** 2 + (y / (ry * ry)) ** 2 + (z / (rz * rz)) ** 2) + _EPS
    # the first-order formula tends to 0 at the centre; inside, (k0 - 1) * r_min bounds it
    return np.where(
        k0 < 1, np.minimum(k0 * (k0 - 1) / k1, (k0 - 1) * min(rx, ry, rz)), k0 * (k0 - 1) / k1
    )


def ellipse2d_distance(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance to the ellipse x²/a² + y²/b² = 1 (2D, mm)."""
    a, b = f32(a), f32(b)
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2) + _EPS
    return np.where(
        k0 < 1, np.minimum(k0 * (k0 - 1) / k1, (k0 - 1) * min(a, b)), k0 * (k0 - 1) / k1
    )


def extrude(d2: np.ndarray, h: np.ndarray, rounding: float = 0.0) -> np.ndarray:
    """Combine an in-plane distance ``d2`` and an axial distance ``h`` (|w|-half height)
    into the distance to the extruded solid, edges rounded by ``rounding`` mm."""
    r = f32(rounding)
    a = d2 + r
    b = h + r
    inside = np.minimum(np.maximum(a, b), 0)
    outside = np.sqrt(np.maximum(a, 0) ** 2 + np.maximum(b, 0) ** 2)
    return inside + outside - r


def canal_distance(
    u: np.ndarray, v: np.ndarray, cv: float, radii: tuple[float, float], triangular: bool
) -> np.ndarray:
    """Distance to the spinal canal's outline: an ellipse, or (lumbar) the ellipse cut by a
    triangle whose base is the body's back and whose apex points to the spinous process."""
    a, b = radii
    if not triangular:
        return ellipse2d_distance(u, v - f32(cv), a, b)
    d_ell = ellipse2d_distance(u, v - f32(cv), 1.15 * a, 1.05 * b)
    v0, base = (
        f32(cv - b),
        1.45 * a,
    )  # triangle: base half-width 1.45 a at the front, apex 2 b behind
    norm = f32(np.hypot(2 * b, base))
    d_tri = (f32(2 * b) * np.abs(u) + f32(base) * (v - v0) - f32(2 * base * b)) / norm
    return np.maximum(d_ell, d_tri)


class Primitive:
    """A shape with a local bounding box ``bounds() -> (lo, hi)`` and a distance ``__call__``."""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(
        self, u: np.ndarray, v: np.ndarray, w: np.ndarray
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


@dataclass
class Ellipsoid(Primitive):
    center: Vec
    radii: Vec

    def bounds(self):
        c, r = np.asarray(self.center), np.asarray(self.radii)
        return c - r, c + r

    def __call__(self, u, v, w):
        cx, cy, cz = (f32(c) for c in self.center)
        return ellipsoid_distance(u - cx, v - cy, w - cz, self.radii)


@dataclass
class Capsule(Primitive):
    """Segment a-b swept by a sphere whose radius goes linearly from ``ra`` to ``rb``."""

    a: Vec
    b: Vec
    ra: float
    rb: float | None = None

    def bounds(self):
        a, b = np.asarray(self.a), np.asarray(self.b)
        r = max(self.ra, self.rb if self.rb is not None else self.ra)
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def __call__(self, u, v, w):
        a = np.asarray(self.a, np.float32)
        ba = np.asarray(self.b, np.float32) - a
        pu, pv, pw = u - a[0], v - a[1], w - a[2]
        t = np.clip((pu * ba[0] + pv * ba[1] + pw * ba[2]) / f32(ba @ ba + 1e-9), 0, 1)
        d = np.sqrt((pu - t * ba[0]) ** 2 + (pv - t * ba[1]) ** 2 + (pw - t * ba[2]) ** 2)
        rb = self.ra if self.rb is None else self.rb
        return d - (f32(self.ra) + t * f32(rb - self.ra))


@dataclass
class FlatCapsule(Primitive):
    """Segment a-b swept by an ellipse: semi-axis ``r1`` along ``n1`` (made orthogonal to
    the segment), ``r2`` across. Ribs (tall, thin), lumbar transverse processes."""

    a: Vec
    b: Vec
    r1: float
    r2: float
    n1: Vec = (0.0, 0.0, 1.0)
    _axes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.b, float) - np.asarray(self.a, float)
        t /= np.linalg.norm(t) + 1e-12
        n1 = np.asarray(self.n1, float)
        n1 = n1 - (n1 @ t) * t
        if np.linalg.norm(n1) < 1e-6:  # n1 parallel to the segment: any normal will do
            n1 = np.cross(t, [1.0, 0.0, 0.0] if abs(t[0]) < 0.9 else [0.0, 1.0, 0.0])
        n1 /= np.linalg.norm(n1)
        self._axes = np.stack([t, n1, np.cross(t, n1)]).astype(np.float32)

    def bounds(self):
        a, b = np.asarray(self.a), np.asarray(self.b)
        r = max(self.r1, self.r2)
        return np.minimum(a, b) - r, np.maximum(a, b) + r

    def __call__(self, u, v, w):
        a = np.asarray(self.a, np.float32)
        length = f32(np.linalg.norm(np.asarray(self.b, float) - np.asarray(self.a, float)))
        t_ax, n1, n2 = self._axes
        pu, pv, pw = u - a[0], v - a[1], w - a[2]
        along = pu * t_ax[0] + pv * t_ax[1] + pw * t_ax[2]
        d0 = along - np.clip(along, 0, length)
        d1 = pu * n1[0] + pv * n1[1] + pw * n1[2]
        d2 = pu * n2[0] + pv * n2[1] + pw * n2[2]
        return ellipsoid_distance(d0, d1, d2, (self.r2, self.r1, self.r2))


@dataclass
class RoundBox(Primitive):
    """Box of half-sizes ``half`` at ``center``, rotated by ``tilt_deg`` about the u axis
    (positive tilts its +v end downwards), edges rounded by ``rounding``."""

    center: Vec
    half: Vec
    rounding: float = 1.0
    tilt_deg: float = 0.0

    def bounds(self):
        t = np.deg2rad(self.tilt_deg)
        hu, hv, hw = self.half
        ext = np.array(
            [
                hu,
                abs(np.cos(t)) * hv + abs(np.sin(t)) * hw,
                abs(np.sin(t)) * hv + abs(np.cos(t)) * hw,
            ]
        )
        c = np.asarray(self.center)
        return c - ext, c + ext

    def __call__(self, u, v, w):
        c = np.asarray(self.center, np.float32)
        t = np.deg2rad(self.tilt_deg)
        ct, st = f32(np.cos(t)), f32(np.sin(t))
        x = u - c[0]
        y0, z0 = v - c[1], w - c[2]
        y = ct * y0 - st * z0
        z = st * y0 + ct * z0
        r = f32(self.rounding)
        qx = np.abs(x) - f32(self.half[0]) + r
        qy = np.abs(y) - f32(self.half[1]) + r
        qz = np.abs(z) - f32(self.half[2]) + r
        outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2 + np.maximum(qz, 0) ** 2)
        return outside + np.minimum(np.maximum(np.maximum(qx, qy), qz), 0) - r


@dataclass
class EllipticColumn(Primitive):
    """Elliptic cylinder along w: centre ``(cu, cv)``, semi-axes ``(a, b)``, w in [w0, w1]."""

    cu: float
    cv: float
    a: float
    b: float
    w0: float
    w1: float
    rounding: float = 0.5

    def bounds(self):
        return (
            np.array([self.cu - self.a, self.cv - self.b, self.w0]),
            np.array([self.cu + self.a, self.cv + self.b, self.w1]),
        )

    def __call__(self, u, v, w):
        d2 = ellipse2d_distance(u - f32(self.cu), v - f32(self.cv), self.a, self.b)
        mid, half = f32(0.5 * (self.w0 + self.w1)), f32(0.5 * (self.w1 - self.w0))
        return extrude(d2, np.abs(w - mid) - half, min(self.rounding, 0.5 * min(self.a, self.b)))


@dataclass
class CanalColumn(Primitive):
    """The spinal canal of one vertebra as a hole: ``canal_distance`` extruded along w."""

    cv: float
    radii: tuple[float, float]
    w0: float
    w1: float
    triangular: bool = False

    def bounds(self):
        a, b = self.radii
        return np.array([-1.15 * a, self.cv - 1.05 * b, self.w0]), np.array(
            [1.15 * a, self.cv + 1.05 * b, self.w1]
        )

    def __call__(self, u, v, w):
        d2 = canal_distance(u, v, self.cv, self.radii, self.triangular)
        mid, half = f32(0.5 * (self.w0 + self.w1)), f32(0.5 * (self.w1 - self.w0))
        return extrude(d2, np.abs(w - mid) - half, 0.5)


@dataclass
class VertebralBody(Primitive):
    """Elliptic body (width ``2a``, depth ``2b``, height ``2h``) with a flattened posterior
    wall, a slight waist, concave endplates and an optional fracture.

    ``fracture``: None | "wedge" (anterior height lost) | "biconcave" (centre lost) |
    "crush" (all lost), by the fraction ``loss`` of the height.
    """

    a: float
    b: float
    h: float
    concavity: float = 1.2
    rounding: float = 2.0
    fracture: str | None = None
    loss: float = 0.0
    notch: bool = False

    def bounds(self):
        return np.array([-self.a, -self.b, -self.h]), np.array([self.a, self.b, self.h])

    def __call__(self, u, v, w):
        a, b, h = f32(self.a), f32(self.b), f32(self.h)
        waist = f32(0.93) + f32(0.07) * np.minimum((w / h) ** 2, 1)
        d2 = ellipse2d_distance(u / waist, v / waist, self.a, self.b) * waist
        d2 = np.maximum(d2, v - f32(0.85) * b)  # flat posterior wall facing the canal
        if self.notch:  # kidney-shaped section: the posterior wall bows into the body
            notch = ellipse2d_distance(
                u, v - f32(0.85) * b - f32(0.2) * b, 0.45 * self.a, 0.3 * self.b
            )
            d2 = np.maximum(d2, -notch)
        rho2 = np.clip((u / a) ** 2 + (v / b) ** 2, 0, 1)
        conc = f32(self.concavity)
        half = np.full_like(u, h) if np.ndim(u) else h
        if self.fracture == "wedge":
            half = h * (1 - f32(self.loss) * np.clip((b - v) / (2 * b), 0, 1))
        elif self.fracture == "crush":
            half = h * (1 - f32(self.loss))
        elif self.fracture == "biconcave":
            conc = conc + f32(self.loss) * h
        half = half - conc * (1 - rho2)
        return extrude(d2, np.abs(w) - half, self.rounding)


@dataclass
class EllipticRing(Primitive):
    """Neural arch: the ring between an inner ellipse (the canal) and an outer one, in the
    (u, v) plane, extruded along w over ``[wc - h, wc + h]``, the centre sloping down by
    ``slope`` mm per mm towards posterior; only the part with v >= ``v_min`` is kept."""

    cv: float
    inner: tuple[float, float]
    outer: tuple[float, float]
    outer_cv: float
    wc: float
    h: float
    slope: float = 0.0
    v_min: float = -1e3
    triangular: bool = False  # lumbar canal: a triangle with its apex under the spinous process
    front_cap: float = 1e3  # in front of the canal (over the body) stay within |w| <= front_cap

    def bounds(self):
        a, b = self.outer
        return (
            np.array(
                [-a, max(self.outer_cv - b, self.v_min), self.wc - self.h - abs(self.slope) * 2 * b]
            ),
            np.array([a, self.outer_cv + b, self.wc + self.h + abs(self.slope) * 2 * b]),
        )

    def __call__(self, u, v, w):
        d_out = ellipse2d_distance(u, v - f32(self.outer_cv), *self.outer)
        d_in = canal_distance(u, v, self.cv, self.inner, self.triangular)
        d2 = np.maximum(np.maximum(d_out, -d_in), f32(self.v_min) - v)
        centre = f32(self.wc) - f32(self.slope) * (v - f32(self.cv))
        d = extrude(d2, np.abs(w - centre) - f32(self.h), 1.0)
        front = v < f32(self.cv - self.inner[1])
        return np.where(front, np.maximum(d, np.abs(w) - f32(self.front_cap)), d)
