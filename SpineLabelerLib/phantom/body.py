"""Soft tissue around the spine, painted one axial slice at a time.

The body is an ellipse per slice (flattened at the back, where the patient lies on the
table) whose size follows the level: head, neck, shoulders, chest, waist, pelvis, then
two legs. Inside it: subcutaneous fat, muscle, and by region the brain, airway, lungs
with a domed diaphragm and mediastinum, heart, aorta and vena cava, liver, kidneys,
psoas muscles, bowel (soft tissue with fat and gas), arms with humeri, and the table.
All sizes in mm, all positions relative to the spine curve at that height (LPS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.phantom import tissues as T
from SpineLabelerLib.phantom.canvas import Canvas
from SpineLabelerLib.phantom.layout import SpineLayout
from SpineLabelerLib.phantom.sdf import ellipse2d_distance
from SpineLabelerLib.phantom.subject import Subject
from SpineLabelerLib.phantom.tissues import TissueHU


@dataclass
class BodyModel:
    """Heights (model z, mm) of the landmarks and the outline profile of one subject."""

    z: dict[str, float]
    profile_z: np.ndarray  # increasing z, mm
    half_width: np.ndarray  # mm, at profile_z
    half_depth: np.ndarray
    back_mm: np.ndarray  # posterior skin behind the spine curve, mm
    fat_factor: np.ndarray
    leg_gap_mm: float
    table_gap_mm: float
    table_hu: float
    bowel_seed: int

    def back_mm_at(self, z: float) -> float:
        return float(np.interp(z, self.profile_z, self.back_mm))

    def at(self, z: float) -> tuple[float, float, float, float]:
        return tuple(
            float(np.interp(z, self.profile_z, arr))
            for arr in (self.half_width, self.half_depth, self.back_mm, self.fat_factor)
        )  # type: ignore[return-value]


def build_body(subject: Subject, layout: SpineLayout, rng: np.random.Generator) -> BodyModel:
    """Landmark heights from the spine layout and a drawn body habitus."""
    lab = {p.name: p for p in layout.poses}
    zc = lambda n: float(lab[n].frame.origin[2])  # noqa: E731
    sac = layout.sacrum
    s = subject.size_scale
    last = subject.levels[-1].name
    z = {
        "head_top": zc("C1") + 150 * s,
        "skull_base": zc("C1") + 14 * s,
        "C1": zc("C1"),
        "C4": zc("C4"),
        "T1": zc("T1"),
        "T4": zc("T4"),
        "T8": zc("T8"),
        "diaphragm": zc("T10") + rng.uniform(-15, 15),
        "T12": zc("T12"),
        "L3": zc("L3"),
        "iliac_crest": 0.5 * (zc("L4") + zc(last if last != "L4" else "L4")) - 10
        if last != "L4"
        else zc("L4") - 15,
        "S1": float(sac[0].frame.origin[2]),
        "hip": float(sac[-1].frame.origin[2]) - 15 * s,
        "crotch": float(sac[-1].frame.origin[2]) - 80 * s,
        "knee": float(sac[-1].frame.origin[2]) - 470 * s,
        "foot": float(sac[-1].frame.origin[2]) - 900 * s,
    }
    w = subject.body_width_scale * s
    fat = subject.fat_mm
    pts = [  # (z, half width, half depth, back distance, fat factor)
        (z["foot"], 2 * 55 * w, 55 * w, 45, 0.4),
        (z["knee"], 2 * 60 * w, 60 * w, 50, 0.5),
        (z["crotch"], 2 * 95 * w, 85 * w, 55, 1.0),
        (z["hip"], 180 * w, 110 * w, 60, 1.2),
        (z["iliac_crest"], 160 * w, 115 * w, 62, 1.3),
        (z["L3"], 145 * w, 118 * w, 62, 1.4),
        (z["T12"], 145 * w, 118 * w, 64, 1.1),
        (z["T8"], 150 * w, 118 * w, 68, 0.9),
        (z["T4"], 155 * w, 105 * w, 68, 0.8),
        (z["T1"] + 10, 165 * w, 90 * w, 64, 0.7),
        (z["T1"] + 35, 70 * w, 60 * w, 60, 0.5),
        (z["C4"], 55 * w, 55 * w, 58, 0.4),
        (z["C1"] + 5, 62 * w, 78 * w, 62, 0.2),
        (z["C1"] + 60, 72 * w, 92 * w, 75, 0.1),
        (z["head_top"] - 40, 65 * w, 85 * w, 80, 0.1),
        (z["head_top"], 8.0, 8.0, 40, 0.1),
    ]
    arr = np.array(pts, float)
    order = np.argsort(arr[:, 0])
    arr = arr[order]
    half_depth = arr[:, 2] + 0.5 * fat * arr[:, 4]
    return BodyModel(
        z=z,
        profile_z=arr[:, 0],
        half_width=arr[:, 1] + fat * arr[:, 4] * rng.uniform(0.8, 1.2),
        half_depth=half_depth,
        back_mm=arr[:, 3] * s + fat * arr[:, 4],
        fat_factor=fat * arr[:, 4],
        leg_gap_mm=float(rng.uniform(5, 40)),
        table_gap_mm=float(rng.uniform(0, 4)),
        table_hu=float(rng.uniform(-400, 100)),
        bowel_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _layer(
    hu: np.ndarray, tis: np.ndarray, d: np.ndarray, value: float, cls: int, edge: float
) -> None:
    """Paint a 2D region ``d < 0`` (soft edge ``edge`` mm) with ``value`` HU, class ``cls``."""
    alpha = np.clip(0.5 - d / np.float32(edge), 0.0, 1.0)
    hu += alpha * (np.float32(value) - hu)
    tis[d < 0] = cls


def _soft_texture(shape: tuple[int, int], seed: int, block: int, px_mm: float) -> np.ndarray:
    """Smooth unit-variance random field (features ~12 mm) for bowel content, fat marbling
    and muscle texture; one per ~6 mm block of slices."""
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed + 7919 * block)
    n = [max(int(s * px_mm / 12.0), 2) for s in shape]
    coarse = rng.standard_normal(n).astype(np.float32)
    fine = zoom(coarse, (shape[0] / n[0], shape[1] / n[1]), order=1)[: shape[0], : shape[1]]
    return (fine - fine.mean()) / (fine.std() + 1e-6)


TRUNK_SHIFT = 0.3  # share of a scoliotic spine's lateral shift that the trunk follows


def paint_body(
    canvas: Canvas, body: BodyModel, layout: SpineLayout, subject: Subject, hu: TissueHU
) -> None:
    """Paint every axial slice of the canvas (air, table, fat, muscle, organs)."""
    g = canvas.grid
    xs, ys, zs = g.axis_mm(0), g.axis_mm(1), g.axis_mm(2)
    X = xs[None, :]
    Y = ys[:, None]
    edge = canvas.edge_mm
    spine = layout.point_at_z(zs)
    by_name = {p.name: p for p in layout.poses}
    zb = body.z
    # Soft tissue changes slowly along z: one painted slice serves every slice within
    # ``step`` (about 2 mm); the spine itself is painted in 3D afterwards.
    step = max(1, int(round(2.0 / g.spacing_mm[2])))
    tex0 = tex1 = None
    tex_block = None
    for k, z in enumerate(zs):
        if k % step:
            canvas.hu[k] = canvas.hu[k - 1]
            canvas.tissue[k] = canvas.tissue[k - 1]
            continue
        z = zs[min(k + step // 2, len(zs) - 1)] if step > 1 else z
        # texture blended between independent fields 6 mm apart, so it varies smoothly in z
        pos = (z - g.origin_lps[2]) / 6.0
        block = int(np.floor(pos))
        if block != tex_block:
            shape = (len(ys), len(xs))
            reuse = tex_block is not None and block == tex_block + 1
            tex0 = tex1 if reuse else _soft_texture(shape, body.bowel_seed, block, g.spacing_mm[0])
            tex1 = _soft_texture(shape, body.bowel_seed, block + 1, g.spacing_mm[0])
            tex_block = block
        f = np.float32(pos - block)
        tex = (1 - f) * tex0 + f * tex1
        tex /= np.float32(np.sqrt((1 - f) ** 2 + f**2))
        h_full, t_full = canvas.hu[k], canvas.tissue[k]
        h_full[:] = np.float32(hu.air)
        sx, sy = float(spine[k, 0]), float(spine[k, 1])
        # the trunk follows a scoliotic spine only partly (model midline is x = 0)
        mx = TRUNK_SHIFT * sx
        a, b, back, fat = body.at(float(z))
        y_back = sy + back
        # table: a curved plate under the back (only the rows it can reach)
        ty = y_back + body.table_gap_mm
        rows = _index_range(ys, ty - 3.0, ty + 50.0)
        if rows.stop > rows.start:
            Yt, ht, tt = Y[rows], h_full[rows], t_full[rows]
            dt = np.maximum(
                np.abs(Yt - (ty + 12 + 0.0004 * (X - mx) ** 2)) - 12, np.abs(X - mx) - 230
            )
            _layer(ht, tt, dt.astype(np.float32), body.table_hu, T.TABLE, edge)
            dshell = np.maximum(
                np.abs(Yt - (ty + 1.5 + 0.0004 * (X - mx) ** 2)) - 1.5, np.abs(X - mx) - 230
            )
            _layer(ht, tt, dshell.astype(np.float32), body.table_hu + 300, T.TABLE, edge)
        # everything else lies inside the body's box (arms beside it when they are down)
        reach = a + (100.0 if not subject.arms_up else 0.0) + 3.0
        rows, cols = (
            _index_range(ys, y_back - 2 * b - 3.0, y_back + 3.0),
            _index_range(xs, min(sx, mx) - reach, max(sx, mx) + reach),
        )
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        h2, t2, Xs, Ys, tx = (
            h_full[rows, cols],
            t_full[rows, cols],
            X[:, cols],
            Y[rows],
            tex[rows, cols],
        )
        if z < zb["crotch"]:
            _legs(h2, t2, Xs, Ys, z, mx, y_back, a, b, fat, body, hu, edge)
        else:
            yc = y_back - b
            d_body = np.maximum(ellipse2d_distance(Xs - mx, Ys - yc, a, b), Ys - y_back)
            _layer(h2, t2, d_body, hu.fat, T.FAT, edge)
            d_muscle = d_body + np.float32(fat)
            _layer(h2, t2, d_muscle, hu.muscle, T.MUSCLE, edge)
            # marbling: fat streaks between muscle bundles, more with more body fat and
            # finer (the texture's 2x harmonic) in the paraspinal muscles behind the spine
            fine = tx * tx - np.float32(1.0)
            near_spine = (np.abs(Xs - sx) < 70.0) & (Ys > sy)
            marble = (t2 == T.MUSCLE) & (
                (tx > 2.4 - fat / 40.0) | (near_spine & (fine > 2.2 - fat / 30.0))
            )
            h2[marble] = np.float32(hu.fat)
            t2[marble] = T.FAT
            _interior(
                h2,
                t2,
                Xs,
                Ys,
                z,
                sx,
                sy,
                mx,
                yc,
                a,
                b,
                fat,
                d_muscle,
                by_name,
                body,
                subject,
                hu,
                edge,
                tx,
            )
        soft = (t2 == T.MUSCLE) | (t2 == T.FAT)
        h2[soft] += np.float32(8.0) * tx[soft]


def _index_range(axis_mm: np.ndarray, lo: float, hi: float) -> slice:
    """Slice of the voxels of a regular axis (increasing mm) that lie within [lo, hi]."""
    step = float(axis_mm[1] - axis_mm[0]) if len(axis_mm) > 1 else 1.0
    a = int(np.clip(np.floor((lo - axis_mm[0]) / step), 0, len(axis_mm)))
    b = int(np.clip(np.ceil((hi - axis_mm[0]) / step) + 1, 0, len(axis_mm)))
    return slice(a, max(a, b))


def _legs(h2, t2, X, Y, z, sx, y_back, a, b, fat, body, hu, edge) -> None:
    r = 0.5 * a - 0.5 * body.leg_gap_mm
    for side in (-1, 1):
        cx = sx + side * (r + 0.5 * body.leg_gap_mm)
        d = np.maximum(ellipse2d_distance(X - cx, Y - (y_back - b), r, b), Y - y_back)
        _layer(h2, t2, d, hu.fat, T.FAT, edge)
        _layer(h2, t2, d + np.float32(0.6 * fat), hu.muscle, T.MUSCLE, edge)
        yl = y_back - b
        if z > body.z["knee"] + 25:  # femoral shaft
            bones = [(cx + side * 0.12 * r, yl - 0.1 * b, 13.0)]
        elif z > body.z["knee"] - 25:  # condyles / tibial plateau
            bones = [(cx + side * 0.1 * r, yl, 32.0 - 0.2 * abs(z - body.z["knee"]))]
        else:  # tibia and fibula
            bones = [(cx, yl - 0.25 * b, 15.0), (cx + side * 0.45 * r, yl + 0.1 * b, 7.0)]
        for bx, by, br in bones:
            db = ellipse2d_distance(X - bx, Y - by, br, br * 0.95)
            _layer(h2, t2, db, hu.cortex * 0.9, T.BONE_CORTEX, edge)
            _layer(h2, t2, db + np.float32(min(4.0, 0.35 * br)), hu.marrow, T.BONE_MARROW, edge)


def _interior(
    h2, t2, X, Y, z, sx, sy, mx, yc, a, b, fat, d_muscle, by_name, body, subject, hu, edge, tex
) -> None:
    zb = body.z
    f32 = np.float32
    if z > zb["skull_base"]:
        # brain inside the skull (the skull itself is a bone shape painted later)
        d = ellipse2d_distance(X - mx, Y - yc, max(a - fat - 8, 5), max(b - fat - 8, 5))
        _layer(h2, t2, d, hu.brain, T.BRAIN, edge)
        return
    if z > zb["T4"]:  # airway in front of the cervical / upper thoracic spine
        depth = (
            0.5 * by_name["C5"].shape.body_d if z > zb["T1"] else 0.5 * by_name["T2"].shape.body_d
        )
        ay = sy - depth - 14.0 - (6.0 if z > zb["C1"] - 30 else 0.0)
        _layer(h2, t2, ellipse2d_distance(X - sx, Y - ay, 8.0, 6.5), hu.air, T.AIR, edge)
    if zb["diaphragm"] - 60 < z < zb["T1"] + 25:
        _thorax(h2, t2, X, Y, z, sx, sy, mx, yc, a, b, fat, by_name, body, hu, edge, tex)
    if zb["hip"] < z < zb["diaphragm"] + 40:
        _abdomen(h2, t2, X, Y, z, sx, sy, mx, yc, a, b, fat, body, subject, hu, edge, tex)
    if subject.arms_up is False and zb["T1"] - 320 < z < zb["T1"] + 5:
        for side in (-1, 1):
            cx = mx + side * (a + 45.0)
            d = ellipse2d_distance(X - cx, Y - (yc + 0.2 * b), 42.0, 48.0)
            _layer(h2, t2, d, hu.fat, T.FAT, edge)
            _layer(h2, t2, d + f32(0.5 * fat), hu.muscle, T.MUSCLE, edge)
            dh = ellipse2d_distance(X - cx, Y - (yc + 0.2 * b), 11.0, 11.0)
            _layer(h2, t2, dh, hu.cortex * 0.9, T.BONE_CORTEX, edge)
            _layer(h2, t2, dh + f32(3.0), hu.marrow, T.BONE_MARROW, edge)


def thorax_cavity(
    body: BodyModel, z: float, a: float, b: float, fat: float, sy: float
) -> tuple[float, float, float]:
    """Centre y and semi-axes (mm) of the chest cavity inside the ribs at height z. Its
    back reaches ~40 mm behind the vertebral body centres (the rib angles); the lung
    apices narrow towards the top of the chest."""
    wall = 16.0
    taper = float(np.clip((body.z["T1"] + 25 - z) / 60.0, 0.15, 1.0))
    ca = max((a - fat - wall) * (0.55 + 0.45 * taper), 5.0)
    depth = max(2 * b - fat - 2 * wall - (body.back_mm_at(z) - 40.0 - fat), 20.0)
    cb = max(0.5 * depth * (0.6 + 0.4 * taper), 5.0)
    return sy + 40.0 - cb, ca, cb


def _thorax(h2, t2, X, Y, z, sx, sy, mx, yc, a, b, fat, by_name, body, hu, edge, tex) -> None:
    zb = body.z
    f32 = np.float32
    cy, ca, cb = thorax_cavity(body, z, a, b, fat, sy)
    d_cav = ellipse2d_distance(X - mx, Y - cy, ca, cb)
    spine_body = by_name["T6"].shape
    bw, bd = spine_body.body_w / 2, spine_body.body_d / 2
    # the spine and paraspinal gutter: body, arch and the muscles between the rib angles
    d_spine = ellipse2d_distance(X - sx, Y - (sy + 18.0), bw + 20.0, bd + 34.0)
    # mediastinum between spine and sternum, widening at the heart (shifted left)
    heart = float(
        np.clip(
            np.sin(np.pi * (z - zb["diaphragm"] + 10) / max(zb["T4"] - zb["diaphragm"] + 10, 1)),
            0,
            1,
        )
    )
    front, back_m = cy - cb, sy - bd
    med_cy = 0.5 * (front + back_m)
    med_a = 20.0 + 32.0 * heart
    d_med = ellipse2d_distance(
        X - (mx + 0.3 * med_a - 4.0), Y - med_cy, med_a, 0.5 * (back_m - front) + 6.0
    )
    for side in (-1, 1):
        lx = mx + side * 0.5 * ca
        dome = zb["diaphragm"] + (18.0 if side < 0 else 8.0) * np.clip(
            1 - ((X - lx) / (0.5 * ca + 1)) ** 2 - ((Y - cy) / (cb + 1)) ** 2, 0, 1
        )
        d_lung = np.maximum(d_cav, -d_spine)
        d_lung = np.maximum(d_lung, -d_med)
        d_lung = np.maximum(d_lung, (dome - z).astype(np.float32))
        d_lung = np.maximum(d_lung, f32(-side) * (X - 0.5 * (sx + mx)) + f32(4.0))
        _layer(h2, t2, d_lung.astype(np.float32), hu.lung, T.LUNG, edge)
    # pulmonary vessels: small soft-tissue blobs where the texture's 3rd harmonic peaks,
    # denser towards the hila (near the mediastinum)
    lung = t2 == T.LUNG
    if lung.any():
        hilum = np.clip(1.0 - np.abs(X - mx) / (0.8 * ca), 0.0, 1.0)
        ripple = tex * (tex * tex - 3.0)
        vessel = lung & (ripple > np.float32(4.5) - 3.0 * hilum)
        h2[vessel] = np.float32(0.5 * (hu.blood + hu.muscle))
    if zb["diaphragm"] < z < zb["T4"] - 10:  # heart, left-anterior in the lower mediastinum
        frac = (z - zb["diaphragm"]) / max(zb["T4"] - zb["diaphragm"], 1)
        r = 0.9 * (med_a - 15.0) * np.sin(np.pi * np.clip(frac, 0, 1)) + 8.0
        d = ellipse2d_distance(
            X - (mx + 0.3 * med_a),
            Y - (med_cy - 0.1 * (back_m - front)),
            r,
            min(0.8 * r, 0.45 * (back_m - front)),
        )
        _layer(h2, t2, d, hu.blood, T.VESSEL, edge)
    if z < zb["T4"]:  # descending aorta, left-anterior of the spine
        d = ellipse2d_distance(X - (sx + 18.0), Y - (sy - spine_body.body_d / 2 - 4), 12.0, 12.0)
        _layer(h2, t2, d, hu.blood, T.VESSEL, edge)


def _abdomen(h2, t2, X, Y, z, sx, sy, mx, yc, a, b, fat, body, subject, hu, edge, tex) -> None:
    zb = body.z
    f32 = np.float32
    lumbar = subject.levels[-2] if subject.levels[-1].kind == "lumbar" else subject.levels[-1]
    bw, bd = lumbar.body_w / 2, lumbar.body_d / 2
    ca, cb = a - fat - 18, b - fat * 0.5 - 14
    cy = yc - 0.05 * b
    d_cav = ellipse2d_distance(X - mx, Y - cy, max(ca, 5), max(cb, 5))
    d_cav = np.maximum(d_cav, Y - (sy - bd + 5))
    if z < zb["diaphragm"]:
        organ = np.where(tex > 1.9, f32(hu.air), np.where(tex < -0.8, f32(hu.fat), f32(hu.organ)))
        alpha = np.clip(0.5 - d_cav / f32(edge), 0, 1)
        h2 += alpha * (organ - h2)
        t2[d_cav < 0] = np.where(
            tex[d_cav < 0] > 1.9, T.GAS, np.where(tex[d_cav < 0] < -0.8, T.FAT, T.ORGAN)
        )
    # liver: right upper quadrant (patient right = -x in LPS)
    if zb["L3"] + 20 < z < zb["diaphragm"] + 35:
        top = zb["diaphragm"] + 35
        frac = np.clip((top - z) / 120.0, 0, 1)
        r = 0.55 * ca * (1.0 - 0.6 * frac)
        d = ellipse2d_distance(
            X - (mx - 0.45 * ca),
            Y - (cy + 0.05 * cb),
            max(r, 4),
            max(0.75 * cb * (1 - 0.3 * frac), 4),
        )
        _layer(h2, t2, np.maximum(d, d_cav), hu.liver, T.ORGAN, edge)
    # kidneys beside the spine, T12-L3
    if zb["L3"] - 20 < z < zb["T12"] + 15:
        for side in (-1, 1):
            kz = 0.5 * (zb["L3"] + zb["T12"]) + (8 if side > 0 else -8)
            rz = 0.5 * (zb["T12"] - zb["L3"]) + 25
            s = np.sqrt(max(1 - ((z - kz) / rz) ** 2, 0))
            if s > 0:
                d = ellipse2d_distance(
                    X - (sx + side * (bw + 45)), Y - (sy + 5), 28 * s + 1, 22 * s + 1
                )
                _layer(h2, t2, d, hu.kidney, T.ORGAN, edge)
    # psoas, growing down the lumbar spine
    if z < zb["T12"]:
        grow = np.clip((zb["T12"] - z) / max(zb["T12"] - zb["S1"], 1), 0, 1)
        for side in (-1, 1):
            d = ellipse2d_distance(
                X - (sx + side * (bw + 6 + 14 * grow)), Y - (sy + 2), 6 + 16 * grow, 6 + 12 * grow
            )
            _layer(h2, t2, d, hu.muscle, T.MUSCLE, edge)
    if z > zb["iliac_crest"] - 30:  # aorta and vena cava
        _layer(
            h2,
            t2,
            ellipse2d_distance(X - (sx + 14), Y - (sy - bd - 12), 10.0, 10.0),
            hu.blood,
            T.VESSEL,
            edge,
        )
        _layer(
            h2,
            t2,
            ellipse2d_distance(X - (sx - 20), Y - (sy - bd - 10), 12.0, 9.0),
            hu.blood,
            T.VESSEL,
            edge,
        )
