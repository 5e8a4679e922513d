"""The preview picture of a phantom: the project's sagittal + coronal overview (bone
window, labels blended, names) and, under it, axial slices through a thoracic and a
lumbar vertebra (or whichever are in view), so that ribs, arches and organs can be
checked by eye against what a CT of that region looks like."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, resample_onto
from SpineLabelerLib.io._files import atomic_path
from SpineLabelerLib.io.overview import bone_window_rgb, field_centre_lps, render_overview

AXIAL_FIELD_MM = 240.0
AXIAL_PX = 256


def _pick_levels(labels: list[int]) -> list[int]:
    """A thoracic and a lumbar label near the middle of each region (or two in view)."""
    picks = []
    for region in ("thoracic", "lumbar"):
        of = [lab for lab in labels if anatomy.vertebra(lab).region == region]
        if of:
            picks.append(of[len(of) // 2])
    for lab in labels:
        if len(picks) >= 2:
            break
        if lab not in picks:
            picks.append(lab)
    return sorted(picks)


def axial_panel(ct: Image, labels: Image, centre_lps: np.ndarray, title: str) -> PILImage.Image:
    """An axial (radiological: patient right on the left, anterior up) bone-window slice
    through ``centre_lps``, labels blended in their colours."""
    mm = AXIAL_FIELD_MM / AXIAL_PX
    direction = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    origin = np.asarray(centre_lps, float) - np.array([AXIAL_FIELD_MM / 2, AXIAL_FIELD_MM / 2, 0.0])
    grid = Image(
        np.zeros((1, AXIAL_PX, AXIAL_PX), np.uint8), (mm, mm, mm), tuple(origin), direction
    )
    hu = resample_onto(ct, grid, fill=-1024.0).array[0].astype(np.float32)
    lab = resample_onto(labels, grid, nearest=True).array[0]
    # rows run anterior -> posterior (j = P) and columns right -> left (i = L): the
    # radiological view as it is
    panel = PILImage.fromarray(bone_window_rgb(hu, lab))
    ImageDraw.Draw(panel).text(
        (4, 3), title, fill=(255, 255, 255), font=ImageFont.load_default(size=13)
    )
    return panel


def preview_image(ct: Image, labels: Image, centroids_lps: dict[int, np.ndarray]) -> PILImage.Image:
    """The curved sagittal + coronal overview over one or two axial panels (``labels`` on
    ``ct``'s grid, centroids LPS mm)."""
    overview, _ = render_overview(ct, labels, centroids_lps)
    levels = _pick_levels(sorted(centroids_lps))
    if not levels:  # a leg: axial slices through the middle of the field of view
        panels = [axial_panel(ct, labels, field_centre_lps(ct), "axial, mid field of view")]
    else:
        panels = [
            axial_panel(ct, labels, centroids_lps[lab], f"axial {anatomy.vertebra(lab).name}")
            for lab in levels
        ]
    width = max(overview.width, AXIAL_PX * len(panels) + 8 * (len(panels) - 1))
    out = PILImage.new("RGB", (width, overview.height + 8 + AXIAL_PX), (0, 0, 0))
    out.paste(overview, (0, 0))
    for n, p in enumerate(panels):
        out.paste(p, (n * (AXIAL_PX + 8), overview.height + 8))
    return out


def write_preview_png(
    path: str | os.PathLike,
    ct: Image,
    labels: Image,
    centroids_lps: dict[int, np.ndarray],
    force: bool = False,
) -> Path:
    """Write :func:`preview_image` as a 256-colour PNG (refuses to overwrite unless ``force``)."""
    picture = preview_image(ct, labels, centroids_lps)
    with atomic_path(path, force) as tmp:
        # 256 colours are plenty for grey + label colours and keep a preview ~100-200 KB
        picture.quantize(colors=256, method=PILImage.Quantize.MEDIANCUT).save(
            tmp, format="PNG", optimize=True
        )
    return Path(path)
