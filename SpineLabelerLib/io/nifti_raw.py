"""Count NaN/inf in a float NIfTI-1 file's own bytes.

ITK's NIfTI reader turns NaN and inf into 0 without a word, so a CT with holes of NaN
would pass as water. This reads the header and the raw float voxels (``.nii`` or
``.nii.gz``) to see them before SimpleITK hides them.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes: FLOAT32, FLOAT64


def nonfinite_count(path: str | os.PathLike) -> int | None:
    """Number of NaN/inf voxels of a float NIfTI-1 file; None when not float NIfTI-1."""
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        header = f.read(348)
        if len(header) < 348:
            return None
        for endian in "<>":
            if struct.unpack(endian + "i", header[:4])[0] == 348:
                break
        else:
            return None  # NIfTI-2 or not NIfTI
        dims = struct.unpack(endian + "8h", header[40:56])
        datatype = struct.unpack(endian + "h", header[70:72])[0]
        offset = int(struct.unpack(endian + "f", header[108:112])[0])
        if datatype not in _FLOAT_TYPES:
            return None
        count = int(np.prod([max(d, 1) for d in dims[1 : 1 + max(dims[0], 1)]]))
        f.read(max(offset - 348, 0))
        data = np.frombuffer(f.read(), dtype=endian + _FLOAT_TYPES[datatype], count=count)
    return int(data.size - np.count_nonzero(np.isfinite(data)))
