"""Corrections a clinician makes to a labelled spine: relabel from here, merge, split, centroids.

Every function takes a labelmap ``Image`` (VerSe values, array ``(K, J, I)``, geometry in LPS
mm) and returns a new one; nothing is changed in place, so the Slicer module can always
recompute names, colours, centroids and markups from the labelmap alone.

Names follow *position order*: the vertebrae sorted cranial -> caudal by their centroids'
projection on the spine's main axis. Renaming from an anchor is a shift of every name by the
same number of levels; where the current names skip a level between two neighbours (a
vertebra the segmentation missed) the gap is kept, and where they repeat or run backwards the
names are made consecutive in position order.

Merge and split change the number of vertebrae, so the names on one side of the edit
(``keep="cranial"`` by default: those above it) are trusted and the others follow in
position order: merging an over-segmented vertebra gives its extra level back to the
vertebrae below; splitting an under-segmented pair names the lower part one level down and
the vertebrae below follow.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, Union

import numpy as np

from SpineLabelerLib import anatomy
from SpineLabelerLib.evaluation.centroids import centroids_from_labels
from SpineLabelerLib.image import Image, index_to_lps

Level = Union[int, str]  # a VerSe label value or a name such as "T12"
Side = Literal["cranial", "caudal"]
T = TypeVar("T")

CSV_COLUMNS = ("name", "label", "l_mm", "p_mm", "s_mm", "volume_ml", "voxels")

# A split part smaller than this fraction of the mask is almost surely a cut through the
# vertebra's tip rather than through a disc.
_MIN_SPLIT_FRACTION = 0.1


@dataclass(frozen=True)
class LabelEdit:
    """Result of an edit: the new labelmap and, for every vertebra that kept its voxels, its
    old -> new label (so confidence and "partial" flags can follow their vertebra)."""

    labels: Image
    renamed: dict[int, int]


@dataclass(frozen=True)
class VertebraSummary:
    """One row of the vertebrae table: VerSe label, name, size and centroid (LPS mm)."""

    label: int
    name: str
    voxels: int
    volume_ml: float
    centroid_lps: tuple[float, float, float]


def _level_label(level: Level) -> int:
    return anatomy.vertebra(level).label


def _check_labels(labels: Image) -> np.ndarray:
    """The present label values; refuses values that are not C1..L6."""
    if labels.array.ndim != 3:
        raise ValueError(f"expected a 3D labelmap (K, J, I), got shape {labels.array.shape}")
    if not np.issubdtype(labels.array.dtype, np.integer):
        raise ValueError(f"labelmap must hold integers (VerSe values), got {labels.array.dtype}")
    counts = _label_counts(labels.array)
    present = np.flatnonzero(counts)
    present = present[present != 0]
    unknown = [int(v) for v in present if int(v) not in anatomy.BY_LABEL]
    if unknown:
        raise ValueError(f"label values {unknown} are not vertebrae C1..L6 (VerSe 1..25)")
    return present.astype(int)


def _label_counts(array: np.ndarray, chunk_voxels: int = 1 << 24) -> np.ndarray:
    """Voxel count of every value 0..max, a slab at a time (a clinical CT's labelmap has
    ~2e8 voxels: no full-size int64 copy, no sort)."""
    if array.size and array.min() < 0:
        raise ValueError(f"labelmap holds negative values (lowest {array.min()})")
    flat = array.reshape(-1)
    counts = np.zeros(int(array.max()) + 1 if array.size else 1, np.int64)
    for start in range(0, flat.size, chunk_voxels):
        counts += np.bincount(flat[start : start + chunk_voxels], minlength=counts.size)
    return counts


def present_labels(labels: Image) -> list[int]:
    """Sorted VerSe values present in the labelmap (background 0 left out)."""
    return [int(v) for v in _check_labels(labels)]


def vertebra_centroids_lps(labels: Image) -> dict[int, np.ndarray]:
    """Centroid (LPS mm, shape (3,)) of every vertebra: the project's one definition
    (``evaluation.centroids_from_labels``), after checking the values are C1..L6."""
    _check_labels(labels)
    return centroids_from_labels(labels)


def summarize(labels: Image) -> list[VertebraSummary]:
    """Table rows (label, name, volume, centroid) in position order, cranial first."""
    centroids = vertebra_centroids_lps(labels)
    counts = _label_counts(labels.array)
    voxel_ml = float(np.prod(labels.spacing_mm)) / 1000.0
    return [
        VertebraSummary(
            label=v,
            name=anatomy.vertebra(v).name,
            voxels=int(counts[v]),
            volume_ml=float(counts[v]) * voxel_ml,
            centroid_lps=tuple(float(x) for x in centroids[v]),  # type: ignore[arg-type]
        )
        for v in spine_order(centroids)
    ]


def spine_axis(points_lps: np.ndarray) -> np.ndarray:
    """Unit vector (LPS) of the main axis of ``(N, 3)`` points, pointing caudally (-S).

    The first principal axis; with one point (or none) the patient's inferior direction.
    """
    pts = np.atleast_2d(np.asarray(points_lps, float))
    axis = np.array([0.0, 0.0, -1.0])
    if len(pts) >= 2:
        centred = pts - pts.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        if np.linalg.norm(centred) > 0:
            axis = vt[0]
    return -axis if axis[2] > 0 else axis


def spine_order(centroids_lps: Mapping[int, np.ndarray]) -> list[int]:
    """Labels sorted cranial -> caudal by their centroids' projection on the spine axis."""
    if not centroids_lps:
        return []
    keys = list(centroids_lps)
    pts = np.array([centroids_lps[k] for k in keys], float)
    t = pts @ spine_axis(pts)
    return [keys[n] for n in np.argsort(t, kind="stable")]


def renumber_in_order(
    old_top: Sequence[int],
    old_bottom: Sequence[int],
    anchor: int,
    anchor_label: int,
    keep_gaps: bool = True,
) -> list[int]:
    """New labels for vertebrae in position order (cranial first), given that item ``anchor``
    is level ``anchor_label``.

    Item ``n`` had old labels ``old_top[n]`` (its cranial end) and ``old_bottom[n]`` (its
    caudal end; different only for a merged vertebra). The step between neighbours is
    ``old_top[n+1] - old_bottom[n]`` (a gap left by a missed vertebra is kept) when
    ``keep_gaps`` and the old names are in position order (every such step >= 1); otherwise
    every step is 1, so names that repeat or run backwards become consecutive.
    """
    n = len(old_top)
    if len(old_bottom) != n or not 0 <= anchor < n:
        raise ValueError(f"anchor {anchor} outside {n} vertebrae, or top/bottom lengths differ")
    gaps = [int(old_top[m + 1]) - int(old_bottom[m]) for m in range(n - 1)]
    in_order = keep_gaps and all(g >= 1 for g in gaps)

    def step(upper: int) -> int:
        return gaps[upper] if in_order else 1

    new = [0] * n
    new[anchor] = int(anchor_label)
    for m in range(anchor + 1, n):
        new[m] = new[m - 1] + step(m - 1)
    for m in range(anchor - 1, -1, -1):
        new[m] = new[m + 1] - step(m)
    if new[0] < 1 or new[-1] > anatomy.MAX_LABEL:
        first, last = new[0], new[-1]
        raise ValueError(
            f"renaming would need levels {first}..{last}, outside C1..L6 (1..{anatomy.MAX_LABEL}): "
            f"{n} vertebrae cannot be named that way from this anchor"
        )
    return new


def relabel_mapping(
    centroids_lps: Mapping[int, np.ndarray],
    segment: Level,
    true_level: Level,
    keep_gaps: bool = True,
) -> dict[int, int]:
    """Old -> new label of every vertebra when vertebra ``segment`` is really ``true_level``."""
    old = _level_label(segment)
    if old not in centroids_lps:
        raise ValueError(f"{anatomy.vertebra(old).name} is not in the segmentation")
    order = spine_order(centroids_lps)
    new = renumber_in_order(order, order, order.index(old), _level_label(true_level), keep_gaps)
    return dict(zip(order, new))


def _relabelled(labels: Image, parts: Sequence[np.ndarray], new: Sequence[int]) -> Image:
    """A labelmap where boolean mask ``parts[n]`` carries label ``new[n]``."""
    out = np.zeros_like(labels.array)
    for mask, value in zip(parts, new):
        out[mask] = value
    return labels.with_array(out)


def apply_mapping(labels: Image, mapping: Mapping[int, int]) -> Image:
    """Rename label values by a lookup table; values not in ``mapping`` stay as they are."""
    _check_labels(labels)
    lut = np.arange(max(int(labels.array.max()), anatomy.MAX_LABEL) + 1, dtype=labels.array.dtype)
    for old, new in mapping.items():
        lut[int(old)] = int(new)
    return labels.with_array(lut[labels.array])


def relabel_from_here(
    labels: Image, segment: Level, true_level: Level, keep_gaps: bool = True
) -> LabelEdit:
    """ "Vertebra ``segment`` is really ``true_level``": rename every vertebra in position order.

    >>> relabel_from_here(labels, "T12", "L1")  # T10..L2 become T11..L3
    """
    mapping = relabel_mapping(vertebra_centroids_lps(labels), segment, true_level, keep_gaps)
    return LabelEdit(apply_mapping(labels, mapping), mapping)


def _neighbours(order: Sequence[int], label: int) -> tuple[int | None, int | None]:
    at = order.index(label)
    return (order[at - 1] if at > 0 else None, order[at + 1] if at + 1 < len(order) else None)


def merge(labels: Image, first: Level, second: Level, keep: Side = "cranial") -> LabelEdit:
    """Merge two neighbouring segments into one vertebra (an over-segmented vertebra).

    The merged vertebra takes the name of the ``keep`` side (``"cranial"``: the upper of the
    two) and the vertebrae on the other side are renamed in position order, so the level
    the extra segment used is given back: T12, L1a, L1b, L2(=L1b's old next) -> T12, L1, L2.
    """
    a, b = _level_label(first), _level_label(second)
    if a == b:
        raise ValueError("choose two different segments to merge")
    centroids = vertebra_centroids_lps(labels)
    for v in (a, b):
        if v not in centroids:
            raise ValueError(f"{anatomy.vertebra(v).name} is not in the segmentation")
    order = spine_order(centroids)
    upper, lower = sorted((a, b), key=order.index)
    if order.index(lower) != order.index(upper) + 1:
        raise ValueError(
            f"{anatomy.vertebra(upper).name} and {anatomy.vertebra(lower).name} are not neighbours "
            "along the spine; only two parts of one vertebra can be merged"
        )
    items = [v for v in order if v != lower]
    at = items.index(upper)
    tops = list(items)
    bottoms = [lower if v == upper else v for v in items]
    anchor_label = upper if keep == "cranial" else lower
    new = renumber_in_order(tops, bottoms, at, anchor_label)
    parts = [
        np.isin(labels.array, (upper, lower)) if v == upper else labels.array == v for v in items
    ]
    renamed = {v: n for v, n in zip(items, new) if v != upper}
    return LabelEdit(_relabelled(labels, parts, new), renamed)


def local_spine_axis(
    labels: Image, label: int, centroids_lps: Mapping[int, np.ndarray]
) -> np.ndarray:
    """Unit vector (LPS, pointing caudally) of the spine at vertebra ``label``.

    From the cranial to the caudal neighbour's centroid; with one neighbour, between it and
    this centroid; with none, the mask's own main axis (a mask holding two vertebrae is
    longest along the spine).
    """
    order = spine_order(centroids_lps)
    upper, lower = _neighbours(order, label)
    if upper is not None or lower is not None:
        top = centroids_lps[upper] if upper is not None else centroids_lps[label]
        bottom = centroids_lps[lower] if lower is not None else centroids_lps[label]
        axis = np.asarray(bottom, float) - np.asarray(top, float)
        return axis / np.linalg.norm(axis)
    return spine_axis(_mask_points_lps(labels, label))


def _mask_points_lps(labels: Image, label: int) -> np.ndarray:
    kji = np.argwhere(labels.array == label)
    return index_to_lps(labels, kji[:, ::-1].astype(float))


def _thinnest_offset_mm(t_mm: np.ndarray, bin_mm: float) -> float:
    """Offset along the axis (mm) of the smallest cross-section in the middle half of the
    mask: the disc between two vertebrae that were segmented as one."""
    lo, hi = np.quantile(t_mm, [0.25, 0.75])
    edges = np.arange(lo, hi + bin_mm, bin_mm)
    if len(edges) < 3:
        return float(np.median(t_mm))
    counts, _ = np.histogram(t_mm, bins=edges)
    smooth = np.convolve(counts, np.ones(3) / 3.0, mode="same")
    smooth[0], smooth[-1] = counts[0], counts[-1]
    best = int(np.argmin(smooth))
    return float(0.5 * (edges[best] + edges[best + 1]))


def _split_part_levels(
    order: Sequence[int], at: int, keep: Side
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Old (top, bottom) levels the two parts of split vertebra ``order[at]`` (= L) stand for.

    The kept part is L; the other part is the next level on its side, and the step from it
    to the first vertebra beyond is one level whether or not the names beyond already
    skipped the hidden vertebra: "L" (really L and L+1) followed by "L+1" becomes L, L+1,
    L+2; followed by "L+2" it becomes L, L+1, L+2 too (that name was already right).
    """
    level = order[at]
    if keep == "cranial":
        after = order[at + 1] if at + 1 < len(order) else level + 2
        return (level, level), (level + 1, min(level + 1, after - 1))
    before = order[at - 1] if at > 0 else level - 2
    return (max(level - 1, before + 1), level - 1), (level, level)


def split(
    labels: Image,
    segment: Level,
    cut: Literal["thinnest", "centroid"] = "thinnest",
    keep: Side = "cranial",
) -> LabelEdit:
    """Split one segment in two along the disc plane (an under-segmented pair of vertebrae).

    The plane is perpendicular to the local spine axis and passes through the mask's
    thinnest cross-section (``cut="thinnest"``) or its centroid (``"centroid"``). The
    ``keep`` side's part keeps the segment's name; the other part and the vertebrae beyond
    it are renamed in position order (L3+L4 named "L3", next named "L4" -> L3, L4, L5).
    """
    label = _level_label(segment)
    centroids = vertebra_centroids_lps(labels)
    if label not in centroids:
        raise ValueError(f"{anatomy.vertebra(label).name} is not in the segmentation")
    axis = local_spine_axis(labels, label, centroids)
    kji = np.argwhere(labels.array == label)
    t = (index_to_lps(labels, kji[:, ::-1].astype(float)) - centroids[label]) @ axis
    offset = _thinnest_offset_mm(t, max(labels.spacing_mm)) if cut == "thinnest" else 0.0
    lower = t > offset
    smallest = min(int(lower.sum()), int((~lower).sum()))
    if smallest < _MIN_SPLIT_FRACTION * len(t):
        raise ValueError(
            f"splitting {anatomy.vertebra(label).name} would leave a part of only {smallest} voxels; "
            "is it really two vertebrae?"
        )
    upper_mask = np.zeros(labels.array.shape, bool)
    lower_mask = np.zeros(labels.array.shape, bool)
    upper_mask[tuple(kji[~lower].T)] = True
    lower_mask[tuple(kji[lower].T)] = True

    order = spine_order(centroids)
    at = order.index(label)
    upper_old, lower_old = _split_part_levels(order, at, keep)
    tops = order[:at] + [upper_old[0], lower_old[0]] + order[at + 1 :]
    bottoms = order[:at] + [upper_old[1], lower_old[1]] + order[at + 1 :]
    anchor = at if keep == "cranial" else at + 1
    new = renumber_in_order(tops, bottoms, anchor, label)
    parts = [labels.array == v for v in order[:at]] + [upper_mask, lower_mask]
    parts += [labels.array == v for v in order[at + 1 :]]
    others = order[:at] + order[at + 1 :]
    new_others = new[:at] + new[at + 2 :]
    return LabelEdit(_relabelled(labels, parts, new), dict(zip(others, new_others)))


def carry_over(values: Mapping[int, T], renamed: Mapping[int, int]) -> dict[int, T]:
    """Per-vertebra values (confidence, "partial") moved to their vertebra's new label after
    an edit; a vertebra the edit made (merged or split) has no value and is left out."""
    return {int(renamed[old]): value for old, value in values.items() if old in renamed}


def write_vertebrae_csv(path: str | os.PathLike, labels: Image, force: bool = False) -> Path:
    """One row per vertebra, cranial first: name, VerSe label, centroid (LPS mm), volume."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True to overwrite")
    rows = summarize(labels)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            x, y, z = (f"{c:.3f}" for c in r.centroid_lps)
            writer.writerow([r.name, r.label, x, y, z, f"{r.volume_ml:.3f}", r.voxels])
    os.replace(tmp, path)
    return path
