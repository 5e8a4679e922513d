"""Paint the spine: discs, canal, sacrum, ribs, vertebrae (with their labels).

Order matters and is why neighbours never overlap while touching: the sacrum and the
vertebrae are built caudal to cranial, and each vertebra is trimmed where it would come
closer than the joint space to the one below it (``max(sdf, gap - sdf_below)``), which
leaves facet joints touching with a ``joint_mm`` gap. Ribs are painted before the
vertebrae; each vertebra then clears the ribs within ``joint_mm`` of its surface, giving
costovertebral joints.
"""

from __future__ import annotations

import numpy as np

from SpineLabelerLib.phantom import tissues as T
from SpineLabelerLib.phantom.body import BodyModel
from SpineLabelerLib.phantom.bones import CanvasPainter, ContextBones
from SpineLabelerLib.phantom.canvas import Canvas
from SpineLabelerLib.phantom.field import Field, Frame
from SpineLabelerLib.phantom.layout import Pose, SpineLayout
from SpineLabelerLib.phantom.ribs import rib_number, rib_path, rib_segments
from SpineLabelerLib.phantom.sdf import (
    Capsule,
    Ellipsoid,
    EllipticColumn,
    Primitive,
    RoundBox,
    VertebralBody,
)
from SpineLabelerLib.phantom.subject import Subject
from SpineLabelerLib.phantom.tissues import TissueHU
from SpineLabelerLib.phantom.vertebra import canal_centre_v, vertebra_parts

_IDENTITY = Frame(origin=np.zeros(3), axes=np.eye(3))


def _mid_frame(a: Frame, b: Frame) -> Frame:
    """Frame half-way between two vertebrae (for the disc between them)."""
    axes = a.axes + b.axes
    sup = axes[:, 2] / np.linalg.norm(axes[:, 2])
    post = axes[:, 1] - (axes[:, 1] @ sup) * sup
    post /= np.linalg.norm(post)
    return Frame(
        origin=0.5 * (a.origin + b.origin), axes=np.stack([np.cross(post, sup), post, sup], axis=1)
    )


class SpinePainter(CanvasPainter):
    """Paints one subject's spine and ribs onto a canvas."""

    def __init__(
        self,
        canvas: Canvas,
        subject: Subject,
        layout: SpineLayout,
        body: BodyModel,
        hu: TissueHU,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(canvas, subject, layout, body, hu)
        self.joint_mm = float(rng.uniform(1.0, 2.0))
        self.texture = _texture(rng)
        self.cancellous_sd = float(rng.uniform(15, 45))

    # -- texture -------------------------------------------------------------------------
    def core_hu(self, base: float):
        """Cancellous HU at painted voxels: the base plus a trabecular-like texture."""
        tex, sd = self.texture, np.float32(self.cancellous_sd)
        n = tex.shape[0]

        def value(idx: tuple[np.ndarray, ...]) -> np.ndarray:
            return np.float32(base) + sd * tex[idx[0] % n, idx[1] % n, idx[2] % n]

        return value

    # -- parts ---------------------------------------------------------------------------
    def paint_all(self) -> None:
        ContextBones(self.canvas, self.subject, self.layout, self.body, self.hu).paint_all()
        self.paint_discs_and_canal()
        self.paint_ribs()
        below = self.paint_sacrum()
        for pose in reversed(self.layout.poses):
            below = self.paint_vertebra(pose, below)
        self.paint_metal()

    def paint_metal(self) -> None:
        """Pedicle screws through both pedicles of each instrumented level, joined by rods
        behind the laminae. Screws inside a vertebra keep its label (they are in it)."""
        levels = [p for p in self.layout.poses if p.shape.label in self.subject.metal_levels]
        heads: dict[int, list[np.ndarray]] = {-1: [], 1: []}
        for pose in levels:
            sh = pose.shape
            vc = canal_centre_v(sh)
            for side in (-1, 1):
                entry = np.array(
                    [side * (sh.canal_w / 2 + 0.5 * sh.pedicle_w + 4.0), vc + 10.0, 0.1 * sh.body_h]
                )
                tip = np.array([side * 5.0, -0.55 * sh.body_d / 2, 0.05 * sh.body_h])
                screw = Capsule(tuple(entry), tuple(tip), 3.2)
                head = Ellipsoid(tuple(entry + [0.0, 6.0, 0.0]), (6.0, 6.0, 6.0))
                f = Field.around(self.canvas.grid, pose.frame, [screw, head], margin=2.0)
                if f is not None:
                    f.add(screw)
                    f.add(head)
                    self.canvas.paint(f, self.hu.metal, T.METAL, protect_labels=False)
                heads[side].append(pose.frame.to_lps(entry + [0.0, 6.0, 0.0])[0])
        for pts in heads.values():
            rods = [Capsule(tuple(a), tuple(b), 3.0) for a, b in zip(pts[:-1], pts[1:])]
            f = Field.around(self.canvas.grid, _IDENTITY, rods, margin=2.0) if rods else None
            if f is not None:
                for r in rods:
                    f.add(r)
                self.canvas.paint(f, self.hu.metal, T.METAL, protect_labels=False)

    def paint_discs_and_canal(self) -> None:
        c, g = self.canvas, self.canvas.grid
        poses = self.layout.poses + self.layout.sacrum[:1]
        for up, lo in zip(poses[:-1], poses[1:]):
            if up.name == "C1":
                continue
            frame = _mid_frame(up.frame, lo.frame)
            sh = up.shape
            lo_sh = lo.shape or sh
            gap = float(np.linalg.norm(up.frame.origin - lo.frame.origin)) - 0.5 * (
                sh.body_h + lo_sh.body_h
            )
            a = 0.5 * (sh.body_w + lo_sh.body_w) / 2 * 1.02
            b = 0.5 * (sh.body_d + lo_sh.body_d) / 2 * 1.02
            disc = EllipticColumn(
                0.0, -0.05 * b, a, 0.95 * b, -gap / 2 - 2.5, gap / 2 + 2.5, rounding=1.5
            )
            f = Field.around(g, frame, [disc])
            if f is not None:
                f.add(disc)
                c.paint(f, self.hu.disc, T.DISC)
        for pose in self.layout.poses:
            sh = pose.shape
            vc = canal_centre_v(sh)
            h = sh.body_h / 2 + max(sh.gap_below, sh.gap_above) + 1.0
            tube = EllipticColumn(0.0, vc, sh.canal_w / 2 - 0.5, sh.canal_d / 2 - 0.5, -h, h)
            f = Field.around(g, pose.frame, [tube])
            if f is not None:
                f.add(tube)
                c.paint(f, self.hu.canal, T.CANAL)

    def paint_ribs(self) -> None:
        c = self.canvas
        for pose in self.layout.poses:
            if not pose.shape.rib:
                continue
            spine_xy = self.layout.point_at_z(np.array([pose.frame.origin[2]]))[0]
            for side in (-1, 1):
                pts, bony = rib_path(pose, side, self.body, spine_xy)
                n = rib_number(pose)
                parts = rib_segments(pts, n, self.subject.size_scale)
                bone, cart = parts[: bony - 1], parts[bony - 1 :]
                for group, is_bone in ((bone, True), (cart, False)):
                    if not group:
                        continue
                    f = Field.around(c.grid, _IDENTITY, group, margin=3.0)
                    if f is None:
                        continue
                    for p in group:
                        f.add(p)
                    if is_bone:
                        c.paint_bone(
                            f,
                            self.hu.cortex * 0.85,
                            self.core_hu(self.hu.cancellous * 0.9),
                            1.0,
                            (T.BONE_CORTEX, T.BONE_MARROW),
                            rib_owner=pose.shape.label,
                        )
                    else:
                        c.paint(f, self.hu.cartilage, T.CARTILAGE)

    def paint_sacrum(self) -> tuple[Field, np.ndarray] | None:
        """Fused sacral segments with alae; returns S1's (field, raw sdf) for the cut of the
        last free vertebra."""
        c, g = self.canvas, self.canvas.grid
        last = self.subject.levels[-1]
        first_field = None
        for i, pose in enumerate(self.layout.sacrum):
            h = pose.height_mm
            taper = 1.0 - 0.12 * i
            w, d = last.body_w / 2 * max(taper, 0.35), last.body_d / 2 * max(taper, 0.4)
            vc = d * 0.85 + 6.0
            parts: list[Primitive] = [VertebralBody(w, d, h / 2 + 1.2, concavity=0.0, rounding=1.5)]
            if i < 3:
                ala = (38.0 - 9.0 * i) * self.subject.size_scale
                for side in (-1, 1):
                    parts.append(
                        Ellipsoid(
                            (side * (w * 0.6 + ala * 0.55), 0.25 * d + 4, -0.1 * h),
                            (ala * 0.62, d * 0.75 + 4, h * 0.75 + 2),
                        )
                    )
            parts.append(RoundBox((0.0, vc + 6.0, 0.0), (max(w * 0.7, 8.0), 4.0, h / 2 + 1.5), 1.5))
            holes: list[Primitive] = [EllipticColumn(0.0, vc, max(w * 0.45, 5.0), 5.0, -h, h)]
            if i == 0:
                top = h / 2
                for side in (-1, 1):
                    ua = last.canal_w / 2 + 0.6 * last.pedicle_w
                    parts.append(
                        Capsule(
                            (side * ua, vc, 0.0),
                            (side * (ua + 2.0), vc - 0.5, top + last.gap_below / 2 + 4.0),
                            5.0,
                        )
                    )
            f = Field.around(g, pose.frame, parts)
            if f is None:
                continue
            for p in parts:
                f.add(p)
            for p in holes:
                f.cut(p)
            if i == 0:
                first_field = (f, f.sdf.copy())
            c.paint_bone(
                f,
                self.hu.cortex * 0.9,
                self.core_hu(self.hu.cancellous),
                1.2,
                (T.BONE_CORTEX, T.BONE_MARROW),
            )
        return first_field

    def paint_vertebra(
        self, pose: Pose, below: tuple[Field, np.ndarray] | None
    ) -> tuple[Field, np.ndarray] | None:
        """Paint one vertebra trimmed against the one below; return its (field, raw sdf)."""
        c, sh = self.canvas, pose.shape
        parts, holes = vertebra_parts(sh)
        f = Field.around(c.grid, pose.frame, parts)
        if f is None:
            return None
        for p in parts:
            f.add(p)
        for p in holes:
            f.cut(p)
        raw = f.sdf.copy()
        gap = np.float32(self.joint_mm)
        if below is not None:
            ov = f.overlap(below[0])
            if ov is not None:
                mine, theirs = ov
                np.maximum(f.sdf[mine], gap - below[1][theirs], out=f.sdf[mine])
        # costovertebral joints: clear rib bone within the joint space of this vertebra
        ribs = c.ribs[f.box]
        joint = (ribs > 0) & (f.sdf < gap)
        if joint.any():
            c.hu[f.box][joint] = np.float32(self.hu.cartilage)
            c.tissue[f.box][joint] = T.CARTILAGE
            ribs[joint] = 0
        core = self.hu.cancellous + (60.0 if sh.fracture else 0.0)
        c.paint_bone(
            f,
            self.hu.cortex,
            self.core_hu(core),
            sh.cortex_mm,
            (T.CORTEX, T.CANCELLOUS),
            label=sh.label,
        )
        return f, raw


def _texture(rng: np.random.Generator, n: int = 24) -> np.ndarray:
    """Periodic (n, n, n) unit-variance smooth random field for trabecular texture."""
    from scipy.ndimage import gaussian_filter

    t = gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), 1.0, mode="wrap")
    return (t - t.mean()) / (t.std() + 1e-6)
