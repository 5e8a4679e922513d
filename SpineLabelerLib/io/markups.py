"""Vertebra centroids as a Slicer markups point list (``.mrk.json``, schema v1.0.3).

Positions are written in LPS mm and the file says so (``"coordinateSystem": "LPS"``), so
Slicer converts them itself; points are locked so that a click cannot move them by accident.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import ras_to_lps
from SpineLabelerLib.io._files import atomic_path

MARKUPS_SCHEMA_URL = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)
# Slicer's identity orientation (RAS) expressed in LPS.
_LPS_IDENTITY_ORIENTATION = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]


def centroids_markups(centroids_lps: Mapping[int, np.ndarray], name: str = "Vertebrae") -> dict:
    """The markups document: one Fiducial list, one locked point per vertebra, cranial first.

    ``centroids_lps`` maps VerSe label value -> ``(3,)`` LPS mm.
    """
    points = []
    for number, label in enumerate(sorted(centroids_lps), start=1):
        vertebra = anatomy.vertebra(int(label))
        position = np.asarray(centroids_lps[label], float).reshape(3)
        if not np.all(np.isfinite(position)):
            raise ValueError(f"centroid of {vertebra.name} is not finite: {position}")
        points.append(
            {
                "id": str(number),
                "label": vertebra.name,
                "description": f"centroid of {vertebra.name} (VerSe label {vertebra.label})",
                "associatedNodeID": "",
                "position": [round(float(x), 4) for x in position],
                "orientation": _LPS_IDENTITY_ORIENTATION,
                "selected": True,
                "locked": True,
                "visibility": True,
                "positionStatus": "defined",
            }
        )
    markup = {
        "type": "Fiducial",
        "name": name,
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "locked": True,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": len(points),
        "controlPoints": points,
        "measurements": [],
    }
    return {"@schema": MARKUPS_SCHEMA_URL, "markups": [markup]}


def write_centroids_mrk_json(
    path: str | os.PathLike, centroids_lps: Mapping[int, np.ndarray], force: bool = False
) -> Path:
    """Write the centroids (label -> LPS mm) as a Slicer ``.mrk.json`` point list."""
    path = Path(path)
    if not path.name.lower().endswith(".mrk.json"):
        raise ValueError(f"{path}: a Slicer markups file must end with .mrk.json")
    document = centroids_markups(centroids_lps)
    with atomic_path(path, force) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    return path


def read_centroids_mrk_json(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """Read vertebra centroids (label -> ``(3,)`` LPS mm) from a markups file, LPS or RAS.

    Control points are matched to vertebrae by their label ("C1".."L6"); other points
    are ignored, so a list a user edited in Slicer still reads.
    """
    document = json.loads(Path(path).read_text())
    out: dict[int, np.ndarray] = {}
    for markup in document.get("markups", []):
        system = markup.get("coordinateSystem", "LPS")
        for point in markup.get("controlPoints", []):
            if point.get("label") not in anatomy.BY_NAME or "position" not in point:
                continue
            position = np.asarray(point["position"], float)
            out[anatomy.BY_NAME[point["label"]].label] = (
                ras_to_lps(position) if system == "RAS" else position
            )
    return out
