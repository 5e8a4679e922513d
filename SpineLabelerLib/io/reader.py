"""Read a CT (NIfTI, NRRD, MetaImage or a DICOM folder) or a labelmap into an :class:`Image`.

SimpleITK does the reading, so every format lands in LPS millimetres with its full
direction cosines (oblique and flipped axes are kept as they are, never "fixed").
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Union

import numpy as np
import SimpleITK as sitk

from SpineLabelerLib.image import Image, from_sitk, resample_onto
from SpineLabelerLib.io.checks import CTInputError, check_ct_values, check_layout
from SpineLabelerLib.io.dicom_series import DicomSeries, check_series, find_series, pick_series
from SpineLabelerLib.io.integrity import check_complete
from SpineLabelerLib.io.nifti_raw import nonfinite_count

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".ima")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _read_dicom(
    folder: Path,
    notes: list[str] | None,
    series_uid: str | None,
    only_file: Path | None = None,
) -> tuple[sitk.Image, DicomSeries]:
    """Read one checked series of a DICOM folder: ``series_uid``, else the one holding
    ``only_file``, else the CT series with the most slices; with the series read."""
    damaged: list[str] = []
    found = find_series(folder, damaged)
    if only_file is not None and series_uid is None:
        holding = [s for s in found if any(f.samefile(only_file) for f in s.files)]
        series_uid = holding[0].uid if holding else None
    series = pick_series(found, folder, series_uid, notes, damaged)
    check_series(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in series.files])
    try:
        return reader.Execute(), series
    except RuntimeError as err:
        raise CTInputError(
            f"{folder}: cannot read DICOM series {series.uid}: {_first_line(err)}"
        ) from None


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def read_sitk(
    path: PathLike, notes: list[str] | None = None, series_uid: str | None = None
) -> sitk.Image:
    """Read any supported volume file or DICOM folder as a SimpleITK image (LPS); its values
    are unchecked, but a file cut short or a DICOM series off a regular grid is refused.

    ``notes`` (if given; else it is logged) collects what the user should know, e.g. which
    DICOM series of several was used; ``series_uid`` chooses the series of a DICOM folder.
    """
    path = Path(path)
    if not path.exists():
        raise CTInputError(f"{path}: no such file or folder")
    suffix = _suffix(path)
    if path.is_dir() or suffix in DICOM_SUFFIXES:
        folder, only_file = _dicom_folder(path)
        return _read_dicom(folder, notes, series_uid, only_file)[0]
    if series_uid is not None:
        raise CTInputError(f"{path}: a series UID chooses a series of a DICOM folder, not a file")
    if suffix not in VOLUME_SUFFIXES:
        raise CTInputError(
            f"{path}: unsupported file type {suffix or '(none)'}; expected one of "
            f"{', '.join(VOLUME_SUFFIXES)} or a folder of DICOM slices"
        )
    check_complete(path)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise CTInputError(
            f"{path}: cannot read this file (corrupt or truncated?): {_first_line(err)}"
        ) from None
    # A 4D NIfTI/NRRD whose 4th axis has one sample is a 3D volume.
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = sitk.Extract(img, list(img.GetSize()[:3]) + [0], [0, 0, 0, 0])
    return img


def _dicom_folder(path: Path) -> tuple[Path, Path | None]:
    """(folder, the one file given or None) of a DICOM folder or file."""
    return (path, None) if path.is_dir() else (path.parent, path)


def read_ct(path: PathLike, notes: list[str] | None = None, series_uid: str | None = None) -> Image:
    """Read and check a CT; array ``(K, J, I)`` in HU (dtype as stored), geometry in LPS mm.

    Raises :class:`CTInputError` with what was seen when the input cannot be a CT.
    """
    return _checked_ct(read_sitk(path, notes, series_uid), path)


def read_dicom_ct(
    path: PathLike, notes: list[str] | None = None, series_uid: str | None = None
) -> tuple[Image, DicomSeries]:
    """:func:`read_ct` of a DICOM folder or file, with the series it read: the DICOM outputs
    reference that series, and its headers need not be looked for a second time."""
    path = Path(path)
    if not path.exists():
        raise CTInputError(f"{path}: no such file or folder")
    folder, only_file = _dicom_folder(path)
    img, series = _read_dicom(folder, notes, series_uid, only_file)
    return _checked_ct(img, path), series


def _checked_ct(img: sitk.Image, path: PathLike) -> Image:
    """``img`` as an :class:`Image` once it has passed the checks a CT must pass."""
    check_layout(img.GetSize(), img.GetSpacing(), img.GetNumberOfComponentsPerPixel(), str(path))
    if _suffix(Path(path)) in (".nii", ".nii.gz"):
        bad = nonfinite_count(path)  # ITK has already replaced them by 0
        if bad:
            raise CTInputError(f"{path}: {bad} voxels are NaN or infinite")
    image = from_sitk(img)
    check_ct_values(image.array, str(path))
    return image


def read_labelmap(path: PathLike, reference: Image | None = None) -> Image:
    """Read a labelmap (VerSe values) as an integer :class:`Image`.

    With ``reference`` (usually the CT) the result lies on the reference's grid: a grid
    equal within 1e-4 mm takes the reference's exact geometry; another grid is resampled
    onto it by nearest neighbour (a warning is logged).
    """
    img = read_sitk(path)
    check_layout(img.GetSize(), img.GetSpacing(), img.GetNumberOfComponentsPerPixel(), str(path))
    image = from_sitk(img)
    image = image.with_array(_as_label_array(image.array, str(path)))
    if reference is None:
        return image
    if image.same_grid(reference):
        return reference.with_array(image.array)
    log.warning("%s: labelmap grid differs from the reference grid; resampled (nearest)", path)
    return resample_onto(image, reference, nearest=True)


def _as_label_array(array: np.ndarray, source: str) -> np.ndarray:
    """Labels as the smallest unsigned integer type; refuse negative or fractional values."""
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise CTInputError(
                f"{source}: a labelmap must hold whole numbers; found fractions or NaN"
            )
    low, high = float(array.min()), float(array.max())
    if low < 0:
        raise CTInputError(f"{source}: a labelmap cannot hold negative values (lowest {low:g})")
    dtype = np.uint8 if high <= 255 else np.uint16 if high <= 65535 else np.uint32
    return array.astype(dtype, copy=False)
