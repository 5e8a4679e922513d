"""What the masks of the walk that are smaller than a vertebra are, asked of a second
stage-2 net: pieces of a neighbour, or a vertebra the walking net saw only part of.

On real CT with thick slices (3 mm) the walking net can return one vertebra as three masks
(its body, its arch, its spinous process), each of which takes a level: every name below
shifts (verse005 resampled to 3 mm slabs: its L4 came as 24 + 15 + 2 ml, its L5's spinous
process as a mask of its own). ``column.merge_split_vertebrae`` joins two halves from their
volumes and steps; three pieces, or a process hanging below the next body, pass it. Or the
walk finds a 6 ml piece of a vertebra, takes it for the spine's end and stops (verse005's two
middle vertebrae alone at 3 mm: its L3, whole in view, lost).

The outline net (Resources/Models/real_shapes), fine-tuned on real expert masks, segments a
whole real vertebra from a patch centred anywhere on it. Seeded at a suspect mask with
nothing in memory, its outline covers a neighbour when the two are one vertebra (on the two
real cases at 1 and 3 mm: 0.64-0.91 of the other piece) and hardly touches a true neighbour
(at most 0.2 there); where it covers no neighbour but is several times the mask, the mask
was a piece of a vertebra no other mask holds (verse005's L3 above: 5.9 ml, outlined 35.8).
Only masks smaller than a whole vertebra near them, outside the neck, are suspects
(``column.suspect_pieces``), so a column of whole vertebrae costs no prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from SpineLabelerLib.outline_pass import patch_round

# (CT patch in [-1, 1], memory patch 0/1), both (K, J, I) float32 -> probability (K, J, I)
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]

# The share of a mask that an outline seeded at its neighbour must cover to make them one.
MIN_COVER = 0.5
# How far apart in the walk's order two masks may be and still be one vertebra: the walk can
# find a spinous process before the body it hangs from (verse005 at 3 mm).
WINDOW = 2
# A piece that the outline seeded at it makes this many times larger (with voxels no mask
# holds), touching no neighbour, becomes the vertebra it was a piece of.
GROW_RATIO = 2.0


@dataclass(frozen=True)
class Outline:
    """The net's vertebra round a seed: ``mask`` (bool) and ``probability`` (0..1) on the
    crop's ``region``."""

    region: tuple[slice, ...]
    mask: np.ndarray
    probability: np.ndarray

    def share_of(self, instances: np.ndarray, index: int) -> float:
        """The share of mask ``index``'s voxels this outline holds."""
        total = int(np.count_nonzero(instances == index))
        inside = int(np.count_nonzero(self.mask & (instances[self.region] == index)))
        return inside / total if total else 0.0


class SeededOutlines:
    """The outline seeded at each mask of the walk, predicted once when first asked for.

    ``ct``: the normalized 1 mm crop the walk ran on; ``valid``: its field-of-view mask;
    ``instances``: the walk's masks (read when an outline is predicted); ``centres_kji``:
    instance value -> its centroid on that grid.
    """

    def __init__(
        self,
        predict: Predictor,
        ct: np.ndarray,
        valid: np.ndarray,
        instances: np.ndarray,
        centres_kji: dict[int, np.ndarray],
        patch_kji: tuple[int, int, int],
    ) -> None:
        self._predict, self._ct, self._valid = predict, ct, valid
        self._instances, self._centres = instances, centres_kji
        self._size = np.asarray(patch_kji, int)
        self._done: dict[int, Outline | None] = {}

    def __call__(self, index: int) -> Outline | None:
        if index not in self._done:
            self._done[index] = self._predict_at(index)
        return self._done[index]

    def _predict_at(self, index: int) -> Outline | None:
        """The net's piece overlapping mask ``index`` most, from a patch centred on it with
        nothing in memory; None where the patch misses the crop or the net finds nothing."""
        cut = patch_round(self._ct, self._centres[index], self._size)
        if cut is None:
            return None
        _, crop_part, patch_part, ct_patch = cut
        p = self._predict(ct_patch, np.zeros_like(ct_patch))[patch_part]
        pieces, n = ndimage.label((p >= 0.5) & self._valid[crop_part])
        overlap = np.bincount(pieces[self._instances[crop_part] == index], minlength=n + 1)
        overlap[0] = 0
        if n == 0 or overlap.max() == 0:
            return None
        return Outline(crop_part, pieces == int(np.argmax(overlap)), p)


def same_vertebra_pairs(
    outlines: Callable[[int], Outline | None],
    instances: np.ndarray,
    order: Sequence[int],
    suspects: Sequence[bool],
    cut: Sequence[bool],
    min_cover: float = MIN_COVER,
) -> list[tuple[int, int]]:
    """Positions ``(n, m)`` in ``order`` (the walk's instance values, cranial first; ``m - n``
    at most ``WINDOW``) of masks that are one vertebra: at least one of them a suspect, the
    smaller not ``cut`` by the field of view (a sliver at the view's edge is small because
    the view cut it, and an outline of its neighbour grazes half of it: phantoms bench009,
    bench015), and the outline seeded at either covering ``min_cover`` of the other's voxels."""
    sizes = {index: int(np.count_nonzero(instances == index)) for index in order}

    def covers(seed: int, other: int) -> bool:
        outline = outlines(seed)
        return outline is not None and outline.share_of(instances, other) >= min_cover

    pairs = []
    for n in range(len(order) - 1):
        for m in range(n + 1, min(n + 1 + WINDOW, len(order))):
            smaller = n if sizes[order[n]] < sizes[order[m]] else m
            if not (suspects[n] or suspects[m]) or cut[smaller]:
                continue
            if covers(order[n], order[m]) or covers(order[m], order[n]):
                pairs.append((n, m))
    return pairs


def whole_vertebra_of(
    outline: Outline | None,
    instances: np.ndarray,
    index: int,
    whole_voxels: float,
    grow_ratio: float = GROW_RATIO,
) -> np.ndarray | None:
    """The voxels (bool, on ``outline.region``) that make mask ``index`` the vertebra it is a
    piece of: the outline's voxels no mask holds, where they make the mask at least
    ``grow_ratio`` times what it was and at least ``whole_voxels`` (a whole vertebra's size
    there), and the outline is not one vertebra with another mask (covers under ``MIN_COVER``
    of each); else None. An outline that only spills into the neighbours of a sliver at the
    view's edge adds too little (phantoms bench009, bench012); one that makes a piece of the
    sacrum below L5 larger, but no vertebra, adds too little too (bench026)."""
    if outline is None:
        return None
    here = instances[outline.region]
    own = int(np.count_nonzero(instances == index))
    added = outline.mask & (here == 0)
    if own + int(added.sum()) < max(grow_ratio * own, whole_voxels):
        return None
    others = np.unique(here[outline.mask & (here > 0) & (here != index)])
    if any(outline.share_of(instances, int(o)) >= MIN_COVER for o in others):
        return None
    return added
