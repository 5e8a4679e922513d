"""How much a CT looks like a real spine CT: tissue HU, vertebra shape, image quality.

Every function takes a ``(ct, labels)`` pair of :class:`~SpineLabelerLib.image.Image` on one
grid (CT in HU, labels in VerSe values) and applies the *same* documented rules to a real
case and to a phantom, so that their figures can be compared one to one. Distances are mm
(anisotropic spacing is honoured); directions are LPS.

Tissue rules (constants below):
- cortical shell: vertebra voxels within ``SHELL_MM`` of the mask's outside (the rim);
- cancellous core: vertebra voxels deeper than ``CORE_MM`` (the eroded mask);
- disc: non-bone voxels on the segment joining two consecutive vertebral-body centres,
  within ``DISC_RADIUS_MM`` of it, between the two end plates and ``BONE_MARGIN_MM`` from bone;
- canal: the hole each vertebra encloses in its own axial planes (local frame, below),
  ``BONE_MARGIN_MM`` from bone;
- paraspinal muscle / fat: voxels ``PARASPINAL_BAND_MM`` from bone, at least
  ``PARASPINAL_POSTERIOR_MM`` behind the centroid of the nearest vertebra and
  ``PARASPINAL_LATERAL_MM`` off its mid-plane, whose HU smoothed with a Gaussian of
  ``CLASSIFY_SIGMA_MM`` falls in ``MUSCLE_HU`` / ``FAT_HU`` (statistics use the raw HU).

Local frame of a level: ``s`` runs cranially along the spine (through the neighbouring
centroids), ``a`` is LPS anterior made orthogonal to ``s``, ``w = a x s`` runs sideways.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import wasserstein_distance

from SpineLabelerLib import anatomy
from SpineLabelerLib.evaluation.centroids import centroids_from_labels
from SpineLabelerLib.image import Image, index_to_lps, lps_to_index, resample_onto, subimage

SHELL_MM = 2.0
CORE_MM = 4.0
BONE_MARGIN_MM = 1.5
DISC_RADIUS_MM = 6.0
MUSCLE_HU = (-29.0, 150.0)  # skeletal muscle window (Mitsiopoulos et al. 1998)
FAT_HU = (-190.0, -30.0)  # adipose tissue window (same source)
CLASSIFY_SIGMA_MM = 1.5  # Gaussian smoothing of the HU used to assign muscle / fat
PARASPINAL_BAND_MM = (3.0, 30.0)
PARASPINAL_POSTERIOR_MM = 20.0
PARASPINAL_LATERAL_MM = 10.0
LOCAL_STEP_MM = 0.5  # grid step of the per-level local frame
MIN_CANAL_AREA_MM2 = 20.0
NOISE_WINDOW_MM = 5.0
HOMOGENEOUS_HU = (10.0, 90.0)  # smoothed HU of a muscle region used for noise
EDGE_MIN_CONTRAST_HU = 200.0
EDGE_CONE_DEG = 25.0
TISSUES: tuple[str, ...] = ("cortical", "cancellous", "disc", "muscle", "fat", "canal", "arch")
_ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])
_SUPERIOR_LPS = np.array([0.0, 0.0, 1.0])


def _check_pair(ct: Image, labels: Image) -> None:
    if not ct.same_grid(labels):
        raise ValueError("CT and labelmap must share one grid (shape, spacing, origin, direction)")
    if not np.any(labels.array > 0):
        raise ValueError("labelmap holds no vertebra")


def _spacing_kji(image: Image) -> tuple[float, float, float]:
    return tuple(image.spacing_mm[::-1])  # type: ignore[return-value]


def _box(mask: np.ndarray, image: Image, margin_mm: float) -> tuple[slice, ...]:
    """(K, J, I) slices of the bounding box of ``mask`` grown by ``margin_mm``, clipped."""
    idx = np.nonzero(mask)
    grow = [int(math.ceil(margin_mm / s)) for s in _spacing_kji(image)]
    return tuple(
        slice(max(int(i.min()) - g, 0), min(int(i.max()) + 1 + g, n))
        for i, g, n in zip(idx, grow, mask.shape)
    )


def _embed(mask: np.ndarray, box: tuple[slice, ...], shape) -> np.ndarray:
    full = np.zeros(shape, bool)
    full[box] = mask
    return full


# --------------------------------------------------------------------------- HU statistics


@dataclass(frozen=True)
class HUStats:
    """HU distribution of one tissue: voxel count, median and quartiles (HU)."""

    n: int
    median: float
    q25: float
    q75: float
    samples: np.ndarray = field(repr=False, compare=False)

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    @staticmethod
    def of(values: np.ndarray, max_samples: int = 200_000) -> HUStats:
        values = np.asarray(values, float).ravel()
        if values.size == 0:
            return HUStats(0, math.nan, math.nan, math.nan, values)
        q25, med, q75 = np.percentile(values, [25, 50, 75])
        n = int(values.size)
        if n > max_samples:  # keep a fixed, seeded subset for histogram distances
            values = np.random.default_rng(0).choice(values, max_samples, replace=False)
        return HUStats(n, float(med), float(q25), float(q75), values)


def hu_distance(a: HUStats, b: HUStats) -> float:
    """Earth mover's (Wasserstein-1) distance between two HU histograms, in HU."""
    if a.n == 0 or b.n == 0:
        return math.nan
    return float(wasserstein_distance(a.samples, b.samples))


def within_target(candidate: HUStats, real: HUStats) -> bool:
    """Issue 7's target: median within 15 % of the real one (or 40 HU where that is larger)
    and the two inter-quartile ranges overlapping."""
    if candidate.n == 0 or real.n == 0:
        return False
    tolerance = max(0.15 * abs(real.median), 40.0)
    close = abs(candidate.median - real.median) <= tolerance
    overlap = candidate.q25 <= real.q75 and real.q25 <= candidate.q75
    return bool(close and overlap)


# ----------------------------------------------------------------------------- local frames


@dataclass(frozen=True)
class LevelFrame:
    """Centroid (LPS mm) and local axes (3x3, columns w, a, s as LPS unit vectors) of a level."""

    label: int
    centroid_lps: np.ndarray
    axes: np.ndarray


def level_frames(labels: Image) -> dict[int, LevelFrame]:
    """Local frame of every vertebra: ``s`` through its neighbours' centroids (cranial =
    smaller label), ``a`` = LPS anterior orthogonalised, ``w = a x s``."""
    centroids = centroids_from_labels(labels)
    ordered = sorted(centroids)
    frames = {}
    for n, label in enumerate(ordered):
        above = centroids[ordered[n - 1]] if n > 0 else None
        below = centroids[ordered[n + 1]] if n + 1 < len(ordered) else None
        c = centroids[label]
        if above is not None and below is not None:
            s = above - below
        elif above is not None:
            s = above - c
        elif below is not None:
            s = c - below
        else:
            s = _SUPERIOR_LPS.copy()
        s = s / np.linalg.norm(s)
        a = _ANTERIOR_LPS - np.dot(_ANTERIOR_LPS, s) * s
        if np.linalg.norm(a) < 0.3:  # spine running anterior-posterior: not a spine CT pose
            raise ValueError(f"label {label}: spine axis {s} is nearly anterior-posterior")
        a = a / np.linalg.norm(a)
        w = np.cross(a, s)
        frames[label] = LevelFrame(label, c, np.column_stack([w, a, s]))
    return frames


def _local_grid(labels: Image, frame: LevelFrame, margin_mm: float = 3.0) -> Image:
    """An empty grid in ``frame``'s axes (step ``LOCAL_STEP_MM``) covering the level's mask."""
    _, lps = _grid_points_lps(labels, labels.array == frame.label)
    q = (lps - frame.centroid_lps) @ frame.axes
    lo = q.min(axis=0) - margin_mm - max(labels.spacing_mm) / 2
    hi = q.max(axis=0) + margin_mm + max(labels.spacing_mm) / 2
    size = np.ceil((hi - lo) / LOCAL_STEP_MM).astype(int) + 1
    origin = frame.centroid_lps + frame.axes @ lo
    step = (LOCAL_STEP_MM,) * 3
    return Image(np.zeros(size[::-1], np.uint8), step, tuple(origin), frame.axes)


def _extent_mm(coords: np.ndarray) -> float:
    """Extent (mm) of integer local-grid coordinates: (max - min + 1) steps."""
    if coords.size == 0:
        return math.nan
    return float(coords.max() - coords.min() + 1) * LOCAL_STEP_MM


# ------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class LevelShape:
    """Shape figures of one level (mm, ml; NaN where not measurable). ``at_border``: the mask
    touches the grid border, so the level may be cut by the field of view (in a crop that
    ends exactly at the mask it may also be whole) and its figures are lower bounds."""

    label: int
    name: str
    at_border: bool
    volume_ml: float
    body_height_mm: float
    body_width_mm: float
    body_depth_mm: float
    canal_area_mm2: float
    canal_ap_mm: float
    canal_lr_mm: float
    disc_gap_below_mm: float  # to the next level caudally, along the body-centre line
    # The posterior arch (all of the mask behind the canal's back wall: laminae, articular
    # and spinous processes): its cranio-caudal extent, and how far it reaches behind the
    # canal. NaN where no canal is enclosed.
    arch_height_mm: float = math.nan
    arch_reach_mm: float = math.nan


@dataclass(frozen=True)
class _LevelParts:
    frame: LevelFrame
    grid: Image  # local grid, array = this level's mask (k: s, j: a, i: w)
    body: np.ndarray  # bool, local grid
    canal: np.ndarray  # bool, local grid (empty when no canal is enclosed)
    body_centre_lps: np.ndarray


def _canal(mask: np.ndarray) -> np.ndarray:
    """Per axial (s) slice, the largest hole the mask encloses (the vertebral foramen)."""
    canal = np.zeros_like(mask)
    min_pixels = MIN_CANAL_AREA_MM2 / LOCAL_STEP_MM**2
    for k in range(mask.shape[0]):
        if not mask[k].any():
            continue
        holes = ndi.binary_fill_holes(mask[k]) & ~mask[k]
        parts, n = ndi.label(holes)
        if n == 0:
            continue
        sizes = np.bincount(parts.ravel())[1:]
        if sizes.max() >= min_pixels:
            canal[k] = parts == (int(np.argmax(sizes)) + 1)
    return canal


def _level_parts(labels: Image, frame: LevelFrame) -> _LevelParts:
    grid = _local_grid(labels, frame)
    local = resample_onto(labels, grid, nearest=True)
    mask = np.asarray(local.array) == frame.label
    canal = _canal(mask)
    if canal.any():
        # The body is what lies anterior (+a, index j) of the canal's front wall.
        front = int(np.median([np.nonzero(canal[k].any(axis=1))[0].max() for k in _slices(canal)]))
        body = mask.copy()
        body[:, : front + 1, :] = False
    else:
        body = mask
    centre_kji = np.argwhere(body).mean(axis=0) if body.any() else np.argwhere(mask).mean(axis=0)
    centre = index_to_lps(local, centre_kji[::-1])[0]
    return _LevelParts(frame, local.with_array(mask), body, canal, centre)


def _slices(mask: np.ndarray) -> list[int]:
    return [k for k in range(mask.shape[0]) if mask[k].any()]


def _body_dimensions(parts: _LevelParts) -> tuple[float, float, float]:
    """(height, width, depth) mm of the body: height along s in a 5 mm column through the
    body centre; in a 5 mm slab at mid-height, width along w within 5 mm of the body
    centre's coronal plane and depth along a within 5 mm of its sagittal plane."""
    body = parts.body
    if not body.any():
        return math.nan, math.nan, math.nan
    ck, cj, ci = lps_to_index(parts.grid, parts.body_centre_lps)[0][::-1]
    k, j, i = np.nonzero(body)
    half = 2.5 / LOCAL_STEP_MM
    column = (np.abs(i - ci) <= half) & (np.abs(j - cj) <= half)
    slab = np.abs(k - ck) <= half
    coronal = slab & (np.abs(j - cj) <= half)  # keeps processes behind the body centre out
    sagittal = slab & (np.abs(i - ci) <= half)
    return _extent_mm(k[column]), _extent_mm(i[coronal]), _extent_mm(j[sagittal])


def _canal_back(canal: np.ndarray) -> int | None:
    """Local-grid j index of the canal's back wall (median over slices; smaller j lies
    further behind), None where no canal is enclosed."""
    if not canal.any():
        return None
    return int(np.median([np.nonzero(canal[k].any(axis=1))[0].min() for k in _slices(canal)]))


def _arch_dimensions(parts: _LevelParts) -> tuple[float, float]:
    """(height, reach) mm of what lies behind the canal's back wall (median over slices)."""
    mask = np.asarray(parts.grid.array, bool)
    back = _canal_back(parts.canal)
    if back is None:
        return math.nan, math.nan
    arch = mask.copy()
    arch[:, back:, :] = False  # j runs anterior: smaller j is further behind
    if not arch.any():
        return math.nan, math.nan
    k, j, _ = np.nonzero(arch)
    return _extent_mm(k), float(back - j.min()) * LOCAL_STEP_MM


def _canal_dimensions(canal: np.ndarray) -> tuple[float, float, float]:
    """Median over enclosed slices of the canal's area (mm^2), AP and LR extent (mm)."""
    areas, aps, lrs = [], [], []
    for k in _slices(canal):
        jj, ii = np.nonzero(canal[k])
        areas.append(jj.size * LOCAL_STEP_MM**2)
        aps.append(_extent_mm(jj))
        lrs.append(_extent_mm(ii))
    if not areas:
        return math.nan, math.nan, math.nan
    return float(np.median(areas)), float(np.median(aps)), float(np.median(lrs))


def _line_labels(labels: Image, start: np.ndarray, end: np.ndarray, step: float = 0.25):
    """Labels (nearest voxel, -1 outside the grid) sampled every ``step`` mm from start to end."""
    length = float(np.linalg.norm(end - start))
    t = np.arange(0.0, length + step / 2, step)
    points = start + np.outer(t / max(length, 1e-9), end - start)
    idx = np.round(lps_to_index(labels, points)).astype(int)
    size = np.array(labels.size_ijk)
    inside = np.all((idx >= 0) & (idx < size), axis=1)
    values = np.full(t.size, -1, np.int64)
    values[inside] = labels.array[idx[inside, 2], idx[inside, 1], idx[inside, 0]]
    return t, values


def _disc_span(labels: Image, upper: _LevelParts, lower: _LevelParts):
    """(t_upper_end, t_lower_start, start, unit) along the body-centre line, or None."""
    start, end = upper.body_centre_lps, lower.body_centre_lps
    t, values = _line_labels(labels, start, end)
    in_upper = np.nonzero(values == upper.frame.label)[0]
    in_lower = np.nonzero(values == lower.frame.label)[0]
    if in_upper.size == 0 or in_lower.size == 0:
        return None
    a = t[in_upper.max()]
    later = in_lower[t[in_lower] > a]
    if later.size == 0:
        return None
    b = t[later.min()]
    unit = (end - start) / np.linalg.norm(end - start)
    return a, b, start, unit


def _border_labels(labels: np.ndarray) -> list[int]:
    """Labels whose voxels touch a face of the grid."""
    faces = [labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]]
    return sorted({int(v) for face in faces for v in np.unique(face) if v})


def _all_parts(labels: Image) -> dict[int, _LevelParts]:
    return {lab: _level_parts(labels, f) for lab, f in level_frames(labels).items()}


def shape_per_level(labels: Image) -> dict[int, LevelShape]:
    """Shape figures of every labelled level (see :class:`LevelShape`)."""
    full = np.asarray(labels.array)
    at_border = set(_border_labels(full))
    labels = subimage(labels, _box(full > 0, labels, 2.0))
    parts = _all_parts(labels)
    voxel_ml = float(np.prod(labels.spacing_mm)) / 1000.0
    counts = np.bincount(np.asarray(labels.array).ravel().astype(np.intp))
    out = {}
    for label, p in parts.items():
        gap = math.nan
        if label + 1 in parts:
            span = _disc_span(labels, p, parts[label + 1])
            if span is not None:
                gap = float(span[1] - span[0] - 0.25)
        name = anatomy.BY_LABEL[label].name if label in anatomy.BY_LABEL else f"label{label}"
        out[label] = LevelShape(
            label,
            name,
            label in at_border,
            float(counts[label] * voxel_ml),
            *_body_dimensions(p),
            *_canal_dimensions(p.canal),
            gap,
            *_arch_dimensions(p),
        )
    return out


# ------------------------------------------------------------------------------ tissues


def _grid_points_lps(image: Image, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kji = np.argwhere(mask)
    return kji, index_to_lps(image, kji[:, ::-1].astype(float))


def _box_around(image: Image, points_lps: np.ndarray, radius_mm: float) -> tuple[slice, ...]:
    """(K, J, I) slices of the grid box holding every point within ``radius_mm`` of the points."""
    offsets = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * radius_mm
    corners = (np.asarray(points_lps)[:, None, :] + offsets[None]).reshape(-1, 3)
    ijk = lps_to_index(image, corners)
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, None)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, image.size_ijk)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))


def _disc_mask(labels: Image, parts: dict[int, _LevelParts], bone_distance: np.ndarray):
    disc = np.zeros(labels.array.shape, bool)
    free = (np.asarray(labels.array) == 0) & (bone_distance >= BONE_MARGIN_MM)
    for label, upper in parts.items():
        if label + 1 not in parts:
            continue
        span = _disc_span(labels, upper, parts[label + 1])
        if span is None:
            continue
        a, b, start, unit = span
        ends = np.stack([start + a * unit, start + b * unit])
        box = _box_around(labels, ends, DISC_RADIUS_MM)
        kji = np.argwhere(free[box]) + [s.start for s in box]
        rel = index_to_lps(labels, kji[:, ::-1].astype(float)) - start
        t = rel @ unit
        radial = np.linalg.norm(rel - np.outer(t, unit), axis=1)
        keep = (t > a) & (t < b) & (radial <= DISC_RADIUS_MM)
        disc[tuple(kji[keep].T)] = True
    return disc


def _canal_mask(labels: Image, parts: dict[int, _LevelParts]) -> np.ndarray:
    """Canal voxels of the CT grid: those whose centre falls in a level's canal, away from bone."""
    canal = np.zeros(labels.array.shape, bool)
    spacing = (LOCAL_STEP_MM, LOCAL_STEP_MM)
    for p in parts.values():
        if not p.canal.any():
            continue
        core = np.zeros_like(p.canal)
        for k in _slices(p.canal):
            core[k] = ndi.distance_transform_edt(p.canal[k], sampling=spacing) > BONE_MARGIN_MM
        on_ct = resample_onto(p.grid.with_array(core.astype(np.uint8)), labels, nearest=True)
        canal |= np.asarray(on_ct.array) > 0
    return canal & (labels.array == 0)


def _paraspinal_region(labels: Image, frames: dict[int, LevelFrame], bone_distance, nearest_kji):
    """Voxels in the paraspinal band behind and beside the spine (see module rules)."""
    lo, hi = PARASPINAL_BAND_MM
    band = (bone_distance >= lo) & (bone_distance <= hi)
    kji, lps = _grid_points_lps(labels, band)
    nearest = nearest_kji[:, kji[:, 0], kji[:, 1], kji[:, 2]]
    level = np.asarray(labels.array)[nearest[0], nearest[1], nearest[2]]
    keep = np.zeros(len(kji), bool)
    for label, f in frames.items():
        sel = level == label
        q = (lps[sel] - f.centroid_lps) @ f.axes  # (w, a, s) mm
        keep[sel] = (-q[:, 1] >= PARASPINAL_POSTERIOR_MM) & (
            np.abs(q[:, 0]) >= PARASPINAL_LATERAL_MM
        )
    region = np.zeros(labels.array.shape, bool)
    region[tuple(kji[keep].T)] = True
    return region


def _arch_mask(labels: Image, parts: dict[int, _LevelParts]) -> np.ndarray:
    """Each level's mask voxels behind its canal's back wall: laminae, articular, spinous
    and the back of the transverse processes, which are mostly compact bone in a real CT."""
    array = np.asarray(labels.array)
    arch = np.zeros(array.shape, bool)
    for label, p in parts.items():
        back = _canal_back(p.canal)
        if back is None:
            continue
        kji, lps = _grid_points_lps(labels, array == label)
        j = (lps - np.asarray(p.grid.origin_lps)) @ p.grid.direction[:, 1] / LOCAL_STEP_MM
        behind = kji[j < back]
        arch[behind[:, 0], behind[:, 1], behind[:, 2]] = True
    return arch


def tissue_masks(ct: Image, labels: Image) -> dict[str, np.ndarray]:
    """Boolean ``(K, J, I)`` masks of the tissues of :data:`TISSUES` on the CT grid."""
    _check_pair(ct, labels)
    box = _box(np.asarray(labels.array) > 0, labels, PARASPINAL_BAND_MM[1] + 5.0)
    masks = _tissue_masks_in(subimage(ct, box), subimage(labels, box))
    return {name: _embed(m, box, labels.array.shape) for name, m in masks.items()}


def _tissue_masks_in(ct: Image, labels: Image) -> dict[str, np.ndarray]:
    bone = np.asarray(labels.array) > 0
    sp = _spacing_kji(labels)
    depth = ndi.distance_transform_edt(np.pad(bone, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
    bone_distance, nearest = ndi.distance_transform_edt(~bone, sampling=sp, return_indices=True)
    parts = _all_parts(labels)
    frames = {lab: p.frame for lab, p in parts.items()}
    # Classify by HU smoothed over ~1.5 mm so that noise does not move muscle voxels into
    # the fat window (and back); the statistics then use the raw HU of those voxels.
    hu = ndi.gaussian_filter(np.asarray(ct.array, float), sigma=CLASSIFY_SIGMA_MM / np.asarray(sp))
    para = _paraspinal_region(labels, frames, bone_distance, nearest)
    return {
        "cortical": bone & (depth <= SHELL_MM),
        "cancellous": bone & (depth > CORE_MM),
        "disc": _disc_mask(labels, parts, bone_distance),
        "muscle": para & (hu >= MUSCLE_HU[0]) & (hu <= MUSCLE_HU[1]),
        "fat": para & (hu >= FAT_HU[0]) & (hu <= FAT_HU[1]),
        "canal": _canal_mask(labels, parts),
        "arch": _arch_mask(labels, parts),
    }


def tissue_hu(ct: Image, labels: Image) -> dict[str, HUStats]:
    """Median, quartiles and samples of the CT's HU in each tissue of :func:`tissue_masks`."""
    hu = np.asarray(ct.array, float)
    return {name: HUStats.of(hu[mask]) for name, mask in tissue_masks(ct, labels).items()}


# ------------------------------------------------------------------------- image quality


@dataclass(frozen=True)
class ImageQuality:
    """Noise (HU, std in homogeneous muscle), 10-90 % rise distance (mm) of the bone edge
    across the fine axes and along the thickest axis (slice-thickness blur)."""

    noise_hu: float
    edge_rise_fine_mm: float
    edge_rise_thick_mm: float
    thick_axis_spacing_mm: float
    n_profiles_fine: int
    n_profiles_thick: int


@dataclass(frozen=True)
class EdgeLayers:
    """Median HU of the voxel layers across the vertebra masks' surface: ``outside[0]`` is the
    layer touching the mask, ``inside[0]`` the mask's own outermost layer, each next one a
    voxel further (one binary erosion / dilation step, the same grid rule for every case).

    Why: it shows where an annotation puts the edge of the bone the image shows, and how
    thick the bright shell is; a net trained on labels drawn one way learns to put its edge
    there, so phantoms and real masks must agree on it."""

    outside: tuple[float, ...]
    inside: tuple[float, ...]


def edge_layers(ct: Image, labels: Image, n_inside: int = 5, n_outside: int = 3) -> EdgeLayers:
    """:class:`EdgeLayers` of all vertebra masks together."""
    _check_pair(ct, labels)
    box = _box(np.asarray(labels.array) > 0, labels, 2.0 * max(n_outside, 1) * max(ct.spacing_mm))
    ct, labels = subimage(ct, box), subimage(labels, box)
    hu = np.asarray(ct.array, float)
    mask = np.asarray(labels.array) > 0

    def medians(shrink: bool, n: int) -> tuple[float, ...]:
        out, cur = [], mask
        for _ in range(n):
            nxt = ndi.binary_erosion(cur) if shrink else ndi.binary_dilation(cur)
            layer = (cur & ~nxt) if shrink else (nxt & ~cur)
            out.append(float(np.median(hu[layer])) if layer.any() else math.nan)
            cur = nxt
        return tuple(out)

    return EdgeLayers(outside=medians(False, n_outside), inside=medians(True, n_inside))


def noise_hu(ct: Image, labels: Image, region: np.ndarray | None = None) -> float:
    """Median local standard deviation (HU) over homogeneous muscle-like voxels.

    Homogeneous: the CT smoothed with a 1.5 mm Gaussian lies in ``HOMOGENEOUS_HU`` over a
    region eroded by 3 mm; the local std uses a ``NOISE_WINDOW_MM`` box. ``region`` defaults
    to the paraspinal region of :func:`tissue_masks` (muscle and fat windows together).
    """
    if region is None:
        masks = tissue_masks(ct, labels)
        region = masks["muscle"] | masks["fat"]
    if not region.any():
        return math.nan
    box = _box(region, ct, 10.0)
    region = region[box]
    hu = np.asarray(subimage(ct, box).array, float)
    sp = np.asarray(_spacing_kji(ct))
    smooth = ndi.gaussian_filter(hu, sigma=1.5 / sp)
    homogeneous = region & (smooth >= HOMOGENEOUS_HU[0]) & (smooth <= HOMOGENEOUS_HU[1])
    core = ndi.distance_transform_edt(np.pad(homogeneous, 1), sampling=sp)[1:-1, 1:-1, 1:-1] > 3.0
    if not core.any():
        return math.nan
    size = [max(3, 2 * int(round(NOISE_WINDOW_MM / s / 2)) + 1) for s in sp]
    mean = ndi.uniform_filter(hu, size)
    mean_sq = ndi.uniform_filter(hu * hu, size)
    n = float(np.prod(size))
    local_std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0) * n / (n - 1))
    return float(np.median(local_std[core]))


def _edge_normals(bone: np.ndarray, sp: np.ndarray):
    """Surface voxels (kji) of ``bone`` and their outward unit normals in the grid's own
    axes (mm components along k, j, i)."""
    surface = bone & ~ndi.binary_erosion(bone, border_value=1)  # cut faces are no edge
    smooth = ndi.gaussian_filter(bone.astype(float), sigma=1.0 / sp)
    grads = np.gradient(smooth, *sp)
    kji = np.argwhere(surface)
    g = np.stack([gr[tuple(kji.T)] for gr in grads], axis=1)
    norm = np.linalg.norm(g, axis=1)
    ok = norm > 1e-6
    return kji[ok], -g[ok] / norm[ok, None]


def _rise_distance(profiles: np.ndarray, t: np.ndarray) -> float:
    """10-90 % rise distance (mm) of the mean edge profile after aligning each profile at its
    own 50 % crossing (profiles run from inside bone, t < 0, to outside); the 100 % level is
    the mean profile's peak inside the bone, the 0 % level its median 4-6 mm outside."""
    grid = np.arange(-4.0, 6.0 + 1e-9, 0.125)
    aligned = []
    inner, outer = t <= 0.0, t >= 4.0
    for v in profiles:
        peak = int(np.argmax(np.where(inner, v, -np.inf)))
        high, low = v[peak], float(np.median(v[outer]))
        if high - low < EDGE_MIN_CONTRAST_HU:
            continue
        y = (v - low) / (high - low)
        after = np.nonzero(y[peak:] <= 0.5)[0]
        if after.size == 0:
            continue
        n = peak + int(after[0])
        t50 = t[n - 1] + (y[n - 1] - 0.5) / (y[n - 1] - y[n]) * (t[n] - t[n - 1])
        aligned.append(np.interp(grid, t - t50, y, left=np.nan, right=np.nan))
    if len(aligned) < 10:
        return math.nan
    esf = np.nanmean(np.array(aligned), axis=0)
    zero = int(np.argmin(np.abs(grid)))
    # Peaks sit at different depths, so the mean peaks below 1: normalise the mean again.
    low = float(np.median(esf[grid >= 4.0]))
    esf = (esf - low) / (float(np.nanmax(esf[: zero + 1])) - low)
    below = np.nonzero(esf[zero:] <= 0.1)[0]
    above = np.nonzero(esf[: zero + 1] >= 0.9)[0]
    if below.size == 0 or above.size == 0:
        return math.nan
    n10, n90 = zero + int(below[0]), int(above[-1])
    t10 = np.interp(0.1, [esf[n10], esf[n10 - 1]], [grid[n10], grid[n10 - 1]])
    t90 = np.interp(0.9, [esf[n90 + 1], esf[n90]], [grid[n90 + 1], grid[n90]])
    return float(t10 - t90)


def image_quality(
    ct: Image, labels: Image, max_profiles: int = 4000, noise_region: np.ndarray | None = None
) -> ImageQuality:
    """Noise and bone-edge sharpness; profiles run along each surface voxel's outward normal
    (-6..+8 mm, linear interpolation) and are split by the angle between the normal and the
    thickest axis: within ``EDGE_CONE_DEG`` of it ("thick"), or within that angle of the plane
    across it ("fine")."""
    _check_pair(ct, labels)
    noise = noise_hu(ct, labels, noise_region)
    box = _box(np.asarray(labels.array) > 0, labels, 10.0)  # profiles reach 8 mm out
    ct, labels = subimage(ct, box), subimage(labels, box)
    sp = np.asarray(_spacing_kji(ct))
    bone = np.asarray(labels.array) > 0
    kji, normals = _edge_normals(bone, sp)
    rng = np.random.default_rng(0)
    thick = int(np.argmax(sp))
    cos_to_thick = np.abs(normals[:, thick])
    cone = math.cos(math.radians(EDGE_CONE_DEG))
    t = np.arange(-6.0, 8.0 + 1e-9, 0.25)
    hu = np.asarray(ct.array, float)
    rises, counts = [], []
    for select in (cos_to_thick <= math.sin(math.radians(EDGE_CONE_DEG)), cos_to_thick >= cone):
        idx = np.nonzero(select)[0]
        if idx.size > max_profiles:
            idx = rng.choice(idx, max_profiles, replace=False)
        coords = kji[idx, None, :] + t[None, :, None] * normals[idx, None, :] / sp
        values = ndi.map_coordinates(hu, coords.reshape(-1, 3).T, order=1, mode="nearest")
        rises.append(_rise_distance(values.reshape(len(idx), t.size), t))
        counts.append(int(idx.size))
    return ImageQuality(noise, rises[0], rises[1], float(sp[thick]), *counts)
