"""Write the standard result folder of ``spinelabeler segment`` (docs/ARCHITECTURE.md).

Everything is written into a hidden temporary folder beside ``out_dir`` first and moved
into place only when every file is complete, so an error leaves nothing half-written.
The DICOM objects (SEG, centroid SR) reference the CT series the labels were drawn on,
so they are written only when that series' headers are given; highdicom is imported then.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from SpineLabelerLib.image import Image
from SpineLabelerLib.io._files import refuse_existing
from SpineLabelerLib.io.centroids import write_verse_centroids
from SpineLabelerLib.io.labelmap import write_labelmap
from SpineLabelerLib.io.markups import write_centroids_mrk_json
from SpineLabelerLib.io.overview import write_overview_png
from SpineLabelerLib.io.segnrrd import present_vertebrae, write_seg_nrrd
from SpineLabelerLib.io.surfaces import write_vertebra_surfaces

if TYPE_CHECKING:  # pydicom is imported when a DICOM output is written
    from pydicom.dataset import Dataset

# format name -> file (or folder) name inside the result folder
RESULT_FILES: dict[str, str] = {
    "nifti": "labels.nii.gz",
    "nrrd": "labels.nrrd",
    "seg": "segmentation.seg.nrrd",
    "markups": "centroids.mrk.json",
    "centroids": "centroids.json",
    "surfaces": "surfaces",
    "overview": "overview.png",
    "report": "report.json",
    "dicom_seg": "segmentation.dcm",
    "dicom_sr": "centroids.sr.dcm",
}
# Written only for a DICOM series input: they reference its images.
DICOM_FORMATS: tuple[str, ...] = ("dicom_seg", "dicom_sr")
# What every input gets by default.
ALL_FORMATS: tuple[str, ...] = tuple(f for f in RESULT_FILES if f not in DICOM_FORMATS)


def vertebra_report(labels: Image, centroids_lps: Mapping[int, np.ndarray]) -> list[dict]:
    """Per vertebra present: label, name, region, volume_ml and centroid_lps (mm)."""
    voxel_ml = float(np.prod(labels.spacing_mm)) / 1000.0
    out = []
    for v in present_vertebrae(labels):
        centroid = centroids_lps.get(v.label)
        out.append(
            {
                "label": v.label,
                "name": v.name,
                "region": v.region,
                "volume_ml": round(int(np.count_nonzero(labels.array == v.label)) * voxel_ml, 3),
                "centroid_lps": None
                if centroid is None
                else [round(float(c), 3) for c in centroid],
            }
        )
    return out


def build_report(
    labels: Image, centroids_lps: Mapping[int, np.ndarray], extra_report: Mapping | None
) -> dict:
    """report.json content; ``extra_report`` adds top-level keys (timings, device, ...), and
    its "vertebrae" list (dicts with "label", e.g. partial, confidence) is merged per label."""
    report: dict = {"vertebrae": vertebra_report(labels, centroids_lps)}
    extra = dict(extra_report or {})
    per_label = {int(e["label"]): e for e in extra.pop("vertebrae", []) if "label" in e}
    for entry in report["vertebrae"]:
        entry.update({k: v for k, v in per_label.get(entry["label"], {}).items() if k != "label"})
    report.update(extra)
    return report


def _write_all(
    folder: Path,
    ct: Image,
    labels: Image,
    centroids_lps: Mapping[int, np.ndarray],
    formats: Iterable[str],
    extra_report: Mapping | None,
    dicom_headers: Sequence[Dataset],
) -> None:
    def dicom_seg(path: Path) -> None:
        from SpineLabelerLib.io.dicom_seg import write_dicom_seg

        write_dicom_seg(path, labels, dicom_headers)

    def dicom_sr(path: Path) -> None:
        from SpineLabelerLib.io.dicom_sr import write_centroid_sr

        write_centroid_sr(path, centroids_lps, dicom_headers)

    writers = {
        "nifti": lambda p: write_labelmap(p, labels),
        "nrrd": lambda p: write_labelmap(p, labels),
        "seg": lambda p: write_seg_nrrd(p, labels),
        "markups": lambda p: write_centroids_mrk_json(p, centroids_lps),
        "centroids": lambda p: write_verse_centroids(p, centroids_lps),
        "surfaces": lambda p: write_vertebra_surfaces(p, labels),
        "overview": lambda p: write_overview_png(
            p, ct, labels, centroids_lps, notes=(extra_report or {}).get("messages", ())
        ),
        "report": lambda p: p.write_text(
            json.dumps(build_report(labels, centroids_lps, extra_report), indent=2) + "\n"
        ),
        "dicom_seg": dicom_seg,
        "dicom_sr": dicom_sr,
    }
    for name in formats:
        writers[name](folder / RESULT_FILES[name])


def write_result_files(
    out_dir: str | os.PathLike,
    ct: Image,
    labels: Image,
    centroids_lps: Mapping[int, np.ndarray],
    formats: Iterable[str] = ALL_FORMATS,
    force: bool = False,
    extra_report: Mapping | None = None,
    dicom_headers: Sequence[Dataset] = (),
) -> dict[str, Path]:
    """Write the chosen ``formats`` (keys of RESULT_FILES) into ``out_dir``; returns
    format -> written path. ``labels`` lie on ``ct``'s grid (VerSe values); centroids are
    VerSe label -> ``(3,)`` LPS mm. Existing targets are refused (FileExistsError) before
    anything is written, unless ``force``. ``dicom_headers``: the headers of the DICOM series
    ``ct`` was read from (io.dicom_seg.read_source_headers), required by DICOM_FORMATS.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in RESULT_FILES]
    if unknown:
        raise ValueError(f"unknown result formats {unknown}; choose from {', '.join(RESULT_FILES)}")
    if not dicom_headers and any(f in DICOM_FORMATS for f in formats):
        raise ValueError("DICOM outputs reference the source series: pass its headers")
    if not labels.same_grid(ct):
        raise ValueError("labels must lie on the CT's grid (same size, spacing, origin, direction)")
    out_dir = Path(out_dir)
    targets = {f: out_dir / RESULT_FILES[f] for f in formats}
    for fmt, target in targets.items():
        if fmt == "surfaces":
            for v in present_vertebrae(labels):
                refuse_existing(target / f"{v.name}.stl", force)
        else:
            refuse_existing(target, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_all(staging, ct, labels, centroids_lps, formats, extra_report, dicom_headers)
        for fmt, target in targets.items():
            if fmt == "surfaces":
                target.mkdir(exist_ok=True)
                for stl in sorted((staging / RESULT_FILES[fmt]).glob("*.stl")):
                    os.replace(stl, target / stl.name)
            else:
                os.replace(staging / RESULT_FILES[fmt], target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets


__all__ = ["ALL_FORMATS", "DICOM_FORMATS", "RESULT_FILES", "build_report", "write_result_files"]
