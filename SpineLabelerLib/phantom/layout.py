"""Where each vertebra sits: the spine's centre curve and a local frame per level.

The curve runs through the vertebral body centres from C1 down to the coccyx. Its
sagittal angle changes at a constant rate inside each region (cervical lordosis,
thoracic kyphosis, lumbar lordosis, sacral kyphosis), so the drawn Cobb-like angles are
the total turn of each region; scoliosis adds a lateral sine bump of the drawn Cobb
angle and rotates the vertebrae axially towards the convexity. Model coordinates: LPS mm
with the centre of C1 at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.phantom.field import Frame
from SpineLabelerLib.phantom.subject import LevelShape, Subject

SACRAL_SEGMENTS = 5


@dataclass
class Pose:
    """One vertebra (or sacral segment) placed in the model: shape and frame."""

    shape: LevelShape | None  # None for sacral segments
    name: str
    frame: Frame
    s_mm: float  # arc length of the body centre from C1's centre
    height_mm: float = 0.0  # body height (sacral segments: the fused segment's height)


@dataclass
class SpineLayout:
    poses: list[Pose]  # free vertebrae, cranial to caudal
    sacrum: list[Pose]  # S1.. segments (the sacralized L5 first when there is one)
    curve_s: np.ndarray  # (N,) arc length, mm
    curve_xyz: np.ndarray  # (N, 3) LPS mm

    def by_label(self) -> dict[int, Pose]:
        return {p.shape.label: p for p in self.poses if p.shape is not None}

    def point_at_z(self, z: np.ndarray) -> np.ndarray:
        """(N, 3) curve point at each patient height z (mm); the curve is monotonic in z."""
        zs = self.curve_xyz[::-1, 2]
        return np.stack([np.interp(z, zs, self.curve_xyz[::-1, c]) for c in range(3)], axis=-1)


def _arc_positions(
    levels: list[LevelShape], sacral_heights: list[float], sacral_gaps: list[float]
) -> list[float]:
    s, out = 0.0, []
    prev_half, prev_gap = None, 0.0
    heights = [
        lv.body_h * (1 - lv.fracture_loss if lv.fracture == "crush" else 1.0) for lv in levels
    ]
    gaps = [lv.gap_below for lv in levels]
    for h, g in zip(heights + sacral_heights, gaps + sacral_gaps):
        if prev_half is not None:
            s += prev_half + prev_gap + h / 2
        out.append(s)
        prev_half, prev_gap = h / 2, g
    return out


def _curvature(
    s: np.ndarray, bounds: dict[str, tuple[float, float]], subject: Subject
) -> np.ndarray:
    """Rate of change of the sagittal angle (rad/mm) along the curve; positive = lordotic."""
    k = np.zeros_like(s)
    turns = {
        "cervical": np.deg2rad(subject.lordosis_cervical_deg),
        "thoracic": -np.deg2rad(subject.kyphosis_thoracic_deg),
        "lumbar": np.deg2rad(subject.lordosis_lumbar_deg),
        "sacral": -np.deg2rad(45.0),
    }
    for region, (a, b) in bounds.items():
        inside = (s >= a) & (s < b)
        k[inside] = turns[region] / max(b - a, 1.0)
    return k


def _scoliosis_offset(
    s: np.ndarray, bounds: dict[str, tuple[float, float]], sc: dict | None
) -> tuple[np.ndarray, list]:
    """Lateral offset (mm) of the curve; a half sine of span L has Cobb angle 2 atan(pi A / L)."""
    x = np.zeros_like(s)
    if not sc:
        return x, []
    t0, t1 = bounds["thoracic"]
    l0, l1 = bounds["lumbar"]
    spans = {
        "thoracic": [(t0 + 0.15 * (t1 - t0), t1 - 0.05 * (t1 - t0), 1.0)],
        "thoracolumbar": [(t0 + 0.5 * (t1 - t0), l0 + 0.6 * (l1 - l0), 1.0)],
        "lumbar": [(l0 - 0.1 * (t1 - t0), l1, 1.0)],
        "double": [
            (t0 + 0.1 * (t1 - t0), t1 - 0.05 * (t1 - t0), 1.0),
            (t1 - 0.05 * (t1 - t0), l1, -1.0),
        ],
    }[sc["apex"]]
    for a, b, sign in spans:
        span = b - a
        amp = span / np.pi * np.tan(np.deg2rad(sc["cobb_deg"]) / 2)
        inside = (s >= a) & (s <= b)
        x[inside] += sign * sc["side"] * amp * np.sin(np.pi * (s[inside] - a) / span)
    return x, spans


def build_layout(subject: Subject, rng: np.random.Generator) -> SpineLayout:
    """Place every vertebra and the sacrum along a curve drawn for the subject."""
    levels = subject.levels
    last = levels[-1]
    n_sac = SACRAL_SEGMENTS + (1 if subject.sacral_transitional else 0)
    sac_h = [last.body_h * f for f in np.linspace(1.0, 0.45, n_sac)]
    sac_gap = [1.5] * n_sac
    if subject.sacral_transitional:
        sac_gap[0] = 4.0  # rudimentary disc between the sacralized L5 and S1
    last.gap_below = (
        10.0 * subject.size_scale if not subject.sacral_transitional else last.gap_below
    )
    s_centres = _arc_positions(levels, sac_h, sac_gap)
    names = [lv.name for lv in levels]
    idx = {n: i for i, n in enumerate(names)}
    s_end = s_centres[-1] + sac_h[-1]
    bounds = {
        "cervical": (s_centres[idx["C2"]], s_centres[idx["T1"]] - levels[idx["T1"]].body_h / 2),
        "thoracic": (
            s_centres[idx["T1"]] - levels[idx["T1"]].body_h / 2,
            s_centres[idx["L1"]] - levels[idx["L1"]].body_h / 2,
        ),
        "lumbar": (
            s_centres[idx["L1"]] - levels[idx["L1"]].body_h / 2,
            s_centres[len(levels)] - sac_h[0] / 2,
        ),
        "sacral": (s_centres[len(levels)] - sac_h[0] / 2, s_end + 1),
    }
    s = np.arange(-40.0, s_end + 40.0, 1.0)
    kappa = _curvature(s, bounds, subject)
    theta = np.cumsum(kappa)  # sagittal angle of the downward tangent: + heads posteriorly
    theta -= np.interp(0.0, s, theta) + np.deg2rad(subject.lordosis_cervical_deg) / 2
    y = np.cumsum(np.sin(theta))
    z = -np.cumsum(np.cos(theta))
    x, _ = _scoliosis_offset(s, bounds, subject.scoliosis)
    xyz = np.stack([x, y, z], axis=1)
    xyz -= np.array([np.interp(0.0, s, xyz[:, c]) for c in range(3)])
    tangent = np.gradient(xyz, s, axis=0)
    rot_max = 0.0 if not subject.scoliosis else np.deg2rad(subject.scoliosis["cobb_deg"] * 0.4)
    x_amp = max(np.abs(x).max(), 1e-6)

    def frame_at(sc: float) -> Frame:
        p = np.array([np.interp(sc, s, xyz[:, c]) for c in range(3)])
        sup = -np.array([np.interp(sc, s, tangent[:, c]) for c in range(3)])
        sup /= np.linalg.norm(sup)
        post = np.array([0.0, 1.0, 0.0]) - sup[1] * sup
        post /= np.linalg.norm(post)
        left = np.cross(post, sup)
        # axial rotation towards the convexity, proportional to the lateral deviation
        ang = rot_max * np.interp(sc, s, x) / x_amp * rng.uniform(0.8, 1.2) if rot_max else 0.0
        c, si = np.cos(ang), np.sin(ang)
        left, post = c * left + si * post, -si * left + c * post
        return Frame(origin=p, axes=np.stack([left, post, sup], axis=1))

    poses = [Pose(lv, lv.name, frame_at(sc), sc, lv.body_h) for lv, sc in zip(levels, s_centres)]
    sac_names = (["L5"] if subject.sacral_transitional else []) + [
        f"S{i}" for i in range(1, SACRAL_SEGMENTS + 1)
    ]
    sacrum = [
        Pose(None, n, frame_at(sc), sc, h)
        for n, sc, h in zip(sac_names, s_centres[len(levels) :], sac_h)
    ]
    return SpineLayout(poses=poses, sacrum=sacrum, curve_s=s, curve_xyz=xyz)
