"""One vertebra as a union of analytic parts in its local frame (u left, v posterior,
w superior; origin at the body centre, mm).

Parts follow PHANTOM.md: body (cortical shell + cancellous core), pedicles and laminae
as a ring around the canal, transverse processes (with foramina in the neck), a spinous
process (bifid C2-C6, long C7, sloping thoracic, horizontal lumbar "hatchet"),
superior / inferior articular processes long enough to reach the neighbours' (the
renderer trims the upper one where they meet, leaving a facet joint). C1 is a ring
without body, C2 carries the dens.
"""

from __future__ import annotations

import numpy as np

from SpineLabelerLib.phantom.sdf import (
    CanalColumn,
    Capsule,
    Ellipsoid,
    EllipticColumn,
    EllipticRing,
    FlatCapsule,
    Primitive,
    RoundBox,
    VertebralBody,
)
from SpineLabelerLib.phantom.subject import LevelShape


def canal_centre_v(sh: LevelShape) -> float:
    """Posterior offset (mm) of the canal centre from the body centre."""
    if sh.kind == "C1":
        return 13.0
    return 0.85 * sh.body_d / 2 + 0.8 + sh.canal_d / 2


def _c1_parts(sh: LevelShape) -> tuple[list[Primitive], list[Primitive]]:
    """Atlas: anterior arch, lateral masses, posterior arch, transverse processes with foramina.
    v = 0 is the dens axis (over C2's body), the ring lies around it."""
    a_in, b_in = sh.canal_w / 2, sh.canal_d / 2 + 4
    ring = EllipticRing(
        cv=12.0,
        inner=(a_in, b_in),
        outer=(a_in + 7.5, b_in + 6.0),
        outer_cv=12.0,
        wc=0.0,
        h=4.5,
        slope=0.0,
    )
    lm = 17.0 * sh.canal_w / 28
    parts: list[Primitive] = [
        ring,
        Ellipsoid((lm, 4.0, 0.0), (7.5, 10.0, 10.5)),
        Ellipsoid((-lm, 4.0, 0.0), (7.5, 10.0, 10.5)),
        Ellipsoid((0.0, -b_in - 3.5 + 12.0, 0.0), (5.5, 3.5, 6.5)),  # anterior tubercle
        Ellipsoid((0.0, 12.0 + b_in + 6.0, -1.0), (6.0, 4.5, 5.5)),  # posterior tubercle
    ]
    holes: list[Primitive] = []
    for side in (-1, 1):
        parts.append(
            Capsule(
                (side * lm, 5.0, 0.0), (side * sh.tp_span / 2, 6.0, -1.0), sh.tp_r, sh.tp_r * 0.9
            )
        )
        holes.append(EllipticColumn(side * (lm + 9.0), 5.0, 2.8, 2.8, -8.0, 8.0))
    holes.append(EllipticColumn(0.0, 12.0, a_in - 1.0, b_in - 1.0, -15, 15))  # keep the ring open
    return parts, holes


def _arch_parts(sh: LevelShape, vc: float) -> list[Primitive]:
    """Pedicles + laminae around the canal."""
    h = sh.body_h
    slope = {"thoracic": 0.35, "lumbar": 0.15}.get(sh.kind, 0.2)
    return [
        EllipticRing(
            cv=vc,
            inner=(sh.canal_w / 2, sh.canal_d / 2),
            outer=(sh.canal_w / 2 + sh.pedicle_w, sh.canal_d / 2 + sh.lamina_t),
            outer_cv=vc + 0.5,
            wc=0.12 * h,
            h=(0.37 if sh.kind == "lumbar" else 0.33) * h + 1.5,  # lumbar laminae are tall
            slope=slope,
            v_min=0.85 * sh.body_d / 2 - 1.0,  # joins the body at its back wall, never above it
            triangular=sh.kind == "lumbar",
            front_cap=0.5 * h - 1.5,
        )
    ]


def _articular_parts(sh: LevelShape, vc: float) -> list[Primitive]:
    """Superior and inferior articular processes (pillars in the neck)."""
    h = sh.body_h
    ua = sh.canal_w / 2 + 0.6 * sh.pedicle_w
    va = vc + 0.15 * sh.canal_d
    r = {"lumbar": 6.5, "thoracic": 4.5}.get(sh.kind, 5.0)
    up = h / 2 + sh.gap_above / 2 + 6.0
    down = h / 2 + sh.gap_below / 2 + 6.0
    # the lower vertebra's superior process lies lateral/anterior to the upper's inferior one
    du, dv = {
        "lumbar": (4.0, 1.0),
        "thoracic": (0.5, 3.5),
        "cervical": (0.0, 4.0),
        "C7": (0.0, 4.0),
        "C2": (0.0, 4.0),
    }.get(sh.kind, (0.0, 3.0))
    parts: list[Primitive] = []
    for side in (-1, 1):
        if sh.kind != "C2":
            parts.append(
                Capsule((side * ua, va, 0.1 * h), (side * (ua + du / 2), va - dv / 2, up - r), r)
            )
        parts.append(
            Capsule((side * ua, va, 0.0), (side * (ua - du / 2), va + dv / 2, -down + r), r)
        )
    return parts


def _transverse_parts(sh: LevelShape, vc: float) -> tuple[list[Primitive], list[Primitive]]:
    parts: list[Primitive] = []
    holes: list[Primitive] = []
    half = sh.tp_span / 2
    for side in (-1, 1):
        if sh.kind in ("C2", "cervical", "C7"):
            # anterolateral, from the body and the pedicle, around the transverse foramen
            root_u = sh.body_w / 2
            fu = sh.body_w / 2 + 4.5
            parts.append(
                Capsule(
                    (side * root_u * 0.8, 0.0, 0.0),
                    (side * half, vc * 0.5, -1.0),
                    sh.tp_r,
                    sh.tp_r * 0.8,
                )
            )
            parts.append(
                Capsule(
                    (side * (sh.canal_w / 2 + 2.0), vc, 0.0),
                    (side * half, vc * 0.5, -1.0),
                    sh.tp_r * 0.9,
                )
            )
            holes.append(EllipticColumn(side * fu, vc * 0.45, 2.6, 2.6, -6.0, 6.0))
        elif (sh.tp_style or sh.kind) == "thoracic":
            root = (side * (sh.canal_w / 2 + sh.pedicle_w * 0.5), vc + 1.0, 0.2 * sh.body_h)
            tip = (side * half, vc + 12.0, 0.25 * sh.body_h + 2.0)
            parts.append(Capsule(root, tip, sh.tp_r, sh.tp_r * 1.1))
        else:  # lumbar: long flat processes
            root = (side * (sh.canal_w / 2 + sh.pedicle_w * 0.5), vc - 1.0, 0.1 * sh.body_h)
            tip = (side * half, vc + 2.0, 0.1 * sh.body_h)
            parts.append(
                FlatCapsule(root, tip, r1=sh.tp_r * 1.5, r2=sh.tp_r * 0.7, n1=(0.0, 0.0, 1.0))
            )
    return parts, holes


def _spinous_parts(sh: LevelShape, vc: float) -> list[Primitive]:
    v0 = vc + sh.canal_d / 2 + sh.lamina_t * 0.5
    w0 = 0.05 * sh.body_h - 0.2 * sh.lamina_t
    slope = np.deg2rad(sh.sp_slope_deg)
    direction = np.array([0.0, np.cos(slope), -np.sin(slope)])
    start = np.array([0.0, v0, w0])
    tip = start + sh.sp_len * direction
    if sh.kind == "lumbar":
        c = start + 0.5 * sh.sp_len * direction
        return [
            RoundBox(tuple(c), (3.8, sh.sp_len / 2, 0.4 * sh.body_h), 2.5, tilt_deg=sh.sp_slope_deg)
        ]
    if sh.kind in ("C2", "cervical"):
        fork = start + 0.6 * sh.sp_len * direction
        parts: list[Primitive] = [Capsule(tuple(start), tuple(fork), sh.sp_r)]
        for side in (-1, 1):
            parts.append(
                Capsule(
                    tuple(fork), tuple(tip + [side * 4.5, 0.0, -1.0]), sh.sp_r * 0.8, sh.sp_r * 0.9
                )
            )
        return parts
    return [Capsule(tuple(start), tuple(tip), sh.sp_r, sh.sp_r * 1.15)]


def vertebra_parts(sh: LevelShape) -> tuple[list[Primitive], list[Primitive]]:
    """(parts, holes) of a vertebra; its solid is union(parts) minus union(holes)."""
    if sh.kind == "C1":
        return _c1_parts(sh)
    vc = canal_centre_v(sh)
    body = VertebralBody(
        sh.body_w / 2,
        sh.body_d / 2,
        sh.body_h / 2,
        concavity=0.04 * sh.body_h,
        rounding=min(2.0, 0.12 * sh.body_h),
        fracture=sh.fracture,
        loss=sh.fracture_loss,
    )
    parts: list[Primitive] = [body]
    parts += _arch_parts(sh, vc)
    parts += _articular_parts(sh, vc)
    tps, holes = _transverse_parts(sh, vc)
    parts += tps
    parts += _spinous_parts(sh, vc)
    if sh.kind == "C2":
        top = sh.body_h / 2
        parts.append(Capsule((0.0, 0.5, top - 4.0), (0.0, 1.5, top + 14.0), 5.2, 4.2))  # dens
        for side in (-1, 1):  # superior facets carrying C1's lateral masses
            parts.append(Ellipsoid((side * 14.0, 3.0, top - 2.0), (7.0, 8.0, 5.0)))
    holes.append(
        CanalColumn(
            vc,
            (sh.canal_w / 2, sh.canal_d / 2),
            -sh.body_h - 20,
            sh.body_h + 20,
            sh.kind == "lumbar",
        )
    )
    return parts, holes
