"""Write an :class:`Image` as a DICOM CT series (one file per slice), for tests.

The files are a complete CT Image IOD (``dciodvfy`` finds no error in them), so the
readers and the DICOM SEG/SR writers are tested on what a scanner would send. Options
make the faults of real series: slices dropped, uneven spacing, a tilted gantry.

Geometry: slice ``k`` of the image becomes the file with InstanceNumber ``k + 1`` at
ImagePositionPatient = the LPS centre of voxel ``(0, 0, k)``; ImageOrientationPatient holds
the direction's first two columns (row = index axis i, column = index axis j), and
PixelSpacing is (row spacing = spacing j, column spacing = spacing i).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from SpineLabelerLib.image import Image, index_to_lps

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"  # pydicom's root, as generate_uid uses


def _ds_number(value: float) -> str:
    """A DS value (at most 16 characters) that keeps as many digits as fit."""
    for digits in range(10, 0, -1):
        text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
        if len(text) <= 16:
            return "0" if text in ("-0", "") else text
    raise ValueError(f"{value} does not fit a DICOM DS")


def _tilted(column: np.ndarray, row: np.ndarray, tilt_deg: float) -> np.ndarray:
    """``column`` turned by ``tilt_deg`` about ``row`` (how a gantry tilt turns the slice)."""
    t = np.radians(tilt_deg)
    return column * np.cos(t) + np.cross(row, column) * np.sin(t)


def write_ct_series(
    image: Image,
    folder: Path,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_description: str = "CT",
    series_number: int = 1,
    drop_slices: Sequence[int] = (),
    gantry_tilt_deg: float = 0.0,
    spacing_jitter: Mapping[int, float] | None = None,
    rescale_intercept: float = -1024.0,
) -> list[Path]:
    """Write ``image`` (HU, integer values) as one CT series in ``folder``; returns the files.

    ``drop_slices``: k indices left out (a series with slices missing). ``spacing_jitter``:
    {k: mm} moved along the stack axis (uneven spacing). ``gantry_tilt_deg``: the slice
    planes turn about the row axis by this angle while the slices still step along the
    image's k axis (a sheared stack, as a tilted gantry gives); GantryDetectorTilt says so.
    Files are named after the series so that several series can share a folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    row, column = image.direction[:, 0], image.direction[:, 1]
    column = _tilted(column, row, gantry_tilt_deg)
    orientation = [_ds_number(v) for v in (*row, *column)]
    stored = np.round(image.array.astype(np.float64) - rescale_intercept)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("HU values do not fit int16 with this rescale intercept")
    stored = stored.astype(np.int16)
    stem = hashlib.sha1(series_uid.encode()).hexdigest()[:8]
    jitter = dict(spacing_jitter or {})
    paths = []
    for k in range(image.array.shape[0]):
        if k in drop_slices:
            continue
        position = index_to_lps(image, [0.0, 0.0, k + jitter.get(k, 0.0) / image.spacing_mm[2]])[0]
        ds = _slice_dataset(image, stored[k], k)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.SeriesDescription = series_description
        ds.SeriesNumber = series_number
        ds.ImageOrientationPatient = orientation
        ds.ImagePositionPatient = [_ds_number(v) for v in position]
        ds.GantryDetectorTilt = _ds_number(gantry_tilt_deg)
        ds.RescaleIntercept = _ds_number(rescale_intercept)
        path = folder / f"{stem}_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _slice_dataset(image: Image, pixels: np.ndarray, k: int) -> pydicom.Dataset:
    """The modules of a CT Image IOD that do not depend on the series' options."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "CT"
    ds.Manufacturer = "SpineLabeler tests"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "Phantom^Spine"
    ds.PatientID = "PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyID = "1"
    ds.BodyPartExamined = "SPINE"
    ds.PatientPosition = "HFS"
    ds.PositionReferenceIndicator = ""
    ds.KVP = "120"
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = k + 1
    ds.SliceThickness = _ds_number(image.spacing_mm[2])
    ds.PixelSpacing = [_ds_number(image.spacing_mm[1]), _ds_number(image.spacing_mm[0])]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = np.ascontiguousarray(pixels, "<i2").tobytes()
    return ds
