"""A second stage-2 net outlines the vertebrae the walk found: by default it adds what the
walking net left out; with ``segment --real-shapes`` its outlines replace the walk's.

Why: the stage-2 net fine-tuned on real expert masks (Resources/Models/real_shapes) outlines
real bone nearer the expert (held-out verse005: outline Dice 85.2 % against 77.8 %), but as
the walking net it lost columns on the phantoms (one misnamed, two cut short) and, outlining
the transverse processes fuller, it made the lumbar vertebrae as wide as the sacrum's top, so
``column.recognise_sacrum`` no longer saw the sacrum and the count lost its anchor. Its
per-vertebra outlines on the phantoms were within half a Dice point of the default net's.
So the default net walks, and the column is judged and named on its masks; this pass then
outlines each vertebra again with the other net, cranial first, from a patch centred on it
with the vertebrae above it (already outlined again) in memory, as the walk and the training
placed them. A new outline counts only where the net finds the vertebra there (its largest
piece overlapping the old mask); voxels of the vertebrae above stay theirs.

Two ways to use it. Most of what the real-shape net gains on real bone is a rim one voxel
wide: real experts draw the bone's blurred edge, the phantoms' labels stop at the surface
they were drawn from, so taken whole ("replace") its outlines cost the phantom benchmark
half a Dice point. The rest is thick: the back halves of spinous processes and the arches'
ends, which the phantom-trained net misses on real CT. "add" (the default) keeps the walk's
outline and adds only the parts of the new one that no vertebra holds and that stay after an
opening by the 6-neighbour cross (at least two voxels thick): real lumbar CTs +2.8 and +6.0
Dice points, the phantom benchmark unchanged (benchmarks/results/real.txt, accuracy.txt).
The patch is the one the net was trained at (real_shapes: 64 x 128 x 112, wide enough for a
lumbar spinous process and L5's transverse processes).

Where "add" adds (``reach``, per vertebra; the pipeline sets it by region): the net learnt from
expert masks rendered without ribs; added anywhere, its thick parts cost the development
phantoms' thoracic vertebrae 0.4 Dice points and cervical 0.8 while lumbar gained 0.3 (on a
chest view they took rib heads: bench002, 2,750 rib voxels of 17,441 added). So a lumbar
vertebra takes them anywhere ("whole"), a thoracic one only behind its centroid and near its
midline ("behind": the laminae and the spinous process, where no rib lies; on the development
phantoms -0.1 there, on verse008's T12 +2.8), a cervical one none (behind it: -0.3).
Nowhere does it add ahead of the walk's front: on a contrast CT of osteoporotic bone
(bench003) the net took the iliac vessels in front of L4 as bone (3,294 voxels, none the
vertebra's); on the real cases what lay there was 143 and 164 voxels, 0 and 13 % theirs, and
441 of verse005's L3, 85 % its own (docs/RESULTS.md, session 29).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

from SpineLabelerLib.stage2 import CT_FILL
from SpineLabelerLib.training.samples import crop_with_fill, patch_slices

# (CT patch in [-1, 1], memory patch 0/1), both (K, J, I) float32 -> probability (K, J, I)
Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]

# A new outline overlapping less than this share of the old mask is not the same vertebra.
MIN_OVERLAP = 0.5

# "replace": the new outline replaces the old one (``segment --real-shapes``). "add": the old
# outline stays and only the new outline's parts that no vertebra holds and that are thicker
# than a one-voxel rim are added to it (the default): the parts the walking net misses on
# real bone, not the rim by which the two nets' conventions differ.
OutlineMode = Literal["replace", "add"]

# Where the "add" pass may add to a vertebra: "whole" anywhere; "behind" only behind its
# centroid and within BEHIND_HALF_WIDTH_MM of its midline (the laminae and the spinous
# process: never a rib, which leaves a thoracic vertebra beside it); None: not outlined again.
Reach = Literal["whole", "behind"]
BEHIND_HALF_WIDTH_MM = 15.0

# "add" never reaches further forward than this (1 mm voxels) ahead of the walk's outline: the
# walking net outlines a body's front, and what lies ahead of it is the aorta, the iliac vessels
# or the psoas, never the same vertebra.
AHEAD_SLACK_VOXELS = 1


def outline_again(
    predict: Predictor,
    ct: np.ndarray,
    valid: np.ndarray,
    instances: np.ndarray,
    probability: np.ndarray,
    order: Sequence[int],
    centres_kji: np.ndarray,
    patch_kji: tuple[int, int, int],
    before_each: Callable[[int, int], None] | None = None,
    mode: OutlineMode = "replace",
    reach: Sequence[Reach | None] | None = None,
) -> int:
    """Outline the vertebrae ``order`` (values in ``instances``, cranial first) again, in place
    in ``instances`` and ``probability`` (the walk's uint8 x 255 map); returns how many took
    the new outline (in ``mode`` "add": how many grew).

    ``ct``: the normalized 1 mm crop the walk ran on; ``valid``: its field-of-view mask;
    ``centres_kji``: each vertebra's centroid on that grid (1 mm voxels: k superior, j
    posterior, i left); ``reach``: per vertebra of ``order`` where the "add" pass may add
    (default "whole" for all; None: left as it is, memory for those below it).
    """
    size = np.asarray(patch_kji, int)
    reach = ["whole"] * len(order) if reach is None else list(reach)
    chosen = [n for n in range(len(order)) if reach[n] is not None]
    changed = 0
    for done, n in enumerate(chosen):
        index = order[n]
        if before_each is not None:
            before_each(done, len(chosen))
        cut = patch_round(ct, centres_kji[n], size)
        if cut is None:
            continue
        start, crop_part, patch_part, ct_patch = cut
        above = np.isin(crop_with_fill(instances, start, tuple(size), 0), order[:n])
        p = predict(ct_patch, above.astype(np.float32))[patch_part]
        here = instances[crop_part]
        old = here == index
        new = _the_vertebra((p >= 0.5) & valid[crop_part] & ~above[patch_part], old)
        if new is None:
            continue
        stored = probability[crop_part]
        if mode == "add":
            grown = _thick_part(new & (here == 0)) & ~_ahead_of(old)
            if reach[n] == "behind":
                grown &= _behind(centres_kji[n] - [sl.start for sl in crop_part], grown.shape)
            here[grown] = index
            stored[grown] = np.maximum(np.round(p[grown] * 255.0), 128)
            changed += int(grown.any())
            continue
        here[old & ~new] = 0
        here[new] = index
        # below 0.5 round the new outline and where the old one was: the output grid's
        # boundaries are interpolated from it (pipeline.labels_to_input_grid)
        outside = ndimage.binary_dilation(new, iterations=2) & (here == 0) | old & ~new
        stored[outside] = np.minimum(np.round(p[outside] * 255.0), 127)
        stored[new] = np.maximum(np.round(p[new] * 255.0), 128)
        changed += 1
    return changed


def patch_round(
    ct: np.ndarray, centre_kji: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, tuple[slice, ...], tuple[slice, ...], np.ndarray] | None:
    """The patch of ``size`` centred on ``centre_kji`` in the crop ``ct``: (its start, the
    crop's part it covers, that part's place in the patch, the CT patch, filled outside the
    crop as the walk fills it); None where it misses the crop."""
    start = np.round(centre_kji).astype(int) - size // 2
    region = patch_slices(start, size, ct.shape)
    if region is None:
        return None
    crop_part, patch_part = region
    ct_patch = crop_with_fill(ct, start, tuple(size), CT_FILL).astype(np.float32)
    return start, crop_part, patch_part, ct_patch


def _the_vertebra(mask: np.ndarray, old: np.ndarray) -> np.ndarray | None:
    """The piece of ``mask`` that overlaps ``old`` most, if it covers at least
    ``MIN_OVERLAP`` of it; else None (the net found another vertebra, or none)."""
    if not old.any():
        return None
    pieces, n = ndimage.label(mask)
    if n == 0:
        return None
    overlap = np.bincount(pieces[old], minlength=n + 1)
    overlap[0] = 0
    best = int(np.argmax(overlap))
    if overlap[best] < MIN_OVERLAP * int(old.sum()):
        return None
    return pieces == best


def _behind(centre_kji: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The voxels of a (K, J, I) box of ``shape`` behind ``centre_kji`` (its coordinates in
    the box, 1 mm voxels) and within BEHIND_HALF_WIDTH_MM of it left and right."""
    j = np.arange(shape[1])[None, :, None]
    i = np.arange(shape[2])[None, None, :]
    zone = (j > centre_kji[1]) & (np.abs(i - centre_kji[2]) <= BEHIND_HALF_WIDTH_MM)
    return np.broadcast_to(zone, shape)


def _ahead_of(old: np.ndarray) -> np.ndarray:
    """Of the (K, J, I) region ``old`` lies in, the voxels more than ``AHEAD_SLACK_VOXELS``
    ahead of its front-most voxel (j grows backwards)."""
    front = int(np.argwhere(old.any(axis=(0, 2)))[0, 0])
    j = np.arange(old.shape[1])[None, :, None]
    return np.broadcast_to(j < front - AHEAD_SLACK_VOXELS, old.shape)


def _thick_part(mask: np.ndarray) -> np.ndarray:
    """``mask`` opened by the 6-neighbour cross: without the parts one voxel thin (a rim round
    the old outline), with the parts at least two voxels thick whole."""
    return ndimage.binary_opening(mask)
