"""Is a file whole? Checks run before any reader trusts a file's voxels.

Files arrive cut short from copies and transfers, and the readers do not always say so:
SimpleITK reads a ``.nii.gz`` or ``.nii`` cut to half without a word and gives a volume
with what was there (the rest zeros); for NRRD and MetaImage it fails with words a user
cannot act on. Each check compares what the header says the file holds with what it
holds, and says what is wrong.
"""

from __future__ import annotations

import bz2
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom

from SpineLabelerLib.io.checks import CTInputError

_SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0, little endian
_CHUNK = 1 << 14  # compressed bytes per step; deflate's 1:1032 keeps each output under 17 MB


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_complete(path: str | os.PathLike) -> None:
    """Refuse a NIfTI, NRRD or MetaImage file that holds fewer voxels than its header says.

    Raises :class:`CTInputError` naming the file and what is missing. A gzip payload is
    checked by its trailer (the size it records; no decompression) and, where that does
    not match, decompressed in chunks that are counted, not kept.
    """
    path = Path(path)
    name = path.name.lower()
    readers: list[tuple[tuple[str, ...], Callable[[Path], str | None]]] = [
        ((".nii", ".nii.gz"), _nifti_problem),
        ((".nrrd", ".nhdr"), _nrrd_problem),
        ((".mha", ".mhd"), _metaimage_problem),
    ]
    for suffixes, problem_of in readers:
        if name.endswith(suffixes):
            problem = problem_of(path)
            if problem:
                raise CTInputError(f"{path}: {problem}")


@dataclass(frozen=True)
class _Payload:
    """Where a file's voxels are stored and how many bytes they must hold."""

    data_path: Path
    start: int  # where the stored (maybe compressed) payload begins in data_path
    needed: int  # bytes the payload must yield (voxels, plus what precedes them in a stream)
    voxel_bytes: int  # of which voxels
    described: str  # e.g. "512x512x300 int16"
    encoding: str  # raw, gzip, bzip2 or zlib


def _payload_problem(p: _Payload) -> str | None:
    """What the header describes against what the payload holds."""
    size = p.data_path.stat().st_size
    described = f"the header describes {p.described} = {_size_text(p.voxel_bytes)}"
    if p.encoding == "raw":
        if size - p.start >= p.needed:
            return None
        return f"the file ends early ({_size_text(size)}; {described}): a truncated copy?"
    if p.encoding == "gzip" and _gzip_recorded_size(p.data_path, p.start) == p.needed % 2**32:
        return None
    try:
        got, ended = _stream_size(p.data_path, p.start, p.encoding, p.needed)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        return f"the file is damaged ({p.encoding} data unreadable: {err})"
    if got >= p.needed:
        return None
    if ended:
        return (
            f"the file holds too few voxels ({p.encoding} data complete but "
            f"{_size_text(got)} of the {_size_text(p.needed)} needed; {described})"
        )
    return (
        f"the file ends early ({p.encoding} stream cut short after {_size_text(size)}; "
        f"{described}): a truncated copy?"
    )


def _gzip_recorded_size(path: Path, start: int) -> int | None:
    """The uncompressed size (modulo 2**32) a gzip payload from ``start`` to the end records."""
    with open(path, "rb") as fp:
        fp.seek(start)
        if fp.read(2) != b"\x1f\x8b":
            return None
        fp.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fp.read(4))[0]


def _decompressor(encoding: str):
    if encoding == "bzip2":
        return bz2.BZ2Decompressor()
    return zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)


def _stream_size(path: Path, start: int, encoding: str, enough: int) -> tuple[int, bool]:
    """(bytes the compressed payload yields, whether its last stream ended), decompressed in
    chunks that are counted and dropped; stops once ``enough`` bytes came out."""
    total, decomp = 0, _decompressor(encoding)
    with open(path, "rb") as fp:
        fp.seek(start)
        while data := fp.read(_CHUNK):
            while data:
                if decomp.eof:  # concatenated streams (bgzip, pbzip2): the next one starts
                    decomp = _decompressor(encoding)
                total += len(decomp.decompress(data))
                if total >= enough:
                    return total, True
                data = decomp.unused_data if decomp.eof else b""
    return total, decomp.eof


_NIFTI_TYPES = {2: "uint8", 4: "int16", 8: "int32", 16: "float32", 64: "float64", 256: "int8"}
_NIFTI_TYPES |= {512: "uint16", 768: "uint32", 1024: "int64", 1280: "uint64", 128: "rgb24"}


def _nifti_problem(path: Path) -> str | None:
    """A NIfTI-1 or -2 file (``.nii`` or ``.nii.gz``) must hold vox_offset + its voxels."""
    compressed = path.name.lower().endswith(".gz")
    with open(path, "rb") as fp:
        if compressed and fp.read(2) != b"\x1f\x8b":
            return None  # no gzip file at all: the reader says it cannot read it
    try:
        with (gzip.open if compressed else open)(path, "rb") as fp:
            header = fp.read(540)
    except EOFError:
        return "the file ends early (within its header): a truncated copy?"
    except (OSError, zlib.error) as err:
        return f"the file is damaged (its header cannot be read: {err})"
    for endian in "<>":
        header_size = struct.unpack(endian + "i", header[:4])[0] if len(header) >= 4 else 0
        if header_size in (348, 540):
            break
    else:
        if len(header) < 348:
            return f"the file ends early ({len(header)} bytes, less than a NIfTI header)"
        return None  # not NIfTI: the reader says what it is
    if header_size == 348:
        dims = struct.unpack(endian + "8h", header[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
        offset = int(struct.unpack(endian + "f", header[108:112])[0])
    else:
        datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
        dims = struct.unpack(endian + "8q", header[16:80])
        offset = struct.unpack(endian + "q", header[168:176])[0]
    shape = [max(int(d), 1) for d in dims[1 : 1 + min(max(int(dims[0]), 1), 7)]]
    voxel_bytes = (int(np.prod(shape)) * bitpix + 7) // 8
    kind = _NIFTI_TYPES.get(datatype, f"{bitpix}-bit")
    payload = _Payload(
        data_path=path,
        start=0 if compressed else max(offset, header_size),
        needed=voxel_bytes + (max(offset, header_size) if compressed else 0),
        voxel_bytes=voxel_bytes,
        described=f"{'x'.join(str(n) for n in shape)} {kind}",
        encoding="gzip" if compressed else "raw",
    )
    return _payload_problem(payload)


def _text_header(
    path: Path, separator: str, last: Callable[[str, str], bool]
) -> tuple[dict[str, str], int]:
    """The ``key<separator>value`` lines of a text header, up to the line for
    which ``last(key, line)`` holds; returns the fields (keys lower case) and the header's
    length in bytes, -1 when the file ends (or 1 MB passes) before that line."""
    fields: dict[str, str] = {}
    length = 0
    with open(path, "rb") as fp:
        for raw in fp:
            length += len(raw)
            line = raw.decode("latin-1").strip()
            key, _, value = line.partition(separator)
            fields.setdefault(key.strip().lower(), value.strip())
            if last(key.strip().lower(), line):
                return fields, length
            if length > 1 << 20:
                break
    return fields, -1


def _nrrd_type_bytes(name: str) -> int | None:
    """Bytes per value of an NRRD type (``short``, ``unsigned char``, ``int16_t``, ...)."""
    name = name.lower()
    for words, size in (
        (("char", "int8"), 1),
        (("short", "int16"), 2),
        (("long", "int64"), 8),
        (("int",), 4),
        (("float",), 4),
        (("double",), 8),
    ):
        if any(word in name for word in words):
            return size
    return None


def _nrrd_problem(path: Path) -> str | None:
    """An NRRD (attached or detached header) whose raw, gzip or bzip2 payload is shorter
    than ``sizes`` x ``type``; other encodings are left to the reader."""
    fields, header_bytes = _text_header(path, ":", lambda key, line: line == "")
    data_file = fields.get("data file", fields.get("datafile"))
    if header_bytes < 0 and data_file is None:
        return "the file ends early (within its header): a truncated copy?"
    encoding = {"gz": "gzip", "bz2": "bzip2"}.get(
        fields.get("encoding", ""), fields.get("encoding")
    )
    value_bytes = _nrrd_type_bytes(fields.get("type", ""))
    sizes = [int(v) for v in fields.get("sizes", "").split() if v.isdigit()]
    skip = int(fields.get("byte skip", fields.get("byteskip", "0")))
    if value_bytes is None or not sizes or encoding not in ("raw", "gzip", "bzip2"):
        return None
    if (
        fields.get("line skip", fields.get("lineskip", "0")) != "0"
        or (data_file or "")[:4] == "LIST"
    ):
        return None
    if data_file is not None:
        data_path, start = path.parent / data_file, 0
        if not data_path.is_file():
            return f"its data file {data_file} is not there"
    else:
        data_path, start = path, header_bytes
    voxel_bytes = int(np.prod(sizes)) * value_bytes
    if encoding == "raw":  # byte skip -1: the voxels are the file's last bytes
        start += max(skip, 0)
    payload = _Payload(
        data_path=data_path,
        start=start,
        needed=voxel_bytes + (max(skip, 0) if encoding != "raw" else 0),
        voxel_bytes=voxel_bytes,
        described=f"{'x'.join(str(n) for n in sizes)} {fields['type']}",
        encoding=encoding,
    )
    return _payload_problem(payload)


_MET_TYPE_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2}
_MET_TYPE_BYTES |= {"MET_INT": 4, "MET_UINT": 4, "MET_FLOAT": 4, "MET_DOUBLE": 8}
_MET_TYPE_BYTES |= {"MET_LONG_LONG": 8, "MET_ULONG_LONG": 8}


def _metaimage_problem(path: Path) -> str | None:
    """A MetaImage (``.mha`` with its voxels, ``.mhd`` beside a raw file) whose raw or zlib
    payload is shorter than DimSize x ElementType x channels."""
    fields, header_bytes = _text_header(path, "=", lambda key, line: key == "elementdatafile")
    if header_bytes < 0:
        return "the file ends early (within its header, before ElementDataFile): a truncated copy?"
    element_type = fields.get("elementtype", "").upper()
    value_bytes = _MET_TYPE_BYTES.get(element_type)
    sizes = [int(v) for v in fields.get("dimsize", "").split() if v.isdigit()]
    data_file = fields.get("elementdatafile", "")
    if value_bytes is None or not sizes or data_file.startswith("LIST") or "%" in data_file:
        return None
    if data_file.upper() == "LOCAL":
        data_path, start = path, header_bytes
    else:
        data_path, start = path.parent / data_file, 0
        if not data_path.is_file():
            return f"its data file {data_file} is not there"
    start = max(int(fields.get("headersize", "0") or 0), 0) + start
    compressed = fields.get("compresseddata", "false").lower() == "true"
    voxel_bytes = int(np.prod(sizes)) * value_bytes * int(fields.get("elementnumberofchannels", 1))
    described = f"{'x'.join(str(n) for n in sizes)} {element_type}"
    stored = int(fields.get("compresseddatasize", "0") or 0)
    if compressed and stored:  # the size the writer recorded: no need to decompress
        size = data_path.stat().st_size
        if size - start >= stored:
            return None
        return (
            f"the file ends early ({_size_text(size)}; the header describes {described}, "
            f"compressed to {_size_text(stored)}): a truncated copy?"
        )
    payload = _Payload(
        data_path, start, voxel_bytes, voxel_bytes, described, "zlib" if compressed else "raw"
    )
    return _payload_problem(payload)


def dicom_pixel_problem(
    path: str | os.PathLike, ds: pydicom.Dataset, pixel_offset: int
) -> str | None:
    """Why the pixel data of a DICOM file cannot be whole, or None.

    ``ds`` is its header read with ``stop_before_pixels``, ``pixel_offset`` where that
    reading stopped (the Pixel Data element's tag, or the end of a file cut short).
    """
    size = Path(path).stat().st_size
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    is_image = sop_class is not None and "Image Storage" in sop_class.name
    if is_image and ("Rows" not in ds or size <= pixel_offset):
        return (
            f"the file ends early (after {_size_text(size)}, before its pixel data): "
            "a truncated copy?"
        )
    if "Rows" not in ds or "Columns" not in ds:
        return None  # not an image (a report, a segmentation's other parts): nothing to check
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
