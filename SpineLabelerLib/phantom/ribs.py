"""Rib centre lines: from the costovertebral joint at the body, past the transverse
process tip, then along the chest wall, sloping down towards the front.

Rib n follows the chest-cavity ellipse at its height (``body.thorax_cavity``); how far
round it reaches and how much it drops depend on n (PHANTOM.md: the first rib short and
tightly curved, 2-7 reaching the sternum through cartilage, 11-12 short and floating).
A cervical rib (on C7) and a lumbar rib (on L1) are short stubs.
"""

from __future__ import annotations

import numpy as np

from SpineLabelerLib.phantom.body import TRUNK_SHIFT, BodyModel, thorax_cavity
from SpineLabelerLib.phantom.layout import Pose
from SpineLabelerLib.phantom.sdf import FlatCapsule, Primitive
from SpineLabelerLib.phantom.vertebra import canal_centre_v

# rib number -> (how far round the chest it reaches from the back, degrees; drop, mm)
_REACH = {1: (150, 18), 2: (155, 35), 3: (158, 50), 4: (160, 60), 5: (160, 68), 6: (158, 74),
          7: (155, 78), 8: (142, 75), 9: (132, 70), 10: (120, 62), 11: (92, 40), 12: (62, 22)}  # fmt: skip


def rib_number(pose: Pose) -> int:
    """1-12 for T1-T12 (13 for a lumbar rib, 0 for a cervical rib)."""
    name = pose.name
    return int(name[1:]) if name[0] == "T" else (0 if name[0] == "C" else 13)


def rib_path(
    pose: Pose, side: int, body: BodyModel, spine_xy: np.ndarray
) -> tuple[np.ndarray, int]:
    """(N, 3) LPS points of one rib's centre line, and where its bony part ends (the rest,
    up to the sternum, is costal cartilage)."""
    sh, F = pose.shape, pose.frame
    vc = canal_centre_v(sh)
    n = rib_number(pose)
    # ribs 2-9 articulate with two bodies, at the disc above their own; 1 and 10-12 with one
    head_w = 0.5 * sh.body_h + 0.5 * sh.gap_above if 2 <= n <= 9 else 0.3 * sh.body_h
    head = F.to_lps(np.array([side * (0.8 * sh.body_w / 2 + 4.0), 0.55 * sh.body_d / 2, head_w]))[0]
    tub = F.to_lps(
        np.array([side * (sh.tp_span / 2 - 2.0), vc + 12.0 - sh.tp_r - 4.5, 0.25 * sh.body_h + 2.0])
    )[0]
    if n == 0:
        reach, drop = 55.0, 12.0
    elif n == 13:
        reach, drop = 45.0, 10.0
    else:
        reach, drop = _REACH[n]
    z = float(tub[2])
    a, b, back, fat = body.at(z)
    sy = float(spine_xy[1])
    sx = TRUNK_SHIFT * float(spine_xy[0])  # the chest wall centre, like body.paint_body
    cy, ca, cb = thorax_cavity(body, z, a, b, fat, sy)
    A, B = ca + 7.0, cb + 7.0
    lateral = abs(tub[0] - sx) + 12.0
    psi0 = np.arcsin(min(lateral / A, 0.97))
    # the rib's back turns round behind the tubercle: start where the ellipse is at least as posterior
    psi0 = min(psi0, np.arccos(np.clip((tub[1] + 6.0 - cy) / B, -1, 1)) + 0.05)
    psi1 = np.deg2rad(reach * (0.6 if n in (0, 13) else 1.0))
    psi_cart = np.deg2rad(172.0) if 1 <= n <= 7 else psi1
    psis = np.linspace(psi0, psi_cart, max(int(np.degrees(psi_cart - psi0) / 7), 3))
    frac = (psis - psi0) / max(psi1 - psi0, 1e-6)
    zs = tub[2] - drop * np.clip(frac, 0, 1.15) ** 1.2
    wall = np.stack([sx + side * A * np.sin(psis), cy + B * np.cos(psis), zs], axis=1)
    if n in (0, 13):
        wall = wall[: max(3, len(wall) // 2)]
    pts = np.vstack([head, tub, wall])
    bony = 2 + int(np.searchsorted(psis, psi1)) if 1 <= n <= 7 else len(pts)
    return pts, min(bony, len(pts))


def rib_segments(points: np.ndarray, number: int, scale: float) -> list[Primitive]:
    """Flat tubes (about 10 x 5 mm, taller than thick) along a rib's centre line."""
    parts: list[Primitive] = []
    for i, (a, b) in enumerate(zip(points[:-1], points[1:])):
        if i == 0:
            r1, r2 = 4.0, 3.5  # round neck near the head
        elif number in (1, 0, 13):
            r1, r2 = 3.5, 3.0
        else:
            r1, r2 = 5.2, 2.6
        parts.append(FlatCapsule(tuple(a), tuple(b), r1 * scale, r2 * scale, n1=(0.0, 0.0, 1.0)))
    return parts
