"""Which predicted vertebra lies on which expert vertebra, whatever their names.

The paper's Dice compares masks of the same label, so a column named one level off scores
Dice near 0 although every outline may be right. These measures separate the outline from
the name, on the reference grid (a prediction on another grid is taken onto it by nearest
neighbour, as for the Dice):

- per reference vertebra: recall and precision of the prediction of its own label, its
  *outline Dice*: the Dice with the predicted vertebra covering most of it, whatever its name,
  and the share of it that other predicted vertebrae hold (where two neighbours meet, what a
  better outline alone would not recover);
- per predicted vertebra: the reference label it lies on most (0 where the expert labelled
  nothing: a sacrum, a cut vertebra the expert left out), so that it is named right, named
  wrong, or extra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.evaluation.segmentation import on_reference_grid
from SpineLabelerLib.image import Image


@dataclass(frozen=True)
class OutlineScore:
    """One reference vertebra: ``recall`` (share of it the prediction of its label covers),
    ``precision`` (share of that prediction lying on it; NaN when it was not predicted), and
    the predicted label covering most of it (``outline_label``, None when none touches it)
    with that prediction's Dice against it (``outline_dice``, 0 when none), and the share of it
    the other predicted vertebrae hold (``to_neighbours``)."""

    label: int
    recall: float
    precision: float
    outline_label: int | None
    outline_dice: float
    to_neighbours: float


@dataclass(frozen=True)
class PredictedVertebra:
    """One predicted vertebra: the reference label it lies on most (``covers``; 0 = voxels
    the expert left unlabelled) and the share of its voxels there."""

    label: int
    covers: int
    share: float

    @property
    def extra(self) -> bool:
        return self.covers == 0

    @property
    def named_right(self) -> bool:
        return self.covers == self.label


def pair_counts(pred: Image, ref: Image) -> dict[tuple[int, int], int]:
    """Voxel counts of every (predicted label, reference label) pair on ``ref``'s grid, over
    the voxels where either is non-zero."""
    p = np.asarray(on_reference_grid(pred, ref).array).astype(np.int64, copy=False)
    r = np.asarray(ref.array).astype(np.int64, copy=False)
    either = (p > 0) | (r > 0)
    base = int(r.max(initial=0)) + 1
    codes, counts = np.unique(p[either] * base + r[either], return_counts=True)
    return {(int(c // base), int(c % base)): int(n) for c, n in zip(codes, counts)}


def _totals(pairs: dict[tuple[int, int], int], side: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for key, n in pairs.items():
        out[key[side]] = out.get(key[side], 0) + n
    return out


def outline_scores(pred: Image, ref: Image) -> dict[int, OutlineScore]:
    """:class:`OutlineScore` of every non-zero reference label."""
    pairs = pair_counts(pred, ref)
    pred_n, ref_n = _totals(pairs, 0), _totals(pairs, 1)
    scores = {}
    for r in sorted(label for label in ref_n if label):
        same = pairs.get((r, r), 0)
        covering = {p: n for (p, rr), n in pairs.items() if rr == r and p}
        best = max(covering, key=lambda p: (covering[p], -p)) if covering else None
        outline = 2.0 * covering[best] / (pred_n[best] + ref_n[r]) if best is not None else 0.0
        others = sum(covering.values()) - (covering[best] if best is not None else 0)
        scores[r] = OutlineScore(
            r,
            same / ref_n[r],
            same / pred_n[r] if pred_n.get(r) else math.nan,
            best,
            outline,
            others / ref_n[r],
        )
    return scores


def predicted_matches(pred: Image, ref: Image) -> dict[int, PredictedVertebra]:
    """:class:`PredictedVertebra` of every non-zero predicted label (ties go to the lower
    reference label)."""
    pairs = pair_counts(pred, ref)
    pred_n = _totals(pairs, 0)
    out = {}
    for p in sorted(label for label in pred_n if label):
        lying = {r: n for (pp, r), n in pairs.items() if pp == p}
        covers = max(lying, key=lambda r: (lying[r], -r))
        out[p] = PredictedVertebra(p, covers, lying[covers] / pred_n[p])
    return out
