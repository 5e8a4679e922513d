"""Localization error and identification (Glocker et al. 2012/2013, as METHOD.md states them).

- localization error of a vertebra: Euclidean distance (mm) between its predicted and its
  reference centroid (same label);
- a vertebra is *identified* when its predicted centroid lies within ``max_error_mm``
  (20 mm) of its reference centroid AND the reference centroid closest to the prediction
  is its own;
- the identification rate is taken over the vertebrae of the reference; a reference
  vertebra without a prediction counts as not identified and has no localization error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from SpineLabelerLib.evaluation.centroids import Centroids

ID_MAX_ERROR_MM = 20.0


@dataclass(frozen=True)
class LocalizationScore:
    """One reference vertebra: error (mm, NaN when not predicted) and whether it is identified;
    ``closest_ref_label`` is the reference label nearest the predicted centroid (None if missed)."""

    label: int
    error_mm: float
    identified: bool
    closest_ref_label: int | None


def _check(centroids: Centroids, what: str) -> dict[int, np.ndarray]:
    out = {}
    for label, point in centroids.items():
        p = np.asarray(point, float).reshape(-1)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(
                f"{what} centroid of label {label} is not a finite 3-vector: {point!r}"
            )
        out[int(label)] = p
    return out


def localization_scores(
    pred: Centroids, ref: Centroids, max_error_mm: float = ID_MAX_ERROR_MM
) -> dict[int, LocalizationScore]:
    """Score every reference vertebra; ``pred`` and ``ref`` map VerSe label -> (3,) LPS mm."""
    pred, ref = _check(pred, "predicted"), _check(ref, "reference")
    ref_labels = sorted(ref)
    if not ref_labels:
        return {}
    ref_points = np.stack([ref[label] for label in ref_labels])
    scores = {}
    for label in ref_labels:
        if label not in pred:
            scores[label] = LocalizationScore(label, math.nan, False, None)
            continue
        distances = np.linalg.norm(ref_points - pred[label], axis=1)
        closest = ref_labels[int(np.argmin(distances))]
        error = float(np.linalg.norm(pred[label] - ref[label]))
        # A tie between two reference centroids is not a win for the right one.
        tie = np.sum(np.isclose(distances, distances.min(), rtol=0, atol=1e-9)) > 1
        identified = error <= max_error_mm and closest == label and not tie
        scores[label] = LocalizationScore(label, error, bool(identified), closest)
    return scores


def extra_predictions(pred: Centroids, ref: Centroids) -> list[int]:
    """Predicted labels with no reference vertebra (not part of the rates; reported apart)."""
    return sorted(int(label) for label in pred if int(label) not in {int(r) for r in ref})
