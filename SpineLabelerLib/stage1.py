"""Stage 1: where the spine is. Region probabilities -> cleaned region map, boxes, centre line.

The semantic net (``nets.Stage1Net``) runs over the whole CT on the stage-1 canonical grid
(axis-aligned LPS, identity direction, ``stage1_spacing_mm``; see preprocess.py): whole
volume when it fits ``max_voxels``, else overlapping windows blended with a smooth weight.
Its argmax is cleaned (small and stray connected components removed), then summarised as

- one LPS box per region (cervical, thoracic, lumbar) and one for the whole spine, and
- a centre line: the spine's centroid per axial slice (S coordinate), smoothed, which tells
  stage 2 where along the body the next vertebra should be.

An empty cleaned map means "no spine found" (a leg CT): ``Stage1Result.found`` is False.
Arrays are ``(K, J, I)``; on the canonical grid k runs to Superior, so the centre line is a
function of the S coordinate (z, mm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, index_to_lps
from SpineLabelerLib.progress import CancelFlag, ProgressCallback, report

# A volume-level network call: (C_in, K, J, I) float32 -> (C_out, K, J, I) float32 probabilities.
VolumePredictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CleaningSettings:
    """Connected-component cleaning of the stage-1 map (volumes in ml)."""

    min_component_ml: float = 2.0  # drop specks smaller than a small cervical vertebra
    min_fraction_of_largest: float = 0.1  # drop far smaller strays next to the spine column
    min_spine_ml: float = 10.0  # a largest piece under this (C1 + C2 are ~15 ml): no spine
    # ... but a piece this close to a kept one (mm of background between them: one voxel of
    # the 3 mm grid, not two) is the column's next vertebra, which the disc split off
    join_gap_mm: float = 4.0


@dataclass(frozen=True)
class RegionBox:
    """Axis-aligned LPS box (mm, voxel edges) of one region's voxels on the stage-1 grid."""

    region: str  # "cervical" | "thoracic" | "lumbar" | "spine"
    min_lps: tuple[float, float, float]
    max_lps: tuple[float, float, float]
    volume_ml: float


@dataclass(frozen=True)
class Centerline:
    """Spine centre per axial level: ``z_mm`` (N,) ascending S coordinates, ``points_lps`` (N, 3)."""

    z_mm: np.ndarray
    points_lps: np.ndarray

    def point_at(self, z: float) -> np.ndarray:
        """LPS point of the centre line at S coordinate ``z`` (mm), held constant past its ends."""
        return np.array([np.interp(z, self.z_mm, self.points_lps[:, c]) for c in range(3)])

    def tangent_at(self, z: float, half_window_mm: float = 15.0) -> np.ndarray:
        """Unit LPS direction of the centre line at ``z``, pointing Superior (+z)."""
        lo, hi = z - half_window_mm, z + half_window_mm
        d = self.point_at(hi) - self.point_at(lo)
        if d[2] <= 1e-6:
            return np.array([0.0, 0.0, 1.0])
        return d / np.linalg.norm(d)


@dataclass(frozen=True)
class Stage1Result:
    """Cleaned region classes on the stage-1 canonical grid plus what stage 2 needs from them."""

    classes: Image  # uint8 (K, J, I): 0 bg, 1 C, 2 T, 3 L
    boxes: dict[str, RegionBox]
    centerline: Centerline | None

    @property
    def found(self) -> bool:
        return "spine" in self.boxes

    def regions_present(self) -> list[str]:
        return [r for r in anatomy.REGIONS if r in self.boxes]


# ----------------------------------------------------------------------------- network


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start indices of windows of length ``window`` covering ``size`` with about ``overlap``."""
    if window >= size:
        return [0]
    stride = max(1, int(round(window * (1.0 - overlap))))
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _blend_weight(shape: tuple[int, ...]) -> np.ndarray:
    """Separable weight, 1 in the middle falling to ~0.1 at the window edges (K, J, I)."""
    w = np.ones(shape, np.float32)
    for axis, n in enumerate(shape):
        t = (np.arange(n, dtype=np.float32) + 0.5) / n
        profile = np.clip(1.0 - np.abs(2.0 * t - 1.0), 0.1, None) ** 0.5
        w *= profile.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return w


def sliding_window_probabilities(
    volume: np.ndarray,
    predict: VolumePredictor,
    n_classes: int,
    window_kji: tuple[int, int, int],
    overlap: float = 0.25,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    stage: str = "stage1",
) -> np.ndarray:
    """Class probabilities ``(n_classes, K, J, I)`` of a ``(C, K, J, I)`` volume.

    Whole volume in one call when it fits ``window_kji`` on every axis, else overlapping
    windows whose predictions are blended with :func:`_blend_weight`.
    """
    if volume.ndim != 4:
        raise ValueError(f"expected a (C, K, J, I) volume, got shape {volume.shape}")
    shape = volume.shape[1:]
    window = tuple(min(w, s) for w, s in zip(window_kji, shape))
    grids = [window_starts(s, w, overlap) for s, w in zip(shape, window)]
    positions = [(k, j, i) for k in grids[0] for j in grids[1] for i in grids[2]]
    if len(positions) == 1:
        report(progress, stage, 1.0, "whole volume")
        return predict(volume)
    total = np.zeros((n_classes, *shape), np.float32)
    weight_sum = np.zeros(shape, np.float32)
    weight = _blend_weight(window)
    for n, (k, j, i) in enumerate(positions):
        if cancel is not None:
            cancel.check()
        sl = (slice(k, k + window[0]), slice(j, j + window[1]), slice(i, i + window[2]))
        total[(slice(None), *sl)] += predict(volume[(slice(None), *sl)]) * weight
        weight_sum[sl] += weight
        report(progress, stage, (n + 1) / len(positions), f"window {n + 1}/{len(positions)}")
    return total / weight_sum


# ----------------------------------------------------------------------------- cleaning


def clean_region_map(
    classes: np.ndarray, voxel_ml: float, settings: CleaningSettings = CleaningSettings()
) -> np.ndarray:
    """Remove stray components from a ``(K, J, I)`` class map (0 bg, 1-3 regions).

    Components of the foreground (any region, 26-connected) smaller than
    ``min_component_ml`` or than ``min_fraction_of_largest`` of the largest are set to 0,
    but for those within ``join_gap_mm`` of a kept one (``_join_neighbours``); if the
    largest is under ``min_spine_ml`` the whole map is cleared (no spine: a few bone specks
    of a leg CT are no spinal column).
    """
    fg = classes > 0
    comp, n = ndimage.label(fg, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros_like(classes)
    sizes_ml = np.bincount(comp.ravel())[1:] * voxel_ml
    if sizes_ml.max() < settings.min_spine_ml:
        return np.zeros_like(classes)
    large = sizes_ml >= settings.min_component_ml
    keep = large & (sizes_ml >= settings.min_fraction_of_largest * sizes_ml.max())
    lut = np.concatenate([[False], keep])
    spacing_mm = (voxel_ml * 1000.0) ** (1.0 / 3.0)  # the canonical grid is isotropic
    gap_voxels = int(settings.join_gap_mm / spacing_mm + 1e-6)  # whole voxels in the gap
    if gap_voxels > 0:
        lut = _join_neighbours(comp, lut, np.concatenate([[False], large & ~keep]), gap_voxels)
    return np.where(lut[comp], classes, 0).astype(classes.dtype)


def _join_neighbours(
    comp: np.ndarray, keep: np.ndarray, candidates: np.ndarray, gap_voxels: int
) -> np.ndarray:
    """``keep`` (component -> kept) with every candidate joined that lies within
    ``gap_voxels`` voxels of a kept component, repeatedly (a chain of vertebrae).

    The disc between two vertebrae is one or two voxels of the 3 mm grid, and stage 1 calls
    some of them spine: the column then falls apart into pieces, and the fraction rule would
    drop a vertebra at its end (cut by the view, or C1-C2 under the skull) as a stray.
    """
    keep = keep.copy()
    reach = gap_voxels + 1  # dilations of the kept voxels that touch a piece that far off
    while candidates.any():
        # the kept voxels' neighbourhood, within the box of the candidates (+ the reach)
        box = ndimage.find_objects(np.where(candidates[comp], comp, 0))
        lo = np.min([[b[a].start for a in range(3)] for b in box if b], axis=0) - reach
        hi = np.max([[b[a].stop for a in range(3)] for b in box if b], axis=0) + reach
        window = tuple(slice(max(int(a), 0), int(b)) for a, b in zip(lo, hi))
        near = ndimage.binary_dilation(keep[comp[window]], np.ones((3, 3, 3), bool), reach)
        joined = np.unique(comp[window][near & candidates[comp[window]]])
        if joined.size == 0:
            break
        keep[joined] = True
        candidates[joined] = False
    return keep


# ----------------------------------------------------------------------------- summaries


def _box_of(mask: np.ndarray, grid: Image) -> tuple[np.ndarray, np.ndarray]:
    ks, js, is_ = np.nonzero(mask)
    lo = np.array([is_.min(), js.min(), ks.min()], float) - 0.5
    hi = np.array([is_.max(), js.max(), ks.max()], float) + 0.5
    corners = index_to_lps(grid, np.array([lo, hi]))
    return corners.min(axis=0), corners.max(axis=0)


def region_boxes(classes: Image) -> dict[str, RegionBox]:
    """One LPS box per region present, plus "spine" over all of them (identity-direction grid)."""
    voxel_ml = float(np.prod(classes.spacing_mm)) / 1000.0
    boxes: dict[str, RegionBox] = {}
    for region in anatomy.REGIONS:
        mask = classes.array == anatomy.REGION_CLASS[region]
        if mask.any():
            lo, hi = _box_of(mask, classes)
            boxes[region] = RegionBox(region, tuple(lo), tuple(hi), float(mask.sum()) * voxel_ml)
    fg = classes.array > 0
    if fg.any():
        lo, hi = _box_of(fg, classes)
        boxes["spine"] = RegionBox("spine", tuple(lo), tuple(hi), float(fg.sum()) * voxel_ml)
    return boxes


def centerline_of(classes: Image, smooth_mm: float = 20.0) -> Centerline | None:
    """Spine centre per axial slice of a canonical (identity-direction) class map, smoothed.

    The centroid of the spine voxels of every slice that has any is taken, then each
    coordinate is smoothed with a moving average over ``smooth_mm`` along S.
    """
    if not np.allclose(classes.direction, np.eye(3)):
        raise ValueError("centerline_of needs a canonical (identity-direction) grid")
    fg = classes.array > 0
    counts = fg.sum(axis=(1, 2))
    slices = np.nonzero(counts)[0]
    if slices.size == 0:
        return None
    jj, ii = np.meshgrid(np.arange(fg.shape[1]), np.arange(fg.shape[2]), indexing="ij")
    pts = []
    for k in slices:
        m = fg[k]
        pts.append([ii[m].mean(), jj[m].mean(), float(k)])
    lps = index_to_lps(classes, np.array(pts))
    window = max(1, int(round(smooth_mm / classes.spacing_mm[2])))
    if window > 1 and len(lps) > 2:
        kernel = np.ones(window) / window
        padded = np.pad(lps[:, :2], ((window // 2, window - 1 - window // 2), (0, 0)), mode="edge")
        lps[:, 0] = np.convolve(padded[:, 0], kernel, mode="valid")
        lps[:, 1] = np.convolve(padded[:, 1], kernel, mode="valid")
    return Centerline(lps[:, 2].copy(), lps)


def region_boundaries_z(classes: Image) -> list[tuple[str, float]]:
    """Boundaries seen along the spine: ``[("C/T" | "T/L", z_mm), ...]``.

    Each region's S extent is the span of the slices where it holds the most spine voxels;
    a boundary is the midpoint between the lower region's top and the upper region's bottom.
    """
    counts = np.stack([(classes.array == c).sum(axis=(1, 2)) for c in (1, 2, 3)])  # (3, K)
    has = counts.sum(axis=0) > 0
    majority = np.where(has, counts.argmax(axis=0) + 1, 0)
    z_of = lambda k: float(index_to_lps(classes, [[0, 0, k]])[0, 2])  # noqa: E731
    out = []
    for upper, lower, name in ((1, 2, "C/T"), (2, 3, "T/L")):
        ku, kl = np.nonzero(majority == upper)[0], np.nonzero(majority == lower)[0]
        if ku.size and kl.size:
            out.append((name, 0.5 * (z_of(ku.min()) + z_of(kl.max()))))
    return out


def summarize(classes_raw: Image, settings: CleaningSettings = CleaningSettings()) -> Stage1Result:
    """Clean a raw argmax map (canonical grid) and derive boxes and the centre line."""
    voxel_ml = float(np.prod(classes_raw.spacing_mm)) / 1000.0
    cleaned = classes_raw.with_array(
        clean_region_map(classes_raw.array.astype(np.uint8), voxel_ml, settings)
    )
    return Stage1Result(cleaned, region_boxes(cleaned), centerline_of(cleaned))
