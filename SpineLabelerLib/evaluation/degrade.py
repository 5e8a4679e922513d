"""Real CTs made into the scans a user brings that the real data at hand is not: thick
axial slices, tight crops and another scanner grid, with the expert's labels carried along.

The two real CTs here are spine-tight crops at 1-2 mm; patients' CTs come at 3 mm slices
and cut anywhere (issue 22's judges: lumbar at 3 mm, two lumbar vertebrae at 3 mm). A thick
slice is the average of the thin ones it covers (a scanner's slice profile, roughly), and
takes the expert's label at its middle; the CT's geometry stays true (the slab's centre
where its thin slices' centre was), so the expert's mask still lies on the bone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from SpineLabelerLib.image import Image, bounding_box, index_to_lps, resample_onto, subimage


def superior_axis(image: Image) -> int:
    """The array axis (0 = k, 1 = j, 2 = i) nearest the patient's superior-inferior axis."""
    along_s = np.abs(image.direction[2])  # LPS z component of each of the i, j, k columns
    return 2 - int(np.argmax(along_s))


def thick_slabs(ct: Image, labels: Image, slab_mm: float) -> tuple[Image, Image]:
    """``ct`` with its axial slices averaged into slabs about ``slab_mm`` thick (a whole
    number of slices; the last slices that make no whole slab are left out), and ``labels``
    at each slab's middle slice, on the same new grid."""
    axis = superior_axis(ct)
    ijk = 2 - axis
    step = ct.spacing_mm[ijk]
    n = max(1, int(round(slab_mm / step)))
    slabs = ct.array.shape[axis] // n
    if slabs == 0:
        raise ValueError(f"the CT is thinner than one {slab_mm} mm slab")
    kept = np.take(ct.array, np.arange(slabs * n), axis=axis).astype(np.float32)
    shape = list(kept.shape)
    shape[axis : axis + 1] = [slabs, n]
    averaged = np.round(kept.reshape(shape).mean(axis=axis + 1)).astype(ct.array.dtype)
    middles = np.take(labels.array, np.arange(slabs) * n + n // 2, axis=axis)
    first_middle = np.zeros(3)
    first_middle[ijk] = (n - 1) / 2  # the first slab's centre, in the thin grid's index
    origin = index_to_lps(ct, first_middle[None])[0]
    spacing = list(ct.spacing_mm)
    spacing[ijk] = step * n
    new_grid = Image(averaged, tuple(spacing), tuple(origin), ct.direction)
    return new_grid, new_grid.with_array(middles)


def crop_to_levels(
    ct: Image, labels: Image, levels: Sequence[int], margin_mm: float
) -> tuple[Image, Image]:
    """``ct`` and ``labels`` cut along the superior-inferior axis to the slices that hold
    the vertebrae ``levels`` (label values), ``margin_mm`` more on each side: a tight view
    in which the neighbours above and below are cut (their labels stay, as an expert would
    label what is in view)."""
    axis = superior_axis(ct)
    box = bounding_box(np.isin(labels.array, list(levels)))
    if box is None:
        raise ValueError(f"none of the levels {list(levels)} is labelled")
    extra = int(round(margin_mm / ct.spacing_mm[2 - axis]))
    region = [slice(0, n) for n in ct.array.shape]
    size = ct.array.shape[axis]
    region[axis] = slice(max(box[axis].start - extra, 0), min(box[axis].stop + extra, size))
    return subimage(ct, tuple(region)), subimage(labels, tuple(region))


def half_voxel_regrid(ct: Image, labels: Image) -> tuple[Image, Image]:
    """``ct`` sampled (linearly, stored in its own type) on its grid moved half a voxel along
    every axis and one voxel shorter on each, so that it stays inside the view, and ``labels``
    on the same grid as an expert would draw them there: each voxel takes the label that holds
    at least half of it (each label's mask resampled linearly).

    A scanner lays its voxel grid anywhere on the patient: the same anatomy, sampled once
    more, should be segmented and named as before. A pipeline decision that flips under this
    (verse005's sacrum, 2026-12-07: its walked mask 92 mm wide on the stored grid, 71 mm here,
    and every name a level high until column.recognise_sacrum read the width off the CT)
    stands on a knife's edge. Nearest-neighbour labels would move half a voxel with the grid:
    against these, verse005's own would score 94.5 % Dice, verse008's 92.4 %."""
    shape = tuple(n - 1 for n in ct.array.shape)
    if min(shape) < 1:
        raise ValueError(f"a {ct.array.shape} grid has no inside to move")
    shift = ct.direction @ (0.5 * np.asarray(ct.spacing_mm, float))
    grid = Image(
        np.zeros(shape, np.uint8),
        ct.spacing_mm,
        tuple(float(v) for v in np.asarray(ct.origin_lps, float) + shift),
        ct.direction,
    )
    moved = resample_onto(ct, grid, float32=True).array
    if np.issubdtype(ct.array.dtype, np.integer):
        moved = np.round(moved).astype(ct.array.dtype)
    out = np.zeros(shape, labels.array.dtype)
    held = np.full(shape, 0.5, np.float32)  # a label needs at least half the voxel
    for value in (int(v) for v in np.unique(labels.array) if v):
        mask = labels.with_array((labels.array == value).astype(np.float32))
        share = resample_onto(mask, grid, float32=True).array
        more = share >= held
        out[more], held[more] = value, share[more]
    return grid.with_array(moved), grid.with_array(out)
