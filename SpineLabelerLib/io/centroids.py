"""Vertebra centroids as VerSe-style JSON, ours in LPS mm, and the real VerSe files.

Our file (``centroids.json``)::

    [{"direction": ["L", "P", "S"], "coordinates": "LPS mm"},
     {"label": 20, "X": 12.3, "Y": -40.1, "Z": 310.0}, ...]

X, Y, Z are LPS millimetres (patient coordinates, as ITK/DICOM), *not* voxels. The extra
"coordinates" key tells this apart from the VerSe release files (``*_ctd.json``), whose
X, Y, Z are voxel indices of the image reoriented (axes permuted and flipped, never
resampled) so that its axes point towards the letters of ``direction`` (e.g. P, I, R),
in that image's own voxel units; reading those needs the image they belong to.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, index_to_lps, orientation_code
from SpineLabelerLib.io._files import atomic_path

LPS_MM = "LPS mm"
_OPPOSITE = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}


def write_verse_centroids(
    path: str | os.PathLike, centroids_lps: Mapping[int, np.ndarray], force: bool = False
) -> Path:
    """Write centroids (VerSe label -> ``(3,)`` LPS mm) as VerSe-style JSON in LPS mm."""
    entries: list[dict] = [{"direction": ["L", "P", "S"], "coordinates": LPS_MM}]
    for label in sorted(centroids_lps):
        anatomy.vertebra(int(label))  # refuse unknown labels
        x, y, z = (round(float(v), 4) for v in np.asarray(centroids_lps[label], float).reshape(3))
        entries.append({"label": int(label), "X": x, "Y": y, "Z": z})
    with atomic_path(path, force) as tmp:
        tmp.write_text(json.dumps(entries, indent=1) + "\n")
    return Path(path)


def read_verse_centroids(
    path: str | os.PathLike, reference: Image | None = None
) -> dict[int, np.ndarray]:
    """Centroids (VerSe label -> ``(3,)`` LPS mm) from our JSON or from a VerSe ``_ctd.json``.

    A VerSe file holds voxel coordinates, so ``reference`` (the CT or mask it belongs to)
    is required for it. Entries with NaN (VerSe's "not annotated") are skipped.
    """
    entries = json.loads(Path(path).read_text())
    if isinstance(entries, dict) and "vertebralCentroids" in entries:
        entries = entries["vertebralCentroids"]
    header = next((e for e in entries if "direction" in e), None)
    points = {
        int(e["label"]): np.array([e["X"], e["Y"], e["Z"]], float)
        for e in entries
        if "label" in e and not any(_is_nan(e.get(k)) for k in ("X", "Y", "Z"))
    }
    if header is not None and header.get("coordinates") == LPS_MM:
        return points
    if header is None:
        raise ValueError(f"{path}: no {{'direction': [...]}} entry; not a VerSe centroid file")
    if reference is None:
        raise ValueError(
            f"{path}: VerSe centroids are voxel coordinates (direction {header['direction']}); "
            "pass the image they belong to as reference"
        )
    return {
        label: verse_voxel_to_lps(p, header["direction"], reference) for label, p in points.items()
    }


def _is_nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == "nan"


def verse_voxel_to_lps(point: np.ndarray, direction: list[str], reference: Image) -> np.ndarray:
    """One VerSe voxel coordinate (axes towards ``direction`` letters) to LPS mm on ``reference``.

    The reference's own axes point towards the letters of its orientation code; each
    VerSe axis is one of them, maybe reversed (index ``n - 1 - x`` on an axis of ``n`` voxels).
    """
    own = orientation_code(reference)
    ijk = np.zeros(3)
    for axis, letter in enumerate(direction):
        letter = str(letter).upper()
        if letter in own:
            ijk[own.index(letter)] = point[axis]
        elif _OPPOSITE[letter] in own:
            c = own.index(_OPPOSITE[letter])
            ijk[c] = reference.size_ijk[c] - 1 - point[axis]
        else:
            raise ValueError(f"VerSe direction {direction} does not match image orientation {own}")
    return index_to_lps(reference, ijk)[0]
