"""A PNG overview: a sagittal and a coronal view of the spine (bone window) with the
vertebra labels blended in their colours and their names written beside them.

A flat slice misses parts of a scoliotic (coronal curve) or kyphotic spine, so both views
are *curved* reformats that follow the spine's centre line: for every display row (one
height, LPS z) the sagittal view samples the CT at the centre line's left-right position
(x) of that height and the coronal view at its anterior-posterior position (y). The centre
line runs through the vertebra centroids (linear between them, held constant beyond the
end vertebrae). Labels are shown from a thin slab, ``SLAB_MM`` either side of the curved
surface: each pixel shows the label nearest the surface, so a vertebra rotated or bent
away from the centre line is still coloured.

The views are sampled from display grids fixed in the patient (LPS), so the picture is
shown the usual radiological way whatever the array's axis order: sagittal with anterior
on the left, coronal with the patient's right on the left, superior up; square pixels, so
the aspect follows the physical spacing. Names that would overlap are pushed apart
vertically, with a leader line to their vertebra. Notes that qualify the result (thick
voxels, a device fallback: the report's messages) are written under the views, so that the
picture is not read apart from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from SpineLabelerLib import anatomy
from SpineLabelerLib.evaluation.centroids import centroids_from_labels
from SpineLabelerLib.image import Image, index_to_lps, resample_onto
from SpineLabelerLib.io._files import atomic_path

BONE_WINDOW = (300.0, 1500.0)  # level, width (HU)
PANEL_PX = 512  # pixels along the largest field-of-view side
LABEL_ALPHA = 0.45
SLAB_MM = 8.0  # labels within this distance of the curved surface are shown
HEADER_PX = 22
GAP_PX = 8
FONT_SIZE = 13
NOTE_LINE_PX = 17
NOTE_COLOUR = (255, 210, 80)
NAME_OFFSET_PX = 4  # gap between a vertebra's right edge and its name
# Display grids: columns, rows, and the through-plane axis as LPS unit vectors.
_VIEW_AXES = {
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),  # A -> P, S -> I
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # R -> L, S -> I
}
_EDGE_LETTERS = {"sagittal": ("A", "P"), "coronal": ("R", "L")}

Box = tuple[int, int, int, int]  # left, top, right, bottom pixels of the whole picture


@dataclass(frozen=True)
class OverviewLayout:
    """Where each view sits in the picture: (left, top, right, bottom) pixels; mm per pixel;
    the point the views are centred on (LPS mm); the box of every name written, per view
    (``{"sagittal": {label: box}, "coronal": {...}}``, picture pixels); the labels each
    view shows (``{"sagittal": (label, ...), ...}``, ascending)."""

    sagittal_box: Box
    coronal_box: Box
    mm_per_px: float
    centre_lps: tuple[float, float, float]
    name_boxes: Mapping[str, Mapping[int, Box]]
    labels_shown: Mapping[str, tuple[int, ...]]


def corners_lps(image: Image) -> np.ndarray:
    """``(8, 3)`` LPS mm of the outer corners of the image's voxel block."""
    n = np.asarray(image.size_ijk, float)
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float)
    return index_to_lps(image, corners * n - 0.5)


def field_centre_lps(image: Image) -> np.ndarray:
    """``(3,)`` LPS mm centre of the field of view."""
    return corners_lps(image).mean(axis=0)


def _view_grid(ct: Image, view: str, centre_lps: np.ndarray, mm_per_px: float) -> Image:
    """A one-slice grid through ``centre_lps`` covering the CT's bounding box, in display order."""
    cols, rows, normal = (np.array(a) for a in _VIEW_AXES[view])
    corners = corners_lps(ct)
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
    return field_centre_lps(ct)


def _colour_table() -> np.ndarray:
    table = np.zeros((max(anatomy.MAX_LABEL + 1, 256), 3), np.float32)
    for v in anatomy.VERTEBRAE:
        table[v.label] = v.color_rgb
    return table


def bone_window_rgb(hu: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """``(rows, cols, 3)`` uint8: ``hu`` (rows, cols) in the bone window, ``labels`` (VerSe
    values, same shape) blended over it in their colours."""
    level, width = BONE_WINDOW
    grey = np.clip((hu - (level - width / 2)) / width, 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if labels is not None:
        on = labels > 0
        colours = _colour_table()[np.clip(labels[on], 0, 255).astype(np.intp)]
        rgb[on] = (1 - LABEL_ALPHA) * rgb[on] + LABEL_ALPHA * colours
    return np.round(rgb).astype(np.uint8)


def centre_line_offsets(grid: Image, centroids_lps: Mapping[int, np.ndarray] | None) -> np.ndarray:
    """``(rows,)`` through-plane position (mm, along the view's normal, relative to ``grid``'s
    plane) of the spine centre line at each display row's height.

    Linear between the centroids sorted by height (LPS z), constant beyond the end
    vertebrae; all zeros (the flat plane) without centroids.
    """
    rows = grid.array.shape[1]
    normal, row_dir = grid.direction[:, 2], grid.direction[:, 1]
    if not centroids_lps:
        return np.zeros(rows)
    points = np.array([np.asarray(p, float) for p in centroids_lps.values()])
    points = points[np.argsort(points[:, 2])]
    origin = np.asarray(grid.origin_lps)
    row_z = origin[2] + np.arange(rows) * grid.spacing_mm[1] * row_dir[2]  # LPS z of each row
    return np.interp(row_z, points[:, 2], points @ normal) - float(normal @ origin)


def _slab_grid(grid: Image, lo_mm: float, n: int, step_mm: float) -> Image:
    """``n`` slices parallel to ``grid``, ``step_mm`` apart, the first ``lo_mm`` along its normal."""
    normal = grid.direction[:, 2]
    origin = np.asarray(grid.origin_lps) + lo_mm * normal
    rows, cols = grid.array.shape[1:]
    spacing = (grid.spacing_mm[0], grid.spacing_mm[1], step_mm)
    return Image(np.zeros((n, rows, cols), np.uint8), spacing, tuple(origin), grid.direction)


def _render_view(
    ct: Image, labels: Image | None, grid: Image, offsets_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RGB ``(rows, cols, 3)`` uint8 of one curved view and its ``(rows, cols)`` labels.

    ``offsets_mm`` (rows,): the curved surface's distance from ``grid``'s plane per row.
    The CT and labels are resampled (the one resampler) onto a stack of parallel slices
    spanning the surface plus the slab, no closer than the CT's finest voxel spacing; each
    row then reads its own depth from the stack: linear between the two nearest slices for
    the CT, the nearest label within ``SLAB_MM``.
    """
    step = max(grid.spacing_mm[2], min(ct.spacing_mm))
    margin = SLAB_MM + step
    lo = float(offsets_mm.min()) - margin
    n = int(np.ceil((float(offsets_mm.max()) + margin - lo) / step)) + 1
    slab = _slab_grid(grid, lo, n, step)
    depth = (offsets_mm - lo) / step  # fractional slice index per row
    rows = np.arange(grid.array.shape[1])[:, None]
    cols = np.arange(grid.array.shape[2])[None, :]
    # the CT's own dtype: no float copy of a whole clinical volume; display needs no sub-HU
    stack = resample_onto(ct, slab, fill=-1024.0).array.astype(np.float32)
    k0 = np.floor(depth).astype(np.intp)
    w = (depth - k0)[:, None]
    hu = (1 - w) * stack[k0[:, None], rows, cols] + w * stack[k0[:, None] + 1, rows, cols]
    lab = np.zeros(hu.shape, np.int64)
    if labels is not None:
        stack = resample_onto(labels, slab, nearest=True).array
        k = np.round(depth).astype(np.intp)
        reach = int(np.floor(SLAB_MM / step))
        for d in sorted(range(-reach, reach + 1), key=abs):  # nearest the surface wins
            seen = stack[np.clip(k + d, 0, n - 1)[:, None], rows, cols]
            lab = np.where(lab == 0, seen, lab)
    return bone_window_rgb(hu, lab), lab


def _to_view_px(grid: Image, lps: np.ndarray) -> tuple[float, float]:
    d = np.asarray(lps, float) - np.asarray(grid.origin_lps)
    return float(d @ grid.direction[:, 0] / grid.spacing_mm[0]), float(
        d @ grid.direction[:, 1] / grid.spacing_mm[1]
    )


def spread_groups(
    wanted: Sequence[float], gap: float, lo: float, hi: float
) -> list[tuple[float, list[int]]]:
    """Place items at least ``gap`` apart within [lo, hi], as close to ``wanted`` as can be.

    Neighbours closer than ``gap`` form a group centred on their wanted mean (then shifted
    into range); groups are merged until none overlap. Returns ``(first position, member
    indices in order)`` per group, top to bottom. Used for name rows (pixels).
    """
    order = np.argsort(np.asarray(wanted, float), kind="stable")
    groups: list[list[int]] = []

    def start(group: list[int]) -> float:
        mean = float(np.mean([wanted[i] for i in group]))
        top = mean - (len(group) - 1) * gap / 2
        return max(lo, min(top, hi - (len(group) - 1) * gap))

    for i in order:
        groups.append([int(i)])
        while len(groups) > 1 and start(groups[-1]) < start(groups[-2]) + len(groups[-2]) * gap:
            last = groups.pop()
            groups[-1].extend(last)
    return [(start(group), group) for group in groups]


def spread_positions(wanted: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """The position of every item of :func:`spread_groups`, in the order of ``wanted``."""
    out = [0.0] * len(wanted)
    for top, group in spread_groups(wanted, gap, lo, hi):
        for n, i in enumerate(group):
            out[i] = top + n * gap
    return out


def render_overview(
    ct: Image,
    labels: Image | None = None,
    centroids_lps: Mapping[int, np.ndarray] | None = None,
    notes: Sequence[str] = (),
) -> tuple[PILImage.Image, OverviewLayout]:
    """Draw the overview; ``labels`` on the CT's grid (VerSe values), centroids LPS mm
    (taken from ``labels`` when not given; they also set the curved views' centre line);
    ``notes`` are written under the views."""
    if labels is not None and not labels.same_grid(ct):
        raise ValueError("labels must lie on the CT's grid")
    if centroids_lps is None and labels is not None:
        centroids_lps = centroids_from_labels(labels)
    centroids_lps = {
        int(k): np.asarray(v, float)
        for k, v in (centroids_lps or {}).items()
        if int(k) in anatomy.BY_LABEL
    }
    centre = _labels_centre(labels, ct)
    mm_per_px = float(np.ptp(corners_lps(ct), axis=0).max()) / PANEL_PX
    grids = {view: _view_grid(ct, view, centre, mm_per_px) for view in _VIEW_AXES}
    rendered = {
        view: _render_view(ct, labels, grid, centre_line_offsets(grid, centroids_lps))
        for view, grid in grids.items()
    }

    sag, cor = rendered["sagittal"][0], rendered["coronal"][0]
    width = sag.shape[1] + GAP_PX + cor.shape[1]
    views_bottom = HEADER_PX + max(sag.shape[0], cor.shape[0])
    font = ImageFont.load_default(size=FONT_SIZE)
    note_lines = wrap_notes(notes, width - 8, font)
    height = views_bottom + (len(note_lines) * NOTE_LINE_PX + 6 if note_lines else 0)
    canvas = PILImage.new("RGB", (width, height), (0, 0, 0))
    boxes: dict[str, Box] = {}
    name_boxes: dict[str, dict[int, Box]] = {}
    left = 0
    draw = ImageDraw.Draw(canvas)
    for view in ("sagittal", "coronal"):
        rgb, lab = rendered[view]
        canvas.paste(PILImage.fromarray(rgb), (left, HEADER_PX))
        box = (left, HEADER_PX, left + rgb.shape[1], HEADER_PX + rgb.shape[0])
        boxes[view] = box
        draw.text((left + 4, 3), view, fill=(255, 255, 255), font=font)
        _draw_edge_letters(draw, box, _EDGE_LETTERS[view], font)
        name_boxes[view] = _draw_names(draw, box, grids[view], lab, centroids_lps, font)
        left = box[2] + GAP_PX
    for n, line in enumerate(note_lines):
        draw.text((4, views_bottom + 4 + n * NOTE_LINE_PX), line, fill=NOTE_COLOUR, font=font)
    shown = {
        view: tuple(int(v) for v in np.unique(lab) if v) for view, (_, lab) in rendered.items()
    }
    layout = OverviewLayout(
        boxes["sagittal"],
        boxes["coronal"],
        mm_per_px,
        tuple(float(c) for c in centre),
        name_boxes,
        shown,
    )
    return canvas, layout


def wrap_notes(notes: Sequence[str], width_px: float, font) -> list[str]:
    """The notes as lines no wider than ``width_px`` (words kept whole; a single longer word
    stays on its own line), each note's first line marked with a dash."""
    lines: list[str] = []
    for note in notes:
        prefix, words = "- ", []
        for word in note.split():
            if words and font.getlength(prefix + " ".join([*words, word])) > width_px:
                lines.append(prefix + " ".join(words))
                prefix, words = "  ", []
            words.append(word)
        lines.append(prefix + " ".join(words))
    return lines


def _draw_edge_letters(draw: ImageDraw.ImageDraw, box: Box, letters: tuple[str, str], font) -> None:
    x0, y0, x1, y1 = box
    ym, xm = (y0 + y1) // 2, (x0 + x1) // 2
    yellow = (255, 255, 0)
    draw.text((x0 + 3, ym), letters[0], fill=yellow, font=font, anchor="lm")
    draw.text((x1 - 3, ym), letters[1], fill=yellow, font=font, anchor="rm")
    draw.text((xm, y0 + 2), "S", fill=yellow, font=font, anchor="mt")
    draw.text((xm, y1 - 2), "I", fill=yellow, font=font, anchor="mb")


def _draw_names(
    draw: ImageDraw.ImageDraw,
    box: Box,
    grid: Image,
    lab: np.ndarray,
    centroids_lps: Mapping[int, np.ndarray],
    font,
) -> dict[int, Box]:
    """Write each vertebra's name right of where it shows in this view, at its centroid's
    height, clear of every vertebra in the rows the name spans. Names closer than the text
    height are spread apart vertically as a group in one such column; a name moved away
    from its vertebra is joined to it by a thin line. Returns each name's box (picture px)."""
    style = dict(font=font, anchor="lm", stroke_width=2)
    top, bottom = draw.textbbox((0, 0), "C7T12L6", **style)[1::2]
    text_h = bottom - top
    anchors: list[tuple[int, float, float]] = []  # label, x, row (panel pixels)
    for label, lps in sorted(centroids_lps.items()):
        col, row = _to_view_px(grid, lps)
        r = int(round(row))
        if not 0 <= r < lab.shape[0]:
            continue
        here = np.nonzero(lab[r] == label)[0]
        anchors.append((label, float(here.max() if here.size else col), row))
    groups = spread_groups(
        [a[2] for a in anchors], text_h + 1, text_h / 2, lab.shape[0] - text_h / 2
    )
    out: dict[int, Box] = {}
    for first, members in groups:
        ys = [first + n * (text_h + 1) for n in range(len(members))]
        # one column clear of every vertebra between the group's top and bottom
        r0 = int(max(0, min(min(ys), min(anchors[i][2] for i in members)) - text_h / 2))
        r1 = int(
            min(lab.shape[0], max(max(ys), max(anchors[i][2] for i in members)) + text_h / 2 + 1)
        )
        labelled = np.nonzero(lab[r0:r1].any(axis=0))[0]
        right = max(
            [anchors[i][1] for i in members] + ([float(labelled.max())] if labelled.size else [])
        )
        spread = len(members) > 1 or right > anchors[members[0]][1] + NAME_OFFSET_PX
        x_text = right + (3 if spread else 1) * NAME_OFFSET_PX
        for i, y in zip(members, ys):
            label, x, row = anchors[i]
            vertebra = anatomy.BY_LABEL[label]
            tx = min(x_text, lab.shape[1] - draw.textlength(vertebra.name, font=font) - 4)
            if spread:  # a leader line from the vertebra to its name
                draw.line(
                    [(box[0] + x, box[1] + row), (box[0] + tx - 2, box[1] + y)],
                    fill=vertebra.color_rgb,
                )
            xy = (box[0] + tx, box[1] + y)
            draw.text(xy, vertebra.name, fill=vertebra.color_rgb, stroke_fill=(0, 0, 0), **style)
            out[label] = tuple(int(v) for v in draw.textbbox(xy, vertebra.name, **style))
    return out


def write_overview_png(
    path: str | os.PathLike,
    ct: Image,
    labels: Image | None = None,
    centroids_lps: Mapping[int, np.ndarray] | None = None,
    force: bool = False,
    notes: Sequence[str] = (),
) -> Path:
    """Write the overview picture as PNG."""
    picture, _ = render_overview(ct, labels, centroids_lps, notes)
    with atomic_path(path, force) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)
