"""Label map -> CT-like image in HU, every appearance setting drawn at random (SynthSeg for CT).

Why: nets trained on one generator's texture learn that texture; real masks drawn by experts
show shapes the phantoms lack (whole spinous processes, arch ends), but come without a CT
(or with one CT each). Rendering each mask many times with random HU per structure,
resolution, slice thickness, blur, noise, bias field, crop and grid orientation makes the
shape the only thing that stays the same, so the nets learn the shape.

What is drawn (all from one seeded ``np.random.Generator``: same seed, same image):

- crop: the labelled box plus a margin per side (negative: the crop cuts arches and
  processes), and along the spine often a range of levels whose ends are cut (crops without
  C1 or the sacrum, tight spine crops);
- HU per structure: each vertebra a cortical shell (the label eroded by 1-2 mm, its rim) and
  a cancellous interior, with its own offsets; the posterior arch may be denser than the
  body. Around the vertebrae, when the map has no tissue map: discs and ligaments in the gaps
  between neighbours, the spinal canal, muscle with fat patches, subcutaneous fat, lungs
  beside thoracic levels (sometimes), air outside a body ellipse. With a phantom tissue map
  (``phantom.tissues``) those tissues are painted from it instead, with freshly drawn HU;
- a smooth multiplicative and additive bias field;
- the scan: which patient axis the slices run along, axis order and flips, a small oblique
  tilt, in-plane spacing 0.3-1 mm and 1-5 mm between slices, slice profile, in-plane kernel
  blur, then noise of a random level and grain on the output grid.

The map is painted on a fine axis-aligned grid (``render_spacing_mm``) around the crop only,
blurred there with the slice profile and kernel, then resampled onto the drawn scanner grid;
the labels go onto the same grid by nearest neighbour.

Rendered cases feed stage 2, which segments one vertebra at a time by its shape. For stage 1
they are a trial (configs/stage1_real_cpu.json, not shipped): the real masks hold no ribs, so
a rendered thoracic column teaches "thoracic without ribs" - what a spine-tight real crop
shows, and no contradiction of the phantoms' targets, which name each level by its region
whatever its ribs - but it leans stage 1 on shape alone, where the ribs tell a 13-rib or L6
spine apart; that run mixes in phantom crops cut tight round the spine, rib stubs kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, bounding_box, index_to_lps, resample_onto
from SpineLabelerLib.phantom import tissues as T
from SpineLabelerLib.preprocess import canonical_grid, labels_onto, physical_bounds_lps

AIR_FILL_HU = -1000.0
COARSE_MM = 3.0  # the grid the crop is drawn on
MIN_CROP_LEVELS = 3  # a crop along the spine keeps at least this many levels' centres
MIN_CROP_MM = 24.0


@dataclass(frozen=True)
class RenderSettings:
    """The ranges draws are taken from (a training config's ``render`` entry overrides any)."""

    render_spacing_mm: float = 1.0  # the fine grid painted on (coarser for very large crops)
    max_render_voxels: int = 12_000_000
    max_output_voxels: int = 16_000_000  # in-plane spacing is coarsened to stay below
    margin_mm: tuple[float, float] = (-10.0, 60.0)  # around the labelled box, per side
    p_level_crop: float = 0.5  # crop along the spine between two drawn levels
    in_plane_mm: tuple[float, float] = (0.3, 1.0)
    slice_mm: tuple[float, float] = (1.0, 5.0)  # drawn log-uniform
    p_axial: float = 0.6  # slices across the spine; else sagittal or coronal, as often
    p_tilt: float = 0.5
    max_tilt_deg: float = 10.0
    cancellous_hu: tuple[float, float] = (50.0, 400.0)
    cortical_hu: tuple[float, float] = (250.0, 1200.0)
    arch_extra_hu: tuple[float, float] = (0.0, 300.0)  # posterior arch denser than the body
    noise_hu: tuple[float, float] = (5.0, 60.0)
    p_lungs: float = 0.6  # lungs beside thoracic levels (maps without a tissue map)


@dataclass(frozen=True)
class ScanDraw:
    """The scanner grid and image quality drawn for one rendered case."""

    spacing_mm: tuple[float, float, float]  # (i, j, k); k is the slice axis
    direction: np.ndarray  # (3, 3), columns: the LPS unit vectors of the output index axes
    slice_thickness_mm: float
    kernel_sigma_mm: float
    noise_hu: float
    slice_axis_lps: int  # 0 L, 1 P, 2 S: the patient axis the slices follow (before tilt)
    tilt_deg: float


class Rendered(NamedTuple):
    """A rendered case: CT (int16 HU) and labels (VerSe values) on one grid, and the draws."""

    ct: Image
    labels: Image
    scan: ScanDraw


def render(
    labels: Image,
    rng: np.random.Generator,
    tissues: Image | None = None,
    settings: RenderSettings = RenderSettings(),
) -> Rendered:
    """Render a VerSe labelmap (any grid) as a CT with random appearance and geometry.

    ``tissues``: optional ``phantom.tissues`` classes on the labels' grid. The scan is drawn
    first (:func:`draw_scan`), then the crop, the HU and the bias field. Raises ValueError
    when ``labels`` holds no vertebra.
    """
    scan = draw_scan(rng, settings)
    reference = _output_grid(_crop_box(labels, rng, settings, tissues is not None), scan, settings)
    grid, lab, tis = _render_grid(labels, tissues, reference, settings)
    sp = grid.spacing_mm[0]
    hu = _paint(lab, tis, sp, rng, settings)
    hu = _with_bias(hu, rng)
    hu = _scanner_blur(hu, sp, scan)
    ct = resample_onto(grid.with_array(hu), reference, fill=AIR_FILL_HU, float32=True).array
    ct = _with_noise(ct, scan.noise_hu, rng)
    out_labels = labels_onto(grid.with_array(lab), reference)
    np.clip(ct, -1024, 3071, out=ct)
    drawn = replace(scan, spacing_mm=reference.spacing_mm)  # coarsened where the cap asked
    return Rendered(reference.with_array(np.rint(ct).astype(np.int16)), out_labels, drawn)


# ----------------------------------------------------------------------------- the scan


def draw_scan(rng: np.random.Generator, settings: RenderSettings = RenderSettings()) -> ScanDraw:
    """Slice axis, axis order and flips, tilt, spacing, slice profile, kernel and noise."""
    u = rng.random()
    slice_axis = 2 if u < settings.p_axial else (0 if u < (1 + settings.p_axial) / 2 else 1)
    in_plane = [a for a in range(3) if a != slice_axis]
    in_plane = [in_plane[i] for i in rng.permutation(2)]
    signs = rng.choice([-1.0, 1.0], 3)
    axes = np.zeros((3, 3))
    for column, (axis, sign) in enumerate(zip([*in_plane, slice_axis], signs)):
        axes[axis, column] = sign
    tilt = float(rng.uniform(0, settings.max_tilt_deg)) if rng.random() < settings.p_tilt else 0.0
    direction = _rotation(rng.normal(size=3), np.radians(tilt)) @ axes
    pixel = float(rng.uniform(*settings.in_plane_mm))
    slices = float(np.exp(rng.uniform(*np.log(settings.slice_mm))))
    return ScanDraw(
        spacing_mm=(pixel, pixel, slices),
        direction=direction,
        slice_thickness_mm=slices * float(rng.uniform(1.0, 1.5)),
        kernel_sigma_mm=float(rng.uniform(0.3, 1.0)),
        noise_hu=float(rng.uniform(*settings.noise_hu)),
        slice_axis_lps=slice_axis,
        tilt_deg=tilt,
    )


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues: rotation by ``angle_rad`` about ``axis``."""
    a = axis / max(np.linalg.norm(axis), 1e-12)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * k @ k


def _output_grid(
    box_lps: tuple[np.ndarray, np.ndarray], scan: ScanDraw, settings: RenderSettings
) -> Image:
    """The drawn scanner grid over the crop ``box_lps`` (min, max corners, mm): each output
    axis spans the box along the patient axis it follows, the whole tilted about the centre."""
    lo, hi = box_lps
    following = np.argmax(np.abs(scan.direction), axis=0)  # the LPS axis of each output axis
    extent = (hi - lo)[following]
    spacing = np.asarray(scan.spacing_mm, float)
    size = np.maximum(np.round(extent / spacing).astype(int), 1)
    if np.prod(size) > settings.max_output_voxels:
        spacing[:2] *= np.sqrt(np.prod(size) / settings.max_output_voxels)
        size = np.maximum(np.round(extent / spacing).astype(int), 1)
    origin = 0.5 * (lo + hi) - scan.direction @ (spacing * (size - 1) / 2.0)
    return Image(np.zeros(size[::-1], np.uint8), tuple(spacing), tuple(origin), scan.direction)


def _scanner_blur(hu: np.ndarray, spacing_mm: float, scan: ScanDraw) -> np.ndarray:
    """Kernel blur on every axis, then the slice profile (a box as thick as a slice) along
    the fine-grid axis the slices follow. ``hu`` ``(K, J, I)`` on the fine grid."""
    out = ndimage.gaussian_filter(hu, scan.kernel_sigma_mm / spacing_mm, mode="nearest")
    width = int(round(scan.slice_thickness_mm / spacing_mm))
    if width > 1:
        out = ndimage.uniform_filter1d(out, width, axis=2 - scan.slice_axis_lps, mode="nearest")
    return out


def _with_noise(ct: np.ndarray, sigma_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of standard deviation ``sigma_hu`` with a random grain (0-0.8 voxel)."""
    noise = rng.standard_normal(ct.shape, dtype=np.float32)
    grain = float(rng.uniform(0.0, 0.8))
    if grain > 0.1:
        noise = ndimage.gaussian_filter(noise, grain)
        noise /= max(float(noise.std()), 1e-6)
    ct += sigma_hu * noise
    return ct


def _with_bias(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field (on attenuation, HU + 1000: air stays air) and a smooth
    additive one, each trilinear from a coarse random grid."""

    def hats(n: int) -> np.ndarray:
        """(n, 3): linear interpolation weights of 3 nodes spread over n voxels."""
        t = np.linspace(0.0, 2.0, n)
        return np.clip(1.0 - np.abs(t[:, None] - np.arange(3)[None, :]), 0.0, 1.0)

    def smooth_field() -> np.ndarray:  # trilinear from 3 x 3 x 3 nodes, axis by axis
        coarse = rng.uniform(-1, 1, (3, 3, 3)).astype(np.float32)
        hk, hj, hi = (hats(n).astype(np.float32) for n in hu.shape)
        return np.einsum("abc,ka,jb,ic->kji", coarse, hk, hj, hi, optimize=True)

    gain = float(rng.uniform(0.0, 0.08))
    offset = float(rng.uniform(0.0, 40.0))
    return (
        (hu + 1000.0) * (1.0 + gain * smooth_field()) - 1000.0 + offset * smooth_field()
    ).astype(np.float32)


# ----------------------------------------------------------------------------- the crop


def _crop_box(
    labels: Image, rng: np.random.Generator, settings: RenderSettings, inside_map: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The drawn crop, an LPS box (min, max corners, mm), drawn on a coarse canonical copy
    of the map (cheap even for a 0.3 mm mask). ``inside_map``: kept within the map's own
    extent (a tissue map says nothing beyond it; without one the body is synthesised)."""
    box = bounding_box(labels.array > 0)
    if box is None:
        raise ValueError("the labelmap holds no vertebra")
    corners = np.array([[s.start - 0.5, s.stop - 0.5] for s in box[::-1]])  # (i, j, k) x (lo, hi)
    ijk = np.array([[a, b, c] for a in corners[0] for b in corners[1] for c in corners[2]])
    lps = index_to_lps(labels, ijk)
    margin = settings.margin_mm[1]
    coarse = canonical_grid(labels, COARSE_MM, (lps.min(0) - margin, lps.max(0) + margin))
    lo, hi = _draw_crop(labels_onto(labels, coarse), rng, settings)
    if inside_map:
        inner = physical_bounds_lps(labels)
        lo, hi = np.maximum(lo, inner[0]), np.minimum(hi, inner[1])
    return lo, hi


def _render_grid(
    labels: Image, tissues: Image | None, reference: Image, settings: RenderSettings
) -> tuple[Image, np.ndarray, np.ndarray | None]:
    """(the fine axis-aligned grid holding every voxel of ``reference``, labels on it,
    tissues on it or None)."""
    lo, hi = physical_bounds_lps(reference)
    lo, hi = lo - 2 * settings.render_spacing_mm, hi + 2 * settings.render_spacing_mm
    spacing = max(
        settings.render_spacing_mm, float(np.cbrt(np.prod(hi - lo) / settings.max_render_voxels))
    )
    grid = canonical_grid(labels, spacing, (lo, hi))
    lab = labels_onto(labels, grid).array
    tis = None if tissues is None else labels_onto(tissues, grid).array
    return grid.with_array(lab), lab, tis


def _draw_crop(
    coarse: Image, rng: np.random.Generator, settings: RenderSettings
) -> tuple[np.ndarray, np.ndarray]:
    """An LPS box (min, max corners, mm): a margin per side across the spine (negative cuts
    the arches), along it (Superior) either a margin or a drawn range of at least
    ``MIN_CROP_LEVELS`` levels whose end vertebrae may be cut. ``coarse``: the labels on a
    canonical grid (k runs to Superior)."""
    lab = coarse.array
    sp = coarse.spacing_mm[0]
    box = bounding_box(lab > 0)
    lo = np.array([s.start for s in box], float)  # (k, j, i)
    hi = np.array([s.stop for s in box], float)
    margins = rng.uniform(*settings.margin_mm, (2, 3)) / sp
    start, stop = lo - margins[0], hi + margins[1]
    centres = _centroids(lab)
    present = sorted(centres)
    if len(present) > 1 and rng.random() < settings.p_level_crop:
        ks = {v: c[0] for v, c in centres.items()}
        order = sorted(present, key=_level_order)
        keep = min(len(order), MIN_CROP_LEVELS)
        first = int(rng.integers(len(order) - keep + 1))
        last = int(rng.integers(first + keep - 1, len(order)))
        step = abs(ks[order[-1]] - ks[order[0]]) / (len(order) - 1)
        k_top, k_bottom = sorted((ks[order[first]], ks[order[last]]))[::-1]
        stop[0] = min(stop[0], k_top + 0.5 + step * rng.uniform(-0.25, 1.0))
        start[0] = max(start[0], k_bottom + 0.5 - step * rng.uniform(-0.25, 1.0))
    shape = np.asarray(lab.shape)
    start = np.clip(start, 0, shape - 1)
    stop = np.clip(np.maximum(stop, start + MIN_CROP_MM / sp), 0, shape)
    kji = np.array([start, stop]) - 0.5  # voxel edges
    corners = index_to_lps(coarse, kji[:, ::-1])
    return corners.min(0), corners.max(0)


def _centroids(lab: np.ndarray) -> dict[int, np.ndarray]:
    """Label -> centroid (k, j, i) voxels, for every label present, in label order (one pass
    over the labelled voxels: the map is mostly background)."""
    kji = np.nonzero(lab)
    values = lab[kji].astype(np.int64)
    counts = np.bincount(values)
    present = np.nonzero(counts)[0]
    sums = [np.bincount(values, weights=axis, minlength=counts.size)[present] for axis in kji]
    return {int(v): np.array([s[n] for s in sums]) / counts[v] for n, v in enumerate(present)}


def _level_order(label: int) -> float:
    """Cranial to caudal: VerSe values, except 28 (T13) between T12 and L1."""
    return 19.5 if label == 28 else float(label)


# ----------------------------------------------------------------------------- the HU


def _paint(
    lab: np.ndarray,
    tis: np.ndarray | None,
    spacing_mm: float,
    rng: np.random.Generator,
    settings: RenderSettings,
) -> np.ndarray:
    """HU ``(K, J, I)`` float32 on the fine grid: the surroundings, then the vertebrae."""
    texture = ndimage.gaussian_filter(rng.standard_normal(lab.shape, dtype=np.float32), 1.0)
    texture /= max(float(texture.std()), 1e-6)
    if tis is None:
        hu = _surroundings(lab, spacing_mm, texture, rng, settings)
    else:
        hu = _tissue_hu(tis, texture, rng)
    _paint_vertebrae(hu, lab, spacing_mm, texture, rng, settings)
    return hu


def _paint_vertebrae(
    hu: np.ndarray,
    lab: np.ndarray,
    spacing_mm: float,
    texture: np.ndarray,
    rng: np.random.Generator,
    settings: RenderSettings,
) -> None:
    """Each vertebra: its rim (the label minus its erosion) cortical, its interior cancellous,
    denser towards the back (the arch); per-vertebra offsets. In place."""
    bone = lab > 0
    rim_voxels = max(1, int(round(rng.uniform(0.8, 2.2) / spacing_mm)))
    size = 2 * rim_voxels + 1
    interior = (ndimage.minimum_filter(lab, size) == lab) & (
        ndimage.maximum_filter(lab, size) == lab
    )
    top = int(lab.max()) + 1
    cancellous = float(rng.uniform(*settings.cancellous_hu))
    cortical = float(
        rng.uniform(
            max(settings.cortical_hu[0], cancellous + 100),
            max(settings.cortical_hu[1], cancellous + 150),
        )
    )
    arch = float(rng.uniform(*settings.arch_extra_hu))
    canc_lut = np.float32(cancellous) + rng.normal(0, 30, top).astype(np.float32)
    cort_lut = np.float32(cortical) + rng.normal(0, 60, top).astype(np.float32)
    arch_lut = np.float32(arch) * rng.uniform(0.5, 1.5, top).astype(np.float32)
    j_centre = np.zeros(top, np.float32)
    for v, c in _centroids(lab).items():
        j_centre[v] = c[1] + rng.uniform(-3, 3) / spacing_mm
    ramp = rng.uniform(5.0, 15.0) / spacing_mm
    kk, jj, ii = np.nonzero(bone)
    v = lab[kk, jj, ii]
    back = np.clip((jj - j_centre[v]) / ramp, 0.0, 1.0)  # j runs to Posterior
    inner = canc_lut[v] + back * arch_lut[v] + rng.uniform(10, 50) * texture[kk, jj, ii]
    hu[kk, jj, ii] = np.where(interior[kk, jj, ii], inner, np.maximum(cort_lut[v], inner))


def _surroundings(
    lab: np.ndarray,
    spacing_mm: float,
    texture: np.ndarray,
    rng: np.random.Generator,
    settings: RenderSettings,
) -> np.ndarray:
    """Air, a body ellipse per axial slice around the spine (subcutaneous fat, muscle with
    fat patches), lungs beside thoracic levels (sometimes), discs and ligaments in the gaps
    between vertebrae, the spinal canal."""
    bone = lab > 0
    hu = np.full(lab.shape, rng.uniform(-1010, -980), np.float32)
    jj = np.arange(lab.shape[1])[None, :, None]
    ii = np.arange(lab.shape[2])[None, None, :]
    centre_i, back_j, size_scale, thoracic = _column_profile(lab, spacing_mm, rng)
    habitus = rng.uniform(0.8, 1.3)
    half_i = habitus * size_scale * rng.uniform(130, 180) / spacing_mm
    half_j = habitus * size_scale * rng.uniform(90, 130) / spacing_mm
    back = back_j + rng.uniform(15, 70) / spacing_mm * size_scale
    centre_j = back - half_j
    shift_i = rng.normal(0, 5) / spacing_mm

    def ellipse(shrink: float) -> np.ndarray:
        di = (ii - (centre_i + shift_i)[:, None, None]) / np.maximum(half_i - shrink, 1)[
            :, None, None
        ]
        dj = (jj - centre_j[:, None, None]) / np.maximum(half_j - shrink, 1)[:, None, None]
        return di * di + dj * dj <= 1.0

    body = ellipse(0.0)
    fat_hu, muscle_hu = rng.uniform(-130, -60), rng.uniform(20, 70)
    hu[body] = fat_hu
    inner = ellipse(rng.uniform(3, 35) / spacing_mm)
    patches = ndimage.gaussian_filter(
        rng.standard_normal(lab.shape, dtype=np.float32), 6.0 / spacing_mm
    )
    patches /= max(float(patches.std()), 1e-6)
    fatty = patches > rng.uniform(0.3, 2.5)
    hu[inner] = np.where(fatty[inner], fat_hu, muscle_hu)
    if rng.random() < settings.p_lungs and thoracic.any():
        _paint_lungs(hu, bone, thoracic, centre_i + shift_i, back_j, half_i, spacing_mm, rng)
    gap = int(round(rng.uniform(8, 14) / spacing_mm)) | 1
    closed = ndimage.minimum_filter1d(
        ndimage.maximum_filter1d(bone.view(np.uint8), gap, axis=0), gap, axis=0
    )
    hu[(closed > 0) & ~bone] = rng.uniform(50, 130)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    canal = ndimage.binary_fill_holes(bone, in_plane) & ~bone
    hu[canal] = rng.uniform(0, 40)
    hu += rng.uniform(5, 20) * texture
    return hu


def _column_profile(
    lab: np.ndarray, spacing_mm: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per axial slice k: the spine's i centre, its most posterior j, the body's size
    relative to an adult trunk (a neck is smaller), and whether the level is thoracic.
    Slices without bone take the nearest slice's values."""
    bone = lab > 0
    k_has = np.nonzero(bone.any(axis=(1, 2)))[0]
    counts = bone.sum(axis=(1, 2)).astype(float)
    i_mean = (bone.sum(axis=1) * np.arange(lab.shape[2])).sum(axis=1) / np.maximum(counts, 1)
    j_any = bone.any(axis=2)
    j_back = np.where(j_any.any(axis=1), lab.shape[1] - 1 - np.argmax(j_any[:, ::-1], axis=1), 0)
    k = np.arange(lab.shape[0])
    centre_i = np.interp(k, k_has, i_mean[k_has])
    back_j = np.interp(k, k_has, j_back[k_has].astype(float))
    back_j = ndimage.uniform_filter1d(back_j, max(1, int(20 / spacing_mm)), mode="nearest")
    found = _centroids(lab)
    present, centres = list(found), list(found.values())
    order = np.argsort([c[0] for c in centres])
    ck = np.array([centres[o][0] for o in order])
    neck = np.array([_is_region(present[o], "cervical") for o in order], float)
    chest = np.array([_is_region(present[o], "thoracic") for o in order], float)
    neck_k = np.interp(k, ck, neck)
    size_scale = 1.0 - neck_k * rng.uniform(0.45, 0.6)
    thoracic = np.interp(k, ck, chest) > 0.5
    return centre_i, back_j, size_scale, thoracic


def _is_region(label: int, region: str) -> bool:
    if label == 28:
        return region == "thoracic"
    return label in anatomy.BY_LABEL and anatomy.BY_LABEL[label].region == region


def _paint_lungs(
    hu: np.ndarray,
    bone: np.ndarray,
    thoracic: np.ndarray,
    centre_i: np.ndarray,
    back_j: np.ndarray,
    half_i: np.ndarray,
    spacing_mm: float,
    rng: np.random.Generator,
) -> None:
    """Two lung ellipses in front of and beside the column on thoracic slices, kept a few mm
    off the bone (pleura and paraspinal muscle lie between). In place."""
    jj = np.arange(hu.shape[1])[None, :, None]
    ii = np.arange(hu.shape[2])[None, None, :]
    away = (
        ndimage.maximum_filter(
            bone.view(np.uint8), int(round(rng.uniform(3, 10) / spacing_mm)) * 2 + 1
        )
        > 0
    )
    lung_hu = rng.uniform(-900, -700)
    depth = rng.uniform(40, 70) / spacing_mm  # from the back of the column to the lung centre
    for side in (-1.0, 1.0):
        ci = centre_i + side * np.minimum(rng.uniform(45, 75) / spacing_mm, 0.5 * half_i)
        cj = back_j - depth
        ai, aj = rng.uniform(30, 55) / spacing_mm, rng.uniform(45, 75) / spacing_mm
        di = (ii - ci[:, None, None]) / ai
        dj = (jj - cj[:, None, None]) / aj
        lung = (di * di + dj * dj <= 1.0) & thoracic[:, None, None] & ~away
        hu[lung] = lung_hu


def _tissue_hu(tis: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HU from a phantom tissue map, every class's value drawn afresh (TissueHU's ranges)."""
    drawn = T.TissueHU.draw(rng, osteoporotic=bool(rng.random() < 0.3))
    lut = np.zeros(256, np.float32)
    for tissue, value in (
        (T.AIR, drawn.air),
        (T.FAT, drawn.fat),
        (T.MUSCLE, drawn.muscle),
        (T.ORGAN, drawn.organ),
        (T.LUNG, drawn.lung),
        (T.CORTEX, drawn.cortex),
        (T.CANCELLOUS, drawn.cancellous),
        (T.DISC, drawn.disc),
        (T.CANAL, drawn.canal),
        (T.BONE_CORTEX, drawn.cortex),
        (T.BONE_MARROW, drawn.marrow),
        (T.CARTILAGE, drawn.cartilage),
        (T.VESSEL, drawn.blood),
        (T.METAL, drawn.metal),
        (T.TABLE, drawn.table),
        (T.GAS, drawn.air),
        (T.BRAIN, drawn.brain),
    ):
        lut[tissue] = value
    return lut[tis] + rng.uniform(5, 20) * texture
