"""Write a labelmap (VerSe values) as NIfTI or NRRD on exactly the CT's grid."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineLabelerLib.image import Image, to_sitk
from SpineLabelerLib.io._files import atomic_path

LABELMAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd")


def label_array(labels: Image) -> np.ndarray:
    """``(K, J, I)`` labels as uint8 (uint16 above 255); refuse negative or fractional values."""
    array = labels.array
    if array.ndim != 3:
        raise ValueError(f"a labelmap must be 3D (K, J, I); got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(array == np.round(array)):
            raise ValueError("a labelmap must hold whole numbers (VerSe label values)")
    if array.size and array.min() < 0:
        raise ValueError(f"a labelmap cannot hold negative values (lowest {array.min()})")
    dtype = np.uint8 if array.size == 0 or array.max() <= 255 else np.uint16
    return array.astype(dtype, copy=False)


def write_labelmap(path: str | os.PathLike, labels: Image, force: bool = False) -> Path:
    """Write ``labels`` (VerSe values) to .nii.gz / .nii / .nrrd, compressed, geometry as given."""
    path = Path(path)
    if not path.name.lower().endswith(LABELMAP_SUFFIXES):
        raise ValueError(
            f"{path}: labelmap file must end with one of {', '.join(LABELMAP_SUFFIXES)}"
        )
    img = to_sitk(labels.with_array(label_array(labels)))
    with atomic_path(path, force) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=not path.name.lower().endswith(".nii"))
    return path
