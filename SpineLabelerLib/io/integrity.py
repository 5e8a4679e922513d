"""Is a file whole? Checks run before any reader trusts a file's pixels.

Files arrive cut short from copies and transfers, and the readers do not always say so:
SimpleITK reads a ``.nii.gz`` cut to its first 100 kB without a word and gives a volume
with what was there. Each check compares what the header says the file holds with what
it holds, and returns a sentence saying what is wrong (None when the file is whole).
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom

_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0, little endian


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def dicom_pixel_problem(
    path: str | os.PathLike, ds: pydicom.Dataset, pixel_offset: int
) -> str | None:
    """Why the pixel data of a DICOM file cannot be whole, or None.

    ``ds`` is its header read with ``stop_before_pixels``, ``pixel_offset`` where that
    reading stopped (the Pixel Data element's tag, or the end of a file cut short).
    """
    size = Path(path).stat().st_size
    if "Rows" not in ds or "Columns" not in ds:
        return None  # not an image (a report, a segmentation's other parts): nothing to check
    if size <= pixel_offset:
        return (
            f"the file ends early (after {_size_text(size)}, before its pixel data): "
            "a truncated copy?"
        )
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_encapsulated:
        with open(path, "rb") as fp:
            fp.seek(-len(_SEQUENCE_END), os.SEEK_END)
            if fp.read() != _SEQUENCE_END:
                return (
                    "the file ends early (its compressed pixel data has no end marker): "
                    "a truncated copy?"
                )
        return None
    if syntax is not None and syntax.is_deflated:
        return None
    explicit = syntax is None or not syntax.is_implicit_VR
    element_header = 12 if explicit else 8  # tag, VR, reserved, 4-byte length / tag, length
    bits = int(ds.get("BitsAllocated", 16))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    expected = (int(ds.Rows) * int(ds.Columns) * frames * samples * bits + 7) // 8
    present = size - pixel_offset - element_header
    if present < expected:
        return (
            f"the file ends early (pixel data {_size_text(max(present, 0))} of the "
            f"{_size_text(expected)} its header describes: {ds.Columns}x{ds.Rows} "
            f"{bits}-bit): a truncated copy?"
        )
    return None
