"""Rib evidence: how much rib-like bone lies beside each walked vertebra (0..1, or None).

Why: thoracic vertebrae carry ribs, cervical and lumbar ones do not. With stage 1's region
votes this is what lets identification (identify.py, term 2) tell T1 from C7 and T12 from L1
when a region boundary is missing from the field of view or stage 1 puts it one level off.

The measure, on stage 2's 1 mm canonical crop (k superior, j posterior, i left), per side of
each vertebra: a *band* over the vertebra's own cranio-caudal extent, from ``band_anterior_mm``
in front of its centroid to ``band_posterior_mm`` behind it, and laterally from
``band_gap_mm`` to ``band_gap_mm + band_width_mm`` beyond the widest point of its mask on that
side (the tip of its transverse process, where a rib leaves it). Bone there that is not
within ``clearance_mm`` of any vertebra mask counts, if it belongs to a piece of bone shorter
than ``max_piece_mm`` cranio-caudally (a rib crossing the band; the ilium and the scapula are
long plates and do not count), and not cut by the end of the crop or the field of view (its
length unknown: the ilium in a crop that cuts the pelvis). A side scores that bone volume over
``rib_bone_mm3`` (capped at 1); the vertebra scores the mean of its measured sides. A side whose
band lies less than ``min_inside`` inside the crop and the field of view is not measured (a
tight crop around the spine shows no ribs: that is not evidence of none); a vertebra with no
measured side gets None, and so does a vertebra the view cuts (``_cut_by_view``): a rib may
leave it where it is not in view. Only a graze from above or below (the field of view's end
over no more than ``max_cut`` of its largest axial cross-section: a slanted view taking the
corner of a body) leaves it measured like a whole one (verse005's L1, whose unmeasured ribs
let stage 1's thoracic call of it name the column a level high). Measured, cut vertebrae
misled: on an 11-rib chest phantom whose view cut its vertebrae behind, none of three
thoracic vertebrae showed ribs and the column was named a level low.

Bone is what the smoothed CT shows above ``bone_fraction`` of the walked vertebrae's own
90th-percentile HU, and never below ``min_bone_hu``: ribs are made of the same bone as the
vertebrae, so the threshold follows the patient's bone density and the scanner's calibration
(a fixed 300 HU missed every rib of an osteoporotic spine); the floor keeps contrast-filled
liver and unenhanced soft tissue out, and long pieces (kidneys, the aorta) fail ``max_piece_mm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SpineLabelerLib.preprocess import hu_from_normalized, normalize_hu


@dataclass(frozen=True)
class RibSettings:
    bone_fraction: float = 0.7  # of the vertebrae's 90th-percentile smoothed HU
    min_bone_hu: float = 150.0  # above contrast-filled liver; kidneys and vessels are long pieces
    smoothing_mm: float = 1.0  # Gaussian sigma: noise alone must not make bone
    band_gap_mm: float = 3.0
    band_width_mm: float = 12.0  # narrow: a wider band reaches the scapula, which joins the ribs
    band_anterior_mm: float = 15.0
    band_posterior_mm: float = 30.0
    clearance_mm: float = 2.0
    max_piece_mm: float = 60.0
    rib_bone_mm3: float = 700.0
    min_inside: float = 0.6
    max_cut: float = 0.1  # of the vertebra's largest axial cross-section (see _cut_by_view)


def rib_scores(
    ct_norm: np.ndarray,
    valid: np.ndarray,
    instances: np.ndarray,
    indices: Sequence[int],
    spacing_mm: float,
    settings: RibSettings = RibSettings(),
) -> list[float | None]:
    """Rib score per vertebra ``indices`` (values in ``instances``), all arrays ``(K, J, I)``
    on one isotropic grid; ``ct_norm`` as preprocess.normalize_hu gives it."""
    s, mm = settings, float(spacing_mm)
    clearance = max(1, int(round(s.clearance_mm / mm)))
    sigma = s.smoothing_mm / mm
    boxes = ndimage.find_objects(np.asarray(instances, np.int32))
    voxels: dict[int, np.ndarray] = {}
    for index in indices:
        box = boxes[index - 1] if 0 < index <= len(boxes) else None
        if box is not None:
            voxels[index] = np.argwhere(instances[box] == index) + [sl.start for sl in box]
    if not voxels:
        return [None] * len(indices)
    # Everything below is read only inside the bands and on the vertebrae: work on the (j, i)
    # box holding them, grown by the filters' reach so that each value in it is the one the
    # whole crop would give (a third of a clinical crop's voxels; k stays whole for _cut_short).
    reach = max(clearance, int(4.0 * sigma + 0.5))  # gaussian_filter's default truncate: 4 sigma
    region = _work_region(voxels.values(), instances.shape, reach, mm, s)
    offset = np.array([sl.start or 0 for sl in region])
    ct_norm, valid, instances = ct_norm[region], valid[region], instances[region]
    vertebrae = instances > 0
    near_vertebra = ndimage.binary_dilation(vertebrae, iterations=clearance)
    smooth = ndimage.gaussian_filter(np.asarray(ct_norm, np.float32), sigma)
    bone = (smooth > _bone_threshold(smooth, vertebrae, s)) & ~near_vertebra & valid
    scores: list[float | None] = []
    for index in indices:
        if index not in voxels or _cut_by_view(voxels[index] - offset, valid, s.max_cut):
            scores.append(None)
            continue
        kji = voxels[index] - offset
        sides = [_side_score(bone, valid, kji, side, mm, s) for side in (+1, -1)]
        measured = [v for v in sides if v is not None]
        scores.append(float(np.mean(measured)) if measured else None)
    return scores


def _work_region(voxels, shape, pad: int, mm: float, s: RibSettings) -> tuple[slice, ...]:
    """``(k, j, i)`` slices: all k; in j and i every vertebra and both of its bands, ``pad``
    voxels more, inside ``shape``."""
    lo, hi = np.array(shape[1:]), np.zeros(2, int)
    for kji in voxels:
        ji = kji[:, 1:]
        centre = ji.mean(0)
        j0 = np.floor(centre[0] - s.band_anterior_mm / mm)
        j1 = np.ceil(centre[0] + s.band_posterior_mm / mm)
        outer = (s.band_gap_mm + s.band_width_mm) / mm
        i0 = np.floor(centre[1] - (max(centre[1] - ji[:, 1].min(), 0.0) + outer))
        i1 = np.ceil(centre[1] + (max(ji[:, 1].max() - centre[1], 0.0) + outer))
        lo = np.minimum(lo, [min(j0, ji[:, 0].min()), min(i0, ji[:, 1].min())])
        hi = np.maximum(hi, [max(j1, ji[:, 0].max() + 1), max(i1, ji[:, 1].max() + 1)])
    lo = np.maximum(lo.astype(int) - pad, 0)
    hi = np.minimum(hi.astype(int) + pad, shape[1:])
    return (slice(0, shape[0]), slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])))


def _bone_threshold(smooth: np.ndarray, vertebrae: np.ndarray, s: RibSettings) -> float:
    """The bone threshold in normalized units (see the module docs)."""
    floor = float(normalize_hu(np.array([s.min_bone_hu]))[0])
    if not vertebrae.any():
        return floor
    p90_hu = hu_from_normalized(np.percentile(smooth[vertebrae], 90))
    return max(floor, float(normalize_hu(np.array([s.bone_fraction * p90_hu]))[0]))


def _side_score(bone, valid, kji: np.ndarray, side: int, mm: float, s: RibSettings) -> float | None:
    """Score of one side (+1: increasing i, the patient's left; -1: right), or None;
    ``kji``: the vertebra's voxel indices."""
    centre = kji.mean(0)
    lateral = (kji[:, 2] - centre[2]) * side
    reach = max(float(lateral.max()), 0.0)
    k0, k1 = int(kji[:, 0].min()), int(kji[:, 0].max()) + 1
    j0 = int(np.floor(centre[1] - s.band_anterior_mm / mm))
    j1 = int(np.ceil(centre[1] + s.band_posterior_mm / mm))
    near = centre[2] + side * (reach + s.band_gap_mm / mm)
    far = centre[2] + side * (reach + (s.band_gap_mm + s.band_width_mm) / mm)
    i0, i1 = int(np.floor(min(near, far))), int(np.ceil(max(near, far)))
    full = (k1 - k0) * (j1 - j0) * (i1 - i0)
    shape = bone.shape
    band = _clip((k0, k1), (j0, j1), (i0, i1), shape)
    if band is None or full <= 0 or valid[band].sum() < s.min_inside * full:
        return None
    extra = int(round(s.max_piece_mm / mm))
    wide = _clip((k0 - extra, k1 + extra), (j0, j1), (i0, i1), shape)
    pieces, n = ndimage.label(bone[wide])
    if n == 0:
        return 0.0
    lengths = np.array([sl[0].stop - sl[0].start for sl in ndimage.find_objects(pieces)])
    rib_like = np.concatenate([[False], lengths * mm < s.max_piece_mm])
    rib_like[_cut_short(pieces, valid[wide], wide[0], shape[0])] = False
    offset = band[0].start - wide[0].start
    inside = pieces[offset : offset + band[0].stop - band[0].start]
    voxels = int(rib_like[inside].sum())
    return float(min(1.0, voxels * mm**3 / s.rib_bone_mm3))


def _cut_by_view(kji: np.ndarray, valid: np.ndarray, fraction: float) -> bool:
    """Whether the view cuts the vertebra of voxels ``kji``: it lies next to the outside of
    ``valid`` (or the crop's end) across (along j or i) anywhere, or along k over more than
    ``fraction`` of its largest axial cross-section. A slanted field of view grazing the
    corner of a whole body from above or below is no cut; one beside the vertebra may hide
    a rib that leaves it, as may a cut through its body."""
    k, j, i = kji.T
    n_k, n_j, n_i = valid.shape
    if j.min() == 0 or i.min() == 0 or j.max() == n_j - 1 or i.max() == n_i - 1:
        return True
    across = ~valid[k, j - 1, i] | ~valid[k, j + 1, i] | ~valid[k, j, i - 1] | ~valid[k, j, i + 1]
    if across.any():
        return True
    above, below = k == n_k - 1, k == 0
    inner = ~(above | below)
    above[inner] = ~valid[k[inner] + 1, j[inner], i[inner]]
    below[inner] = ~valid[k[inner] - 1, j[inner], i[inner]]
    largest = int(np.bincount(k).max())
    return max(int(above.sum()), int(below.sum())) > fraction * largest


def _cut_short(pieces: np.ndarray, valid: np.ndarray, ks: slice, n_k: int) -> np.ndarray:
    """Labels of the pieces that reach the end of what the CT shows cranio-caudally (the
    crop's first or last slice, or the field of view's edge): their length is unknown, so they
    cannot count as short. The ilium beside the lowest lumbar vertebra of a crop that cuts the
    pelvis is such a piece; a rib crossing the band is whole."""
    edge = np.zeros(pieces.shape, bool)
    edge[0] = ks.start == 0
    edge[-1] |= ks.stop == n_k
    outside = ~valid
    edge[1:] |= outside[:-1]
    edge[:-1] |= outside[1:]
    return np.unique(pieces[edge & (pieces > 0)])


def _clip(ks, js, is_, shape) -> tuple[slice, slice, slice] | None:
    out = []
    for (lo, hi), n in zip((ks, js, is_), shape):
        lo, hi = max(int(lo), 0), min(int(hi), n)
        if hi <= lo:
            return None
        out.append(slice(lo, hi))
    return tuple(out)  # type: ignore[return-value]
