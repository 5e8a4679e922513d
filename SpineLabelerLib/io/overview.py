"""A PNG overview: a sagittal and a coronal CT slice through the spine (bone window) with
the vertebra labels blended in their colours and their names written beside them.

Both views are resampled from the CT onto display grids fixed in the patient (LPS), so the
picture is shown the usual radiological way whatever the array's axis order: sagittal
with anterior on the left, coronal with the patient's right on the left, superior up;
square pixels, so the aspect follows the physical spacing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, index_to_lps, resample_onto
from SpineLabelerLib.io._files import atomic_path

BONE_WINDOW = (300.0, 1500.0)  # level, width (HU)
PANEL_PX = 512  # pixels along the largest field-of-view side
LABEL_ALPHA = 0.45
HEADER_PX = 22
GAP_PX = 8
# Display grids: columns, rows, and the through-plane axis as LPS unit vectors.
_VIEW_AXES = {
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),  # A -> P, S -> I
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # R -> L, S -> I
}
_EDGE_LETTERS = {"sagittal": ("A", "P"), "coronal": ("R", "L")}


@dataclass(frozen=True)
class OverviewLayout:
    """Where each view sits in the picture: (left, top, right, bottom) pixels; mm per pixel."""

    sagittal_box: tuple[int, int, int, int]
    coronal_box: tuple[int, int, int, int]
    mm_per_px: float
    centre_lps: tuple[float, float, float]


def _corners_lps(image: Image) -> np.ndarray:
    n = np.asarray(image.size_ijk, float)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float)
    return index_to_lps(image, corners * n - 0.5)


def _view_grid(ct: Image, view: str, centre_lps: np.ndarray, mm_per_px: float) -> Image:
    """A one-slice grid through ``centre_lps`` covering the CT's bounding box, in display order."""
    cols, rows, normal = (np.array(a) for a in _VIEW_AXES[view])
    corners = _corners_lps(ct)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    width = int(np.ceil(abs(cols) @ (hi - lo) / mm_per_px))
    height = int(np.ceil(abs(rows) @ (hi - lo) / mm_per_px))
    start = np.where(cols + rows > 0, lo, hi)  # first column / row at the low / high end
    origin = start + (cols + rows) * mm_per_px / 2
    origin = origin - normal * (normal @ origin) + normal * (normal @ centre_lps)
    direction = np.stack([cols, rows, normal], axis=1)
    return Image(np.zeros((1, height, width), np.uint8), (mm_per_px,) * 3, tuple(origin), direction)


def _labels_centre(labels: Image | None, ct: Image) -> np.ndarray:
    if labels is not None and np.any(labels.array):
        kji = np.argwhere(labels.array > 0).mean(axis=0)
        return index_to_lps(labels, kji[::-1])[0]
    return _corners_lps(ct).mean(axis=0)


def _colour_table() -> np.ndarray:
    table = np.zeros((max(anatomy.MAX_LABEL + 1, 256), 3), np.float32)
    for v in anatomy.VERTEBRAE:
        table[v.label] = v.color_rgb
    return table


def _render_view(ct: Image, labels: Image | None, grid: Image) -> tuple[np.ndarray, np.ndarray]:
    """RGB ``(rows, cols, 3)`` uint8 of one view and its ``(rows, cols)`` labels."""
    hu = resample_onto(ct.with_array(ct.array.astype(np.float32)), grid, fill=-1024.0).array[0]
    level, width = BONE_WINDOW
    grey = np.clip((hu - (level - width / 2)) / width, 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    lab = np.zeros(hu.shape, np.int64)
    if labels is not None:
        lab = resample_onto(labels, grid, nearest=True).array[0].astype(np.int64)
        colours = _colour_table()[np.clip(lab, 0, 255)]
        on = lab > 0
        rgb[on] = (1 - LABEL_ALPHA) * rgb[on] + LABEL_ALPHA * colours[on]
    return np.round(rgb).astype(np.uint8), lab


def _to_view_px(grid: Image, lps: np.ndarray) -> tuple[float, float]:
    d = np.asarray(lps, float) - np.asarray(grid.origin_lps)
    return float(d @ grid.direction[:, 0] / grid.spacing_mm[0]), float(
        d @ grid.direction[:, 1] / grid.spacing_mm[1]
    )


def render_overview(
    ct: Image,
    labels: Image | None = None,
    centroids_lps: Mapping[int, np.ndarray] | None = None,
) -> tuple[PILImage.Image, OverviewLayout]:
    """Draw the overview; ``labels`` on the CT's grid (VerSe values), centroids LPS mm."""
    if labels is not None and not labels.same_grid(ct):
        raise ValueError("labels must lie on the CT's grid")
    centre = _labels_centre(labels, ct)
    mm_per_px = float(np.ptp(_corners_lps(ct), axis=0).max()) / PANEL_PX
    grids = {view: _view_grid(ct, view, centre, mm_per_px) for view in _VIEW_AXES}
    rendered = {view: _render_view(ct, labels, grid) for view, grid in grids.items()}
    if centroids_lps is None and labels is not None:
        centroids_lps = _centroids_from_labels(labels)

    sag, cor = rendered["sagittal"][0], rendered["coronal"][0]
    height = HEADER_PX + max(sag.shape[0], cor.shape[0])
    canvas = PILImage.new("RGB", (sag.shape[1] + GAP_PX + cor.shape[1], height), (0, 0, 0))
    boxes = {}
    left = 0
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    for view in ("sagittal", "coronal"):
        rgb, lab = rendered[view]
        canvas.paste(PILImage.fromarray(rgb), (left, HEADER_PX))
        box = (left, HEADER_PX, left + rgb.shape[1], HEADER_PX + rgb.shape[0])
        boxes[view] = box
        draw.text((left + 4, 3), view, fill=(255, 255, 255), font=font)
        _draw_edge_letters(draw, box, _EDGE_LETTERS[view], font)
        for label, lps in sorted((centroids_lps or {}).items()):
            _draw_name(draw, box, grids[view], lab, int(label), lps, font)
        left = box[2] + GAP_PX
    layout = OverviewLayout(
        boxes["sagittal"], boxes["coronal"], mm_per_px, tuple(float(c) for c in centre)
    )
    return canvas, layout


def _centroids_from_labels(labels: Image) -> dict[int, np.ndarray]:
    out = {}
    for label in np.unique(labels.array):
        if label != 0 and int(label) in anatomy.BY_LABEL:
            kji = np.argwhere(labels.array == label).mean(axis=0)
            out[int(label)] = index_to_lps(labels, kji[::-1])[0]
    return out


def _draw_edge_letters(draw: ImageDraw.ImageDraw, box, letters: tuple[str, str], font) -> None:
    x0, y0, x1, y1 = box
    ym, xm = (y0 + y1) // 2, (x0 + x1) // 2
    yellow = (255, 255, 0)
    draw.text((x0 + 3, ym), letters[0], fill=yellow, font=font, anchor="lm")
    draw.text((x1 - 3, ym), letters[1], fill=yellow, font=font, anchor="rm")
    draw.text((xm, y0 + 2), "S", fill=yellow, font=font, anchor="mt")
    draw.text((xm, y1 - 2), "I", fill=yellow, font=font, anchor="mb")


def _draw_name(draw, box, grid: Image, lab: np.ndarray, label: int, lps, font) -> None:
    """Write the vertebra's name just to the right of where it shows in this view."""
    if label not in anatomy.BY_LABEL:
        return
    vertebra = anatomy.BY_LABEL[label]
    col, row = _to_view_px(grid, lps)
    r = int(round(row))
    if not 0 <= r < lab.shape[0]:
        return
    cols_here = np.nonzero(lab[r] == label)[0]
    x = (cols_here.max() if cols_here.size else col) + 4
    x = min(x, lab.shape[1] - 24)
    draw.text(
        (box[0] + x, box[1] + row),
        vertebra.name,
        fill=vertebra.color_rgb,
        font=font,
        anchor="lm",
        stroke_width=2,
        stroke_fill=(0, 0, 0),
    )


def write_overview_png(
    path: str | os.PathLike,
    ct: Image,
    labels: Image | None = None,
    centroids_lps: Mapping[int, np.ndarray] | None = None,
    force: bool = False,
) -> Path:
    """Write the overview picture as PNG."""
    picture, _ = render_overview(ct, labels, centroids_lps)
    with atomic_path(path, force) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)
