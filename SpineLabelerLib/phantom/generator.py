"""``generate_case``: one synthetic spine CT with exact labels, centroids and what was drawn.

Steps: draw a subject (levels, sizes, curvature, pathology, variant), place its spine,
draw the body habitus and tissue HU, draw the scan (FOV, spacing, orientation), paint
body, ribs and vertebrae on the render grid, move the voxels onto the output grid, then
apply scanner physics. The anatomy comes from its own child generator of the seed, so
one seed is one patient whatever the field of view, crop or spacing asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from SpineLabelerLib import anatomy
from SpineLabelerLib.evaluation.centroids import centroids_from_labels
from SpineLabelerLib.image import Image, resample_onto
from SpineLabelerLib.phantom import physics as P
from SpineLabelerLib.phantom.body import build_body, paint_body
from SpineLabelerLib.phantom.canvas import Canvas
from SpineLabelerLib.phantom.layout import build_layout
from SpineLabelerLib.phantom.scan import FOVS, ScanGeometry, draw_scan
from SpineLabelerLib.phantom.skeleton import SpinePainter
from SpineLabelerLib.phantom.subject import METAL_PROBABILITY, VARIANTS, draw_subject
from SpineLabelerLib.phantom.tissues import TissueHU
from SpineLabelerLib.progress import CancelFlag, ProgressCallback, report


@dataclass
class PhantomCase:
    """A synthetic CT and its ground truth, all on one grid.

    ``ct``: HU, int16 (or float32); ``labels``: uint8 VerSe values; ``tissues``: uint8
    ``phantom.tissues`` classes; ``ribs``: uint8, each rib voxel holds the VerSe label
    of the vertebra carrying it. ``centroids_lps``: label -> (3,) centre of mass of that
    label's voxels in view, LPS mm. ``meta``: what was drawn (JSON-ready).
    """

    ct: Image
    labels: Image
    tissues: Image
    ribs: Image
    centroids_lps: dict[int, np.ndarray]
    meta: dict


def _to_output(arr: np.ndarray, geo: ScanGeometry, nearest: bool, fill: float) -> np.ndarray:
    """Move a render-grid (K, J, I) array onto the output grid."""
    if geo.permutation is not None:
        perm, signs = geo.permutation, geo.signs
        out = np.transpose(arr, (2 - perm[2], 2 - perm[1], 2 - perm[0]))
        flips = [d for d, c in enumerate((2, 1, 0)) if signs[c] < 0]  # type: ignore[index]
        return np.ascontiguousarray(np.flip(out, axis=flips) if flips else out)
    g = geo.render
    src = Image(arr, g.spacing_mm, g.origin_lps, np.eye(3))
    ref = Image(
        np.zeros(geo.size_ijk[::-1], np.uint8), geo.spacing_mm, tuple(geo.origin_lps), geo.direction
    )
    return resample_onto(src, ref, nearest=nearest, fill=fill).array


def cut_labels(labels: np.ndarray) -> list[int]:
    """Labels that touch a face of the volume (vertebrae cut by the field of view)."""
    faces = [labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]]
    return sorted({int(v) for f in faces for v in np.unique(f) if v})


def generate_case(
    seed: int,
    fov: str = "whole",
    variant: str = "normal",
    spacing_mm: tuple[float, float, float] | None = None,
    physics: bool = True,
    *,
    float_hu: bool = False,
    orientation: str | None = None,
    roi_lps: tuple[np.ndarray, np.ndarray] | None = None,
    crop_around_label: int | None = None,
    roi_size_mm: tuple[float, float, float] = (128.0, 128.0, 96.0),
    metal_probability: float = METAL_PROBABILITY,
    screws: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> PhantomCase:
    """Generate one phantom CT.

    fov: one of ``FOVS``; variant: one of ``VARIANTS``; spacing_mm (i, j, k): None draws a
    clinical spacing (0.3-1.0 mm in-plane, 0.5-3 mm slices) and orientation; a tuple
    gives that spacing on an axial (identity-direction) grid. physics=False leaves out
    blur, noise, bias and streaks (crisp edges). float_hu: float32 CT instead of int16.
    orientation: None (random for clinical draws, axial otherwise), "random" or "axial".
    roi_lps=(centre, size) (LPS mm, (x, y, z) size) or crop_around_label=L: generate only
    that box (axis-aligned, ``roi_size_mm`` around the vertebra's centre) - the fast path
    for training patches; the patient is the same as the full case of the same seed.
    metal_probability: the share of subjects with pedicle screws (a training setting; the
    default is the benchmark's). screws=False: the subject's screws and rods, once drawn, are
    left out, and everything else is drawn as with them (its twin without metal, but for the
    noise: benchmarks/metal.py).
    """
    if fov not in FOVS:
        raise ValueError(f"unknown field of view {fov!r}; expected one of {', '.join(FOVS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if orientation not in (None, "random", "axial"):
        raise ValueError(f"orientation must be None, 'random' or 'axial', got {orientation!r}")
    root = np.random.default_rng(seed)
    anat_rng, scan_rng, phys_rng = root.spawn(3)
    report(progress, "phantom", 0.0, "drawing the subject")
    subject = draw_subject(anat_rng, variant, metal_probability)
    if not screws:
        subject = replace(subject, metal_levels=[])
    layout = build_layout(subject, anat_rng)
    body = build_body(subject, layout, anat_rng)
    hu = TissueHU.draw(anat_rng, subject.osteoporotic)
    offset = anat_rng.uniform([-30, -120, -900], [30, 40, 300])  # scanner coordinates of the model
    painter_rng = np.random.default_rng(anat_rng.integers(0, 2**63 - 1))

    if crop_around_label is not None:
        poses = layout.by_label()
        if crop_around_label not in poses:
            raise ValueError(
                f"label {crop_around_label} is not in a {variant!r} spine (has {sorted(poses)})"
            )
        roi_lps = (poses[crop_around_label].frame.origin + offset, np.asarray(roi_size_mm, float))
    roi_model = (
        None
        if roi_lps is None
        else (np.asarray(roi_lps[0], float) - offset, np.asarray(roi_lps[1], float))
    )
    geo = draw_scan(scan_rng, fov, layout, body, spacing_mm, orientation, roi_model)
    ph = P.Physics.draw(phys_rng)
    sp_min = min(geo.spacing_mm)
    canvas = Canvas(geo.render, edge_mm=max(sp_min, 0.4) if physics else 0.25 * sp_min)
    if cancel:
        cancel.check()
    report(progress, "phantom", 0.1, "painting the body")
    paint_body(canvas, body, layout, subject, hu)
    if cancel:
        cancel.check()
    report(progress, "phantom", 0.4, "painting the skeleton")
    painter = SpinePainter(canvas, subject, layout, body, hu, painter_rng)
    painter.paint_all()
    if cancel:
        cancel.check()
    report(progress, "phantom", 0.7, "scanner physics")
    ct = _to_output(canvas.hu, geo, False, hu.air)
    del canvas.hu
    labels = _to_output(canvas.labels, geo, True, 0)
    tissue = _to_output(canvas.tissue, geo, True, 0)
    ribs = _to_output(canvas.ribs, geo, True, 0)
    if physics:
        ct += P.bias_field(ct.shape, geo.spacing_mm, ph)
        P.metal_streaks(ct, tissue, ph, phys_rng)
        ct = P.blur_with_noise(ct, geo.spacing_mm, ph, phys_rng)
        if geo.orientation in ("axial", "flipped") and not geo.tight and phys_rng.random() < 0.3:
            P.outside_scan_circle(ct, -1024.0)
    ct = P.quantize(ct, float_hu)
    origin = tuple(np.asarray(geo.origin_lps) + offset)
    grid = dict(spacing_mm=geo.spacing_mm, origin_lps=origin, direction=geo.direction)
    lab_img = Image(labels, **grid)
    centroids = centroids_from_labels(lab_img)
    present = sorted(centroids)
    meta = {
        "seed": int(seed),
        "fov": fov if roi_lps is None else "roi",
        "variant": variant,
        "labels": present,
        "names": [anatomy.vertebra(lab).name for lab in present],
        "partial_labels": cut_labels(labels),
        "rib_labels": subject.rib_labels,
        "fractures": subject.fractures,
        "osteoporotic": subject.osteoporotic,
        "curvature_deg": {
            "cervical_lordosis": subject.lordosis_cervical_deg,
            "thoracic_kyphosis": subject.kyphosis_thoracic_deg,
            "lumbar_lordosis": subject.lordosis_lumbar_deg,
        },
        "scoliosis": subject.scoliosis,
        "metal_labels": subject.metal_levels,
        "spacing_mm": list(geo.spacing_mm),
        "size_ijk": list(geo.size_ijk),
        "orientation": geo.orientation,
        "direction": np.round(geo.direction, 6).tolist(),
        "tight_crop": geo.tight,
        "physics": ph.as_dict() if physics else None,
        "tissue_hu": {
            k: (round(v, 1) if isinstance(v, float) else v) for k, v in hu.__dict__.items()
        },
        "joint_mm": painter.joint_mm,
        "dtype": "float32" if float_hu else "int16",
    }
    report(progress, "phantom", 1.0, f"{len(present)} vertebrae")
    return PhantomCase(
        ct=Image(ct, **grid),
        labels=lab_img,
        tissues=Image(tissue, **grid),
        ribs=Image(ribs, **grid),
        centroids_lps=centroids,
        meta=meta,
    )
