"""The DICOM series of a folder: find them, choose the one to read, check its slice geometry.

Only headers are read (pydicom, ``stop_before_pixels``), so listing a folder of a thousand
slices takes a second. SimpleITK later reads the chosen files in the order given here and
puts voxel ``k`` at slice ``k``'s position, assuming the slices form a regular stack; the
geometry checks refuse the series where that would be a silently wrong grid (a slice
missing, uneven spacing, a tilted gantry, mixed orientations, two slices at one place).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pydicom.misc
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from SpineLabelerLib.io.checks import CTInputError
from SpineLabelerLib.io.integrity import dicom_pixel_problem

log = logging.getLogger(__name__)

ORIENTATION_TOL = 1e-3  # direction cosines written with 6 digits still agree
SHEAR_TOL_PIXELS = 0.1  # a slice off the stack's normal by this much of a pixel is sheared
SPACING_TOL = 0.1  # a slice this much of a gap off the even grid is misplaced


@dataclass(frozen=True)
class SliceHeader:
    """What one file says about where its slice lies (LPS mm) and whether its pixels are whole."""

    path: Path
    instance_number: int | None
    position_lps: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None  # row then column direction cosines (LPS)
    pixel_spacing_mm: tuple[float, float] | None  # (between rows, between columns)
    gantry_tilt_deg: float
    pixel_problem: str | None  # why the pixel data cannot be whole; None when it can


@dataclass(frozen=True)
class DicomSeries:
    """One series of a folder. ``files`` are in the order of the volume's slices (k = 0 first):
    along the slice normal, in the direction of increasing InstanceNumber."""

    uid: str
    files: tuple[Path, ...]
    description: str
    modality: str
    study_uid: str
    frame_of_reference_uid: str
    slices: tuple[SliceHeader, ...] = field(default=(), repr=False, compare=False)

    def label(self) -> str:
        """``UID (N slices, 'description')``, how messages name a series."""
        return f"{self.uid} ({len(self.files)} slices, {self.modality} {self.description!r})"


def _read_header(path: Path) -> tuple[pydicom.Dataset, str | None] | None:
    """The header of a DICOM file and why its pixels cannot be whole (None when they can);
    None for a file that is not DICOM. Refuses a file whose header is cut short."""
    with open(path, "rb") as fp:
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            return None
        except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on a damaged header
            raise CTInputError(
                f"{path}: a damaged DICOM file (its header cannot be read: {err})"
            ) from None
        pixel_offset = fp.tell()
    if "SeriesInstanceUID" not in ds:
        raise CTInputError(
            f"{path}: a damaged DICOM file (the header ends after {pixel_offset} bytes, before "
            "its series UID): a truncated copy?"
        )
    return ds, dicom_pixel_problem(path, ds, pixel_offset)


def _floats(ds: pydicom.Dataset, keyword: str) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return tuple(float(v) for v in values)


def _slice_header(path: Path, ds: pydicom.Dataset, pixel_problem: str | None) -> SliceHeader:
    number = ds.get("InstanceNumber")
    tilt = _floats(ds, "GantryDetectorTilt") or (0.0,)
    return SliceHeader(
        path=path,
        instance_number=int(number) if number not in (None, "") else None,
        position_lps=_floats(ds, "ImagePositionPatient"),
        orientation=_floats(ds, "ImageOrientationPatient"),
        pixel_spacing_mm=_floats(ds, "PixelSpacing"),
        gantry_tilt_deg=float(tilt[0]),
        pixel_problem=pixel_problem,
    )


def _stack_order(slices: list[SliceHeader]) -> list[SliceHeader]:
    """Slices along the normal of the first one's orientation, reversed where the
    InstanceNumbers run against it; in InstanceNumber order where positions are missing."""
    by_number = sorted(slices, key=lambda s: (s.instance_number or 0, str(s.path)))
    if any(s.position_lps is None or s.orientation is None for s in slices):
        return by_number
    normal = slice_normal(slices[0].orientation)
    ordered = sorted(by_number, key=lambda s: float(np.dot(s.position_lps, normal)))
    numbers = [s.instance_number for s in ordered]
    if None not in numbers and len(numbers) > 1 and numbers[0] > numbers[-1]:
        ordered.reverse()
    return ordered


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit normal (LPS) of a slice: row direction x column direction."""
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:6])
    normal = np.cross(row, column)
    return normal / np.linalg.norm(normal)


def top_level_dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files directly in ``folder`` (by their preamble; DICOMDIR and hidden files
    aside): a folder that holds them is a series, not a batch of its sub-folders."""
    return [
        path
        for path in sorted(Path(folder).iterdir())
        if path.is_file()
        and not path.name.startswith(".")
        and path.name.upper() != "DICOMDIR"
        and pydicom.misc.is_dicom(path)
    ]


def find_series(folder: str | os.PathLike, damaged: list[str] | None = None) -> list[DicomSeries]:
    """Every DICOM series in ``folder`` and its sub-folders, the most slices first.

    Files that are not DICOM are passed over. A DICOM file whose header is cut short belongs
    to a series that cannot be told, so that series may not be whole: it is refused
    (:class:`CTInputError`), or, with a ``damaged`` list, passed over and described there
    (:func:`pick_series` then reads only a series the user names).
    """
    groups: dict[str, list[tuple[Path, pydicom.Dataset, str | None]]] = {}
    for root, _dirs, names in os.walk(folder):
        for name in sorted(names):
            path = Path(root) / name
            if name.upper() == "DICOMDIR":
                continue
            try:
                header = _read_header(path)
            except CTInputError as err:
                if damaged is None:
                    raise
                damaged.append(str(err))
                continue
            if header is not None:
                groups.setdefault(str(header[0].SeriesInstanceUID), []).append((path, *header))
    series = []
    for uid, members in groups.items():
        first = members[0][1]
        slices = _stack_order([_slice_header(*member) for member in members])
        series.append(
            DicomSeries(
                uid=uid,
                files=tuple(s.path for s in slices),
                description=str(first.get("SeriesDescription", "")),
                modality=str(first.get("Modality", "")),
                study_uid=str(first.get("StudyInstanceUID", "")),
                frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
                slices=tuple(slices),
            )
        )
    return sorted(series, key=lambda s: (-len(s.files), s.uid))


def _listing(series: list[DicomSeries]) -> str:
    return "; ".join(s.label() for s in series)


def choose_series(
    folder: str | os.PathLike, series_uid: str | None = None, notes: list[str] | None = None
) -> DicomSeries:
    """The series to read: ``series_uid`` if given, else the CT series with the most slices.

    A note (appended to ``notes``, else logged) says which series was used when there are
    several. Raises :class:`CTInputError` when the folder holds no series, no CT series, or
    no series ``series_uid`` (the message lists those present), or a damaged DICOM file and
    no ``series_uid``.
    """
    damaged: list[str] = []
    return pick_series(find_series(folder, damaged), folder, series_uid, notes, damaged)


def pick_series(
    found: list[DicomSeries],
    folder: str | os.PathLike,
    series_uid: str | None = None,
    notes: list[str] | None = None,
    damaged: Sequence[str] = (),
) -> DicomSeries:
    """:func:`choose_series` on the series :func:`find_series` found in ``folder`` (with the
    ``damaged`` files it passed over: then only a series named by ``series_uid`` is read, since
    any other choice might be the series a damaged file belonged to, read without it)."""
    if damaged and (series_uid is None or not found):
        more = f" (and {len(damaged) - 1} more damaged files)" if len(damaged) > 1 else ""
        readable = f"; the folder's readable series: {_listing(found)}" if found else ""
        raise CTInputError(
            f"{damaged[0]}{more}; which series it belonged to cannot be told, so a series "
            f"read from this folder might miss a slice{readable}. Name one with --series UID "
            "to read it anyway (a slice missing inside it is still refused)"
        )
    if not found:
        raise CTInputError(f"{folder}: no DICOM series found in this folder")
    if series_uid is not None:
        matching = [s for s in found if s.uid == series_uid]
        if not matching:
            raise CTInputError(
                f"{folder}: no DICOM series {series_uid}; the folder holds: {_listing(found)}"
            )
        chosen, why = matching[0], "as asked"
        if damaged:
            _note(
                notes,
                f"{folder}: {len(damaged)} damaged DICOM file(s) passed over ({damaged[0]}); "
                f"read series {series_uid} as asked (a slice missing inside it is refused; if a "
                "damaged file was its first or last slice, the volume ends one slice early)",
            )
    else:
        ct = [s for s in found if s.modality.upper() == "CT"]
        if not ct:
            raise CTInputError(f"{folder}: no CT series; the folder holds: {_listing(found)}")
        chosen, why = ct[0], "the CT series with the most slices; choose another with --series UID"
    if len(found) > 1:
        _note(
            notes,
            f"{folder}: {len(found)} DICOM series; using {chosen.label()} ({why}); not used: "
            f"{_listing([s for s in found if s is not chosen])}",
        )
    return chosen


def _note(notes: list[str] | None, note: str) -> None:
    if notes is not None:
        notes.append(note)
    else:
        log.warning(note)


def check_series(series: DicomSeries) -> None:
    """Refuse a series that SimpleITK would put on a wrong grid, or whose pixels are cut short.

    Raises :class:`CTInputError` naming what is wrong: a damaged slice, mixed orientations,
    a tilted gantry (sheared stack), two slices at one position, a slice missing (naming the
    position and the instance numbers around it) or uneven spacing (the gaps seen).
    """
    slices = list(series.slices)
    for s in slices:
        if s.pixel_problem:
            raise CTInputError(f"{s.path}: {s.pixel_problem}")
    if len(slices) < 2 or any(s.position_lps is None or s.orientation is None for s in slices):
        return  # one file (maybe multi-frame) or no geometry: SimpleITK's own reading decides
    _check_orientations(series.uid, slices)
    normal = slice_normal(slices[0].orientation)
    positions = np.array([s.position_lps for s in slices])
    along = positions @ normal
    _check_shear(series.uid, slices, positions, along, normal)
    _check_spacing(series.uid, slices, along)


def _check_orientations(uid: str, slices: list[SliceHeader]) -> None:
    first = np.asarray(slices[0].orientation)
    odd = [s for s in slices if np.abs(np.asarray(s.orientation) - first).max() > ORIENTATION_TOL]
    if odd:
        seen = Counter(tuple(round(v, 3) for v in s.orientation) for s in slices)
        kinds = "; ".join(f"{n} slices at {list(o)}" for o, n in seen.most_common())
        raise CTInputError(
            f"series {uid}: its slices lie in different orientations ({kinds}); "
            "a volume needs one orientation (a localizer mixed in?)"
        )


def _check_shear(
    uid: str, slices: list[SliceHeader], positions: np.ndarray, along: np.ndarray, normal
) -> None:
    """Positions must step along the slice normal; a tilted gantry steps along the table."""
    offsets = positions - positions[0] - np.outer(along - along[0], normal)
    drift = float(np.linalg.norm(offsets, axis=1).max())
    pixel = min(slices[0].pixel_spacing_mm or (1.0,))
    if drift <= SHEAR_TOL_PIXELS * pixel:
        return
    span = float(abs(along[-1] - along[0])) or 1.0
    tilt = max((abs(s.gantry_tilt_deg) for s in slices), default=0.0)
    said = f"gantry tilt {tilt:g} deg; " if tilt else ""
    angle = np.degrees(np.arctan2(drift, span))
    raise CTInputError(
        f"series {uid}: a tilted gantry ({said}the slices step {angle:.1f} "
        f"deg off their normal, a sheared stack {drift:.1f} mm off over {span:.0f} mm); "
        "read on a regular grid it would be distorted. Resample it onto an orthogonal grid "
        "first (dcm2niix or 3D Slicer's DICOM import correct gantry tilt)"
    )


def _check_spacing(uid: str, slices: list[SliceHeader], along: np.ndarray) -> None:
    """Even gaps along the normal; a slice missing is one gap about twice the others."""
    gaps = np.abs(np.diff(along))
    names = [s.instance_number if s.instance_number is not None else s.path.name for s in slices]
    for n, gap in enumerate(gaps):
        if gap < 1e-3:
            raise CTInputError(
                f"series {uid}: slices {names[n]} and {names[n + 1]} (instance numbers) lie at "
                f"the same position ({along[n]:.2f} mm along the normal); two acquisitions in "
                "one series? Choose one with --series or separate them"
            )
    step = float(np.median(gaps))
    # SimpleITK spaces the slices evenly between the first and the last one.
    grid = np.linspace(along[0], along[-1], len(along))
    if np.abs(along - grid).max() <= SPACING_TOL * step:
        return
    multiples = gaps / step
    missing = np.flatnonzero(np.abs(multiples - np.round(multiples)) <= SPACING_TOL)
    missing = [n for n in missing if round(multiples[n]) >= 2]
    uneven = np.abs(gaps - step) > SPACING_TOL * step
    if missing and uneven.sum() == len(missing):
        where = "; ".join(_gap_text(n, gaps, along, names, step) for n in missing)
        raise CTInputError(
            f"series {uid}: slices missing ({where}"
            f"; the others are {step:g} mm apart); read as an even stack, every slice past the "
            "gap would be misplaced. Copy the missing files"
        )
    seen = Counter(round(float(g), 2) for g in gaps)
    spacings = ", ".join(f"{g:g} mm ({n}x)" for g, n in sorted(seen.items()))
    raise CTInputError(
        f"series {uid}: uneven slice spacing (gaps seen: {spacings}); a volume needs one "
        "spacing. Resample it to even slices first"
    )


def _gap_text(n: int, gaps: np.ndarray, along: np.ndarray, names: list, step: float) -> str:
    """Where the slices missing between slices ``n`` and ``n + 1`` lie (mm along the normal)."""
    count = round(gaps[n] / step)
    at = ", ".join(
        f"{along[n] + m * (along[n + 1] - along[n]) / count:.2f}" for m in range(1, count)
    )
    return (
        f"{count - 1} between instance {names[n]} at {along[n]:.2f} mm and instance "
        f"{names[n + 1]} at {along[n + 1]:.2f} mm along the slice normal, expected at {at} mm"
    )
