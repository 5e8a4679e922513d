"""Bones that are not vertebrae but tell a network where it is: skull base and mandible
above C1, clavicles, scapulae and sternum around C7-T9, pelvis (iliac wings whose crests
reach the L4/L5 disc, acetabula, pubis, ischia) and the upper femurs below the sacrum.

All are label 0 (context, not vertebrae) and are painted before the spine, which is
painted over them. Positions are relative to landmark vertebrae (mm, LPS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.phantom import tissues as T
from SpineLabelerLib.phantom.body import TRUNK_SHIFT, BodyModel, thorax_cavity
from SpineLabelerLib.phantom.canvas import Canvas
from SpineLabelerLib.phantom.field import Field, Frame
from SpineLabelerLib.phantom.layout import SpineLayout
from SpineLabelerLib.phantom.sdf import (
    Capsule,
    Ellipsoid,
    Primitive,
    RoundBox,
    ellipsoid_distance,
    f32,
)
from SpineLabelerLib.phantom.subject import Subject
from SpineLabelerLib.phantom.tissues import TissueHU


@dataclass
class SkullShell(Primitive):
    """Cranial vault: an ellipsoidal shell ``thickness`` mm thick above a base plane that
    rises anteriorly, with a foramen magnum over the canal; local frame at C1's centre."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    thickness: float
    base_w: float
    foramen: tuple[float, float, float]  # (v centre, radius u, radius v)

    def bounds(self):
        c, r = np.asarray(self.center), np.asarray(self.radii)
        return c - r, c + r

    def __call__(self, u, v, w):
        cu, cv, cw = (f32(x) for x in self.center)
        outer = ellipsoid_distance(u - cu, v - cv, w - cw, self.radii)
        shell = np.abs(outer + f32(self.thickness / 2)) - f32(self.thickness / 2)
        base = f32(self.base_w) - f32(0.35) * v  # the skull base rises towards the face
        plate = np.maximum(
            outer, np.abs(w - base - f32(6.0)) - f32(6.0)
        )  # occipital / clivus floor
        solid = np.minimum(np.maximum(shell, base - w), plate)
        fv, fu, fr = self.foramen
        hole = np.sqrt((u / f32(fu)) ** 2 + ((v - f32(fv)) / f32(fr)) ** 2) * f32(
            min(fu, fr)
        ) - f32(min(fu, fr))
        return np.maximum(solid, -hole)


@dataclass
class IliacWing(Primitive):
    """Part of a conical shell round the vertical axis ``(cu, cv)`` (radius ``r`` at the
    crest, 0.72 r at the bottom) between the angles ``a0..a1`` (radians from posterior
    towards the side ``side``) and heights ``w0..w1``; the wing narrows towards the
    acetabulum below."""

    cu: float
    cv: float
    r: float
    thickness: float
    a0: float
    a1: float
    w0: float
    w1: float
    side: int

    def bounds(self):
        r = self.r + self.thickness
        return np.array([self.cu - r, self.cv - r, self.w0]), np.array(
            [self.cu + r, self.cv + r, self.w1]
        )

    def __call__(self, u, v, w):
        x, y = (u - f32(self.cu)) * f32(self.side), v - f32(self.cv)
        rho = np.sqrt(x * x + y * y)
        frac = np.clip((w - f32(self.w0)) / f32(self.w1 - self.w0), 0, 1)
        # the wing flares outwards towards the crest (a cone opening upwards)
        ring = np.abs(rho - f32(self.r) * (f32(0.72) + f32(0.28) * frac)) - f32(self.thickness / 2)
        ang = np.arctan2(x, y)  # 0 posterior, pi/2 lateral
        a1 = f32(self.a0) + (f32(self.a1) - f32(self.a0)) * (f32(0.35) + f32(0.65) * frac)
        d_ang = np.maximum(f32(self.a0) - ang, ang - a1) * rho
        d_h = np.maximum(f32(self.w0) - w, w - f32(self.w1))
        return np.maximum(np.maximum(ring, d_ang), d_h)


def _patient_frame(origin: np.ndarray, yaw_deg: float = 0.0) -> Frame:
    t = np.deg2rad(yaw_deg)
    rz = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])
    return Frame(origin=np.asarray(origin, float), axes=rz)


class CanvasPainter:
    """What each painter of the skeleton holds: the canvas, and the patient it paints."""

    def __init__(
        self, canvas: Canvas, subject: Subject, layout: SpineLayout, body: BodyModel, hu: TissueHU
    ) -> None:
        self.canvas = canvas
        self.subject = subject
        self.layout = layout
        self.body = body
        self.hu = hu


class ContextBones(CanvasPainter):
    def __init__(
        self, canvas: Canvas, subject: Subject, layout: SpineLayout, body: BodyModel, hu: TissueHU
    ) -> None:
        super().__init__(canvas, subject, layout, body, hu)
        self.pose = {p.name: p for p in layout.poses + layout.sacrum}

    def _paint(
        self,
        frame: Frame,
        parts: list[Primitive],
        cortex_mm: float = 1.5,
        marrow: float | None = None,
    ) -> None:
        f = Field.around(self.canvas.grid, frame, parts)
        if f is None:
            return
        for p in parts:
            f.add(p, narrow_band=True)
        self.canvas.paint_bone(
            f,
            self.hu.cortex * 0.9,
            self.hu.marrow if marrow is None else marrow,
            cortex_mm,
            (T.BONE_CORTEX, T.BONE_MARROW),
        )

    def paint_all(self) -> None:
        self.skull()
        self.shoulders()
        self.pelvis()

    def _front_y(self, z: float) -> tuple[float, float, float, float]:
        """(spine x, spine y, chest-cavity centre y, cavity half-depth) at height z."""
        sx, sy, _ = self.layout.point_at_z(np.array([z]))[0]
        sx *= TRUNK_SHIFT  # sternum and shoulders stay near the midline
        a, b, back, fat = self.body.at(z)
        cy, ca, cb = thorax_cavity(self.body, z, a, b, fat, sy)
        return sx, sy, cy, cb

    def skull(self) -> None:
        c1 = self.pose["C1"]
        s = self.subject.size_scale
        o = c1.frame.origin
        frame = _patient_frame(o)
        vault = SkullShell(
            center=(0.0, -5.0 * s, 78.0 * s),
            radii=(70 * s, 88 * s, 78 * s),
            thickness=7.0,
            base_w=22.0 * s,
            foramen=(10.0, 15.0 * s, 18.0 * s),
        )
        condyles = [
            Ellipsoid((side * 13.0 * s, 6.0, 20.5 * s), (7.0, 11.0, 6.0)) for side in (-1, 1)
        ]
        # mandible: rami and body, a U in front of C2-C3
        mand: list[Primitive] = []
        for side in (-1, 1):
            mand.append(
                Capsule(
                    (side * 48 * s, -22 * s, 30 * s), (side * 46 * s, -32 * s, -22 * s), 6.0, 7.0
                )
            )
            mand.append(
                Capsule(
                    (side * 46 * s, -32 * s, -22 * s), (side * 26 * s, -78 * s, -30 * s), 7.0, 8.0
                )
            )
            mand.append(Capsule((side * 26 * s, -78 * s, -30 * s), (0.0, -88 * s, -32 * s), 8.0))
        maxilla = [RoundBox((0.0, -62 * s, 20 * s), (30 * s, 22 * s, 12 * s), 6.0)]
        self._paint(frame, [vault], cortex_mm=2.0)
        self._paint(frame, condyles + mand + maxilla, cortex_mm=2.0)

    def shoulders(self) -> None:
        t1, t4 = self.pose["T1"], self.pose["T4"]
        s = self.subject.size_scale * self.subject.body_width_scale
        z1 = float(t1.frame.origin[2])
        sx, sy, cy, cb = self._front_y(z1 - 10)
        a, b, back, fat = self.body.at(z1 - 10)
        y_front = cy - cb
        # clavicles from the sternal notch out to the acromion, slightly S-shaped
        for side in (-1, 1):
            p0 = np.array([sx + side * 22, y_front - 4, z1 - 12])
            p1 = np.array([sx + side * 80 * s, y_front - 10, z1 + 2])
            p2 = np.array([sx + side * 140 * s, sy + 5, z1 + 18])
            self._paint(
                _patient_frame(np.zeros(3)),
                [Capsule(tuple(p0), tuple(p1), 8.0, 6.5), Capsule(tuple(p1), tuple(p2), 6.5, 7.5)],
            )
        # scapulae: plates on the back of the chest, T2-T8, turned to follow the ribs
        z4 = float(t4.frame.origin[2])
        for side in (-1, 1):
            a4, b4, back4, fat4 = self.body.at(z4)
            o = np.array([sx + side * 95 * s, sy + back4 - fat4 - 28, z4 - 5])
            frame = _patient_frame(o, yaw_deg=side * -30.0)
            blade = RoundBox((0.0, 0.0, 0.0), (38 * s, 2.5, 65 * s), 2.0)
            spine = Capsule((side * -30 * s, 6.0, 45 * s), (side * 45 * s, 4.0, 60 * s), 5.0, 6.0)
            glenoid = Ellipsoid((side * 48 * s, -18.0, 45 * s), (10.0, 14.0, 18.0))
            self._paint(frame, [blade, spine, glenoid], cortex_mm=1.5)
        # sternum: manubrium and body in front of the mediastinum, lower end more anterior
        zs = [float(self.pose[n].frame.origin[2]) for n in ("T2", "T4", "T9")]
        _, _, cy3, cb3 = self._front_y(zs[0])
        _, _, cy9, cb9 = self._front_y(zs[2])
        man = RoundBox((sx, cy3 - cb3 - 4, zs[0] - 12), (24 * s, 6.0, 20.0), 4.0)
        body_top = np.array([sx, cy3 - cb3 - 6, zs[1]])
        body_bot = np.array([sx, cy9 - cb9 - 10, zs[2]])
        parts = [man, Capsule(tuple(body_top), tuple(body_bot), 9.0, 7.5)]
        self._paint(
            _patient_frame(np.zeros(3)), parts, cortex_mm=1.2, marrow=self.hu.cancellous * 0.8
        )

    def pelvis(self) -> None:
        sac = self.layout.sacrum
        s1 = sac[1] if self.subject.sacral_transitional else sac[0]
        s = self.subject.size_scale * self.subject.body_width_scale**0.5
        o = s1.frame.origin
        frame = _patient_frame(o)
        last = self.subject.levels[-1]
        z_crest = float(self.pose[last.name].frame.origin[2] - o[2]) + (
            0.5 * last.body_h + 4.0 if last.name != "L4" else -0.5 * last.body_h
        )
        z_hip = float(self.body.z["hip"] - o[2])
        parts: list[Primitive] = []
        for side in (-1, 1):
            parts.append(
                IliacWing(
                    cu=side * 42 * s,
                    cv=-52 * s,
                    r=70 * s,
                    thickness=7.0,
                    a0=0.05,
                    a1=1.9,
                    w0=z_hip + 25,
                    w1=z_crest,
                    side=side,
                )
            )
            parts.append(
                Capsule(
                    (side * 44 * s, 12.0, z_hip + 40),
                    (side * 70 * s, -30.0, z_hip + 12),
                    14.0,
                    16.0,
                )
            )
            parts.append(
                Capsule(
                    (side * 70 * s, -30.0, z_hip + 12),
                    (side * 60 * s, -8.0, z_hip - 40),
                    14.0,
                    11.0,
                )
            )  # ischium
            parts.append(
                Capsule(
                    (side * 70 * s, -45.0, z_hip), (side * 14 * s, -88 * s, z_hip - 18), 10.0, 8.0
                )
            )  # pubis
        self._paint(frame, parts, cortex_mm=1.8, marrow=self.hu.cancellous * 0.7)
        femurs: list[Primitive] = []
        for side in (-1, 1):
            head = np.array([side * 88 * s, -40.0, z_hip + 2])
            troch = np.array([side * 120 * s, -28.0, z_hip - 30])
            femurs += [
                Ellipsoid(tuple(head), (22.0, 22.0, 22.0)),
                Capsule(tuple(head), tuple(troch), 15.0, 18.0),
            ]
            a, b, back, fat = self.body.at(self.body.z["crotch"])
            r = 0.5 * a - 0.5 * self.body.leg_gap_mm
            shaft_x = side * (r + 0.5 * self.body.leg_gap_mm + 0.12 * r) + float(
                self.layout.point_at_z(np.array([self.body.z["crotch"]]))[0, 0] - o[0]
            )
            shaft_y = float(
                self.layout.point_at_z(np.array([self.body.z["crotch"]]))[0, 1]
                + back
                - b
                - 0.1 * b
                - o[1]
            )
            femurs.append(
                Capsule(
                    tuple(troch),
                    (shaft_x, shaft_y, float(self.body.z["crotch"] - o[2])),
                    16.0,
                    13.0,
                )
            )
        self._paint(frame, femurs, cortex_mm=3.0)
