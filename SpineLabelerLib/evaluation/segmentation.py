"""Overlap and surface-distance metrics of vertebra masks (the paper's Table 1: Dice, ASSD, HD).

All distances are millimetres measured on the *reference* grid: a prediction on another grid
is first resampled onto it by nearest neighbour. Surfaces are the mask voxels with a
face-connected background neighbour (SimpleITK ``LabelContour``); the grid is padded by one
empty voxel first so that a vertebra cut by the field of view has a closed surface (its cut
face is then shared by prediction and reference and adds distance 0). Distances are between
voxel centres, so a one-voxel shift along an axis of spacing s costs exactly s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from SpineLabelerLib.evaluation.centroids import label_values
from SpineLabelerLib.image import Image, resample_onto


@dataclass(frozen=True)
class OverlapScores:
    """Dice (0..1) and surface distances (mm) of one label; distances are NaN when either
    mask is empty (a missed or spurious vertebra has no surface to measure)."""

    dice: float
    assd_mm: float
    hd_mm: float
    pred_voxels: int
    ref_voxels: int


def on_reference_grid(pred: Image, ref: Image) -> Image:
    """``pred`` on ``ref``'s grid (nearest neighbour), unchanged when the grids already agree."""
    if pred.same_grid(ref):
        return pred
    return resample_onto(pred, ref, nearest=True, fill=0)


def dice(pred_mask: np.ndarray, ref_mask: np.ndarray) -> float:
    """2|A∩B| / (|A|+|B|) of two boolean ``(K, J, I)`` masks; 1.0 when both are empty."""
    a = np.count_nonzero(pred_mask)
    b = np.count_nonzero(ref_mask)
    if a + b == 0:
        return 1.0
    return 2.0 * np.count_nonzero(pred_mask & ref_mask) / (a + b)


def _mask_image(mask: np.ndarray, spacing_kji: tuple[float, float, float]) -> sitk.Image:
    img = sitk.GetImageFromArray(np.pad(mask, 1).astype(np.uint8))
    img.SetSpacing(tuple(float(s) for s in spacing_kji[::-1]))
    return img


def _surface_distances(from_mask: np.ndarray, to_mask: np.ndarray, spacing_kji) -> np.ndarray:
    """Distances (mm) from every surface voxel of ``from_mask`` to the surface of ``to_mask``."""
    from_surface = sitk.GetArrayFromImage(
        sitk.LabelContour(_mask_image(from_mask, spacing_kji), fullyConnected=False)
    )
    to_surface = sitk.LabelContour(_mask_image(to_mask, spacing_kji), fullyConnected=False)
    # Maurer's map of the surface image is 0 on the surface and the Euclidean distance (mm)
    # to the nearest surface voxel centre everywhere else.
    distance = sitk.SignedMaurerDistanceMap(
        to_surface, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return np.abs(sitk.GetArrayFromImage(distance)[from_surface > 0])


def surface_distances_mm(
    pred_mask: np.ndarray, ref_mask: np.ndarray, spacing_mm: tuple[float, float, float]
) -> tuple[float, float]:
    """(ASSD, Hausdorff distance) in mm of two boolean ``(K, J, I)`` masks on one grid.

    ``spacing_mm`` is ``(i, j, k)`` like ``Image.spacing_mm``. Only the bounding box of the two
    masks is processed. Returns (nan, nan) if either mask is empty.
    """
    if not pred_mask.any() or not ref_mask.any():
        return math.nan, math.nan
    union = pred_mask | ref_mask
    box = tuple(slice(idx.min(), idx.max() + 1) for idx in np.nonzero(union))
    a, b = pred_mask[box], ref_mask[box]
    spacing_kji = tuple(spacing_mm[::-1])
    d_ab = _surface_distances(a, b, spacing_kji)
    d_ba = _surface_distances(b, a, spacing_kji)
    assd = float((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))
    hd = float(max(d_ab.max(), d_ba.max()))
    return assd, hd


def hausdorff_sitk_mm(pred_mask: np.ndarray, ref_mask: np.ndarray, spacing_mm) -> float:
    """Surface Hausdorff distance by ``sitk.HausdorffDistanceImageFilter`` on the two surfaces;
    a cross-check of :func:`surface_distances_mm` (they agree to float precision)."""
    spacing_kji = tuple(spacing_mm[::-1])
    surfaces = [
        sitk.LabelContour(_mask_image(m, spacing_kji), fullyConnected=False)
        for m in (pred_mask, ref_mask)
    ]
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(*surfaces)
    return float(f.GetHausdorffDistance())


def label_overlap(
    pred: Image, ref: Image, labels: list[int] | None = None
) -> dict[int, OverlapScores]:
    """Dice, ASSD and HD of every label, on ``ref``'s grid.

    ``labels`` defaults to every non-zero label found in either map; a label present in only
    one map gets Dice 0 and NaN distances.
    """
    pred_on_ref = on_reference_grid(pred, ref)
    p, r = _integer_labels(pred_on_ref.array), _integer_labels(ref.array)
    if labels is None:
        labels = sorted(set(label_values(p)) | set(label_values(r)))
    # Bounding boxes per label so that each comparison touches only its own neighbourhood.
    top = max([int(p.max()), int(r.max()), *labels, 1])
    boxes_p = ndi.find_objects(p, max_label=top)
    boxes_r = ndi.find_objects(r, max_label=top)
    scores = {}
    for label in labels:
        box = _union_box(
            boxes_p[label - 1] if label >= 1 else None, boxes_r[label - 1] if label >= 1 else None
        )
        if box is None:
            pm = rm = np.zeros((1, 1, 1), bool)
        else:
            pm, rm = p[box] == label, r[box] == label
        assd, hd = surface_distances_mm(pm, rm, ref.spacing_mm)
        scores[int(label)] = OverlapScores(
            dice(pm, rm), assd, hd, int(np.count_nonzero(pm)), int(np.count_nonzero(rm))
        )
    return scores


def _integer_labels(array: np.ndarray) -> np.ndarray:
    """The labelmap as non-negative integers, without a copy when it already is one."""
    label_values(array)  # checks: integer-valued, non-negative
    array = np.asarray(array)
    return array if array.dtype.kind in "iu" else array.astype(np.int64)


def _union_box(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None):
    if a is None or b is None:
        return a or b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
