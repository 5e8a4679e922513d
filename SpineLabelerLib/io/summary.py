"""What a user needs to know about a CT before segmenting it (``spinelabeler info``)."""

from __future__ import annotations

import numpy as np

from SpineLabelerLib.image import Image, index_to_lps, orientation_code, physical_extent_mm


def obliquity_deg(image: Image) -> float:
    """Largest angle (degrees) between an index axis and the nearest patient axis; 0 if aligned."""
    cosines = np.abs(image.direction).max(axis=0).clip(0.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def ct_summary(image: Image, notes: list[str] | None = None) -> dict:
    """Size, spacing, orientation, obliquity, field of view (index axes and L-R/A-P/S-I box),
    HU range and reading notes, as plain JSON-able values (mm, HU, LPS)."""
    n = np.asarray(image.size_ijk, float)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float) * n - 0.5
    box = np.ptp(index_to_lps(image, corners), axis=0)
    return {
        "size_ijk": [int(v) for v in image.size_ijk],
        "spacing_mm": [round(float(s), 4) for s in image.spacing_mm],
        "orientation": orientation_code(image),
        "oblique_deg": round(obliquity_deg(image), 2),
        "origin_lps_mm": [round(float(o), 3) for o in image.origin_lps],
        "extent_ijk_mm": [round(float(e), 1) for e in physical_extent_mm(image)],
        "extent_lr_ap_si_mm": [round(float(e), 1) for e in box],
        "hu_min": float(image.array.min()),
        "hu_max": float(image.array.max()),
        "dtype": str(image.array.dtype),
        "notes": list(notes or []),
    }


def format_summary(path: str, s: dict) -> str:
    """Human-readable lines of :func:`ct_summary`."""
    towards = ", ".join(f"{axis} towards {letter}" for axis, letter in zip("ijk", s["orientation"]))
    oblique = (
        f"; oblique, up to {s['oblique_deg']:g} deg off the patient axes"
        if s["oblique_deg"] >= 0.01
        else ""
    )
    lines = [
        f"CT:            {path}",
        f"size:          {' x '.join(str(v) for v in s['size_ijk'])} voxels (i x j x k)",
        f"spacing:       {' x '.join(f'{v:g}' for v in s['spacing_mm'])} mm",
        f"orientation:   {s['orientation']} (index axis {towards}){oblique}",
        f"field of view: {' x '.join(f'{v:g}' for v in s['extent_ijk_mm'])} mm along i, j, k; "
        f"box {' x '.join(f'{v:g}' for v in s['extent_lr_ap_si_mm'])} mm (L-R x A-P x S-I)",
        f"HU range:      {s['hu_min']:g} .. {s['hu_max']:g} ({s['dtype']})",
        f"origin (LPS):  {', '.join(f'{v:g}' for v in s['origin_lps_mm'])} mm",
    ]
    lines += [f"note:          {note}" for note in s["notes"]]
    return "\n".join(lines)
