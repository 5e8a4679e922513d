"""Write the vertebrae as a DICOM Segmentation (highdicom) that lies over its source CT series.

A SEG can go back to PACS next to the CT it came from: it carries the CT's patient,
study and frame of reference, and every frame names the source slice it was drawn on.

BINARY, not LABELMAP: LABELMAP segmentations (DICOM 2024, Supplement 243) are read by
few viewers yet and unknown to older validators; BINARY is what PACS viewers, OHIF and
Slicer's QuantitativeReporting read. One segment per vertebra present, numbered 1..n
cranial to caudal, labelled "C1".."L6", coded and coloured from :mod:`SpineLabelerLib.anatomy`
(the table the .seg.nrrd uses). Frames that hold nothing of a segment are left out, so a
512 x 512 x 800 CT gives a few hundred 32 kB frames, not 25 x 800.

Frames follow the labels' k planes; each plane is matched by position to the source
slice that lies there (the reader stacks slices along their normal, not in file or
instance-number order, and a series may run either way), each frame keeps its slice's own
position, and labels on any other grid are refused rather than written misplaced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from SpineLabelerLib import __version__, anatomy
from SpineLabelerLib.image import Image, lps_to_index
from SpineLabelerLib.io._files import atomic_path
from SpineLabelerLib.io.labelmap import label_array
from SpineLabelerLib.io.segnrrd import present_vertebrae

SOFTWARE = "SpineLabeler"
MANUFACTURER = "SpineLabeler project"
SEG_SERIES_NUMBER = 9001
# In-plane geometry must agree this closely (direction cosines as written with 6 digits,
# mm). A slice may lie off its k plane by up to a quarter voxel: the reader takes slight
# spacing noise (io.dicom_series), and each frame keeps its own slice's position.
_COSINE_TOL, _SPACING_TOL_MM, _POSITION_TOL_VOXELS = 1e-3, 1e-3, 0.25


def read_source_headers(files: Sequence[str | os.PathLike]) -> list[Dataset]:
    """The source series' headers (no pixel data: references need UIDs and geometry only)."""
    return [pydicom.dcmread(str(f), stop_before_pixels=True) for f in files]


def algorithm_identification() -> hd.AlgorithmIdentificationSequence:
    """Who made the segments: SpineLabeler, this version, an AI algorithm (CID 7162)."""
    return hd.AlgorithmIdentificationSequence(
        name=SOFTWARE, family=codes.cid7162.ArtificialIntelligence, version=__version__
    )


def property_category() -> Code:
    """Segmented property category of every vertebra (Anatomical Structure, SCT)."""
    code, scheme, meaning = anatomy.TERMINOLOGY_CATEGORY
    return Code(code, scheme, meaning)


def property_type(vertebra: anatomy.Vertebra) -> Code:
    """The vertebra's SNOMED CT code, as in the .seg.nrrd terminology."""
    return Code(vertebra.snomed_code, "SCT", vertebra.snomed_meaning)


def slices_along_k(labels: Image, source: Sequence[Dataset]) -> list[Dataset]:
    """``source`` ordered as the k planes of ``labels``; ValueError unless every plane is
    exactly one source slice (same orientation, rows, columns, pixel spacing, position)."""
    n_k, n_j, n_i = labels.array.shape
    if len(source) != n_k:
        raise ValueError(f"labels have {n_k} slices, the source series {len(source)} images")
    row_cosines, column_cosines = labels.direction[:, 0], labels.direction[:, 1]
    for ds in source:
        orientation = np.asarray(ds.ImageOrientationPatient, float)
        spacing = np.asarray(ds.PixelSpacing, float)  # (between rows, between columns)
        if (
            (int(ds.Rows), int(ds.Columns)) != (n_j, n_i)
            or not np.allclose(orientation[:3], row_cosines, atol=_COSINE_TOL)
            or not np.allclose(orientation[3:], column_cosines, atol=_COSINE_TOL)
            or not np.allclose(spacing[::-1], labels.spacing_mm[:2], atol=_SPACING_TOL_MM)
        ):
            raise ValueError(
                f"source image {ds.SOPInstanceUID} does not lie on the labels' grid "
                "(rows, columns, orientation or pixel spacing differ)"
            )
    positions = np.array([np.asarray(ds.ImagePositionPatient, float) for ds in source])
    ijk = lps_to_index(labels, positions)  # slice k of the grid lies at (0, 0, k)
    k = np.round(ijk[:, 2]).astype(int)
    off_plane = np.abs(ijk - np.column_stack([0 * k, 0 * k, k])).max()
    if off_plane > _POSITION_TOL_VOXELS or sorted(k) != list(range(n_k)):
        raise ValueError("the source images' positions are not the labels' slice positions")
    order = np.argsort(k)
    return [source[n] for n in order]


def build_segmentation(labels: Image, source: Sequence[Dataset]) -> hd.seg.Segmentation:
    """A BINARY DICOM SEG of ``labels`` (VerSe values, on the source series' grid) that
    references ``source`` (the series' headers, any order)."""
    vertebrae = present_vertebrae(labels)
    if not vertebrae:
        raise ValueError("no vertebra in the labels; a DICOM SEG needs at least one segment")
    ordered = slices_along_k(labels, source)
    segment_of_label = np.zeros(anatomy.MAX_LABEL + 1, np.uint8)
    for number, vertebra in enumerate(vertebrae, start=1):
        segment_of_label[vertebra.label] = number
    segment_numbers = segment_of_label[label_array(labels)]  # (K, J, I), 0 = background
    algorithm = algorithm_identification()
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=vertebra.name,
            segmented_property_category=property_category(),
            segmented_property_type=property_type(vertebra),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_id=vertebra.name,
            tracking_uid=hd.UID(),
            display_color=hd.color.CIELabColor.from_rgb(*vertebra.color_rgb),
        )
        for number, vertebra in enumerate(vertebrae, start=1)
    ]
    return hd.seg.Segmentation(
        source_images=ordered,
        pixel_array=segment_numbers,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=SOFTWARE,
        software_versions=__version__,
        device_serial_number=__version__,  # required; software has none: the version
        content_label="VERTEBRAE",
        content_description="Vertebrae C1-L6 segmented and named by SpineLabeler",
        series_description="SpineLabeler vertebrae",
        omit_empty_frames=True,
    )


def write_dicom_seg(
    path: str | os.PathLike, labels: Image, source: Sequence[Dataset], force: bool = False
) -> Path:
    """Write ``labels`` (VerSe values, the CT's grid) as a DICOM SEG over the source
    series (its headers, :func:`read_source_headers`)."""
    segmentation = build_segmentation(labels, source)
    with atomic_path(path, force) as tmp:
        segmentation.save_as(tmp)
    return Path(path)
