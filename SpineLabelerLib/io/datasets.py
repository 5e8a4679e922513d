"""What the data-set readers share: one case of a labelled CT, and indexing a folder tree."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineLabelerLib.image import Image, index_to_lps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledCase:
    """One case: CT (HU), labels on its grid (VerSe values), centroids label -> LPS mm or None."""

    case_id: str
    ct: Image
    labels: Image
    centroids_lps: dict[int, np.ndarray] | None

    def __iter__(self):  # unpacks as (case_id, ct, labels, centroids_lps)
        return iter((self.case_id, self.ct, self.labels, self.centroids_lps))


def index_files(root: Path) -> dict[str, list[Path]]:
    """File name -> every path under ``root`` with that name (one walk of the tree)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found.setdefault(path.name, []).append(path)
    return found


def pick(paths: list[Path], near: Path) -> Path:
    """Of several same-named files, the one sharing the longest path with ``near``."""

    def shared(p: Path) -> int:
        return sum(1 for a, b in zip(p.parts, near.parts) if a == b)

    return max(paths, key=shared)


def mask_centroids_lps(labels: Image) -> dict[int, np.ndarray]:
    """Centroid (``(3,)`` LPS mm) of every non-zero label value."""
    out = {}
    for label in np.unique(labels.array):
        if label != 0:
            kji = np.argwhere(labels.array == label).mean(axis=0)
            out[int(label)] = index_to_lps(labels, kji[::-1])[0]
    return out


def warn_if_centroids_disagree(
    case_id: str, centroids: Mapping[int, np.ndarray], labels: Image, limit_mm: float = 25.0
) -> float | None:
    """Median distance (mm) between file centroids and mask centroids; logs a warning above
    ``limit_mm`` (a sign of a coordinate-convention mismatch)."""
    from_mask = mask_centroids_lps(labels)
    common = sorted(set(centroids) & set(from_mask))
    if not common:
        return None
    median = float(np.median([np.linalg.norm(centroids[c] - from_mask[c]) for c in common]))
    if median > limit_mm:
        log.warning("%s: centroids lie %.1f mm (median) from the mask's centroids", case_id, median)
    return median
