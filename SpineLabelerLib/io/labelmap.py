"""Write volumes on exactly their own grid as NIfTI or NRRD: labelmaps (VerSe values) and
scalar images (a CT in HU). Both share one SimpleITK writer, the suffix check and the
refuse-overwrite / atomic-rename policy of :func:`io._files.atomic_path`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SpineLabelerLib.image import Image, to_sitk
from SpineLabelerLib.io._files import atomic_path

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd")
LABELMAP_SUFFIXES = VOLUME_SUFFIXES


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


def _write_volume(path: str | os.PathLike, image: Image, what: str, force: bool) -> Path:
    """Write a 3D ``image`` with its geometry; compressed unless the name ends in ``.nii``."""
    path = Path(path)
    if not path.name.lower().endswith(VOLUME_SUFFIXES):
        raise ValueError(f"{path}: {what} file must end with one of {', '.join(VOLUME_SUFFIXES)}")
    img = to_sitk(image)
    with atomic_path(path, force) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=not path.name.lower().endswith(".nii"))
    return path


def write_labelmap(path: str | os.PathLike, labels: Image, force: bool = False) -> Path:
    """Write ``labels`` (VerSe values) to .nii.gz / .nii / .nrrd, compressed, geometry as given."""
    return _write_volume(path, labels.with_array(label_array(labels)), "labelmap", force)


def write_scalar_image(path: str | os.PathLike, image: Image, force: bool = False) -> Path:
    """Write a scalar ``(K, J, I)`` image (e.g. a CT in HU) keeping its dtype and geometry.

    An int16 CT stays int16, a float32 one float32; booleans and complex values are refused
    (a mask belongs in :func:`write_labelmap`).
    """
    array = np.asarray(image.array)
    if array.ndim != 3:
        raise ValueError(f"a scalar image must be 3D (K, J, I); got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"a scalar image must hold integers or floats; got {array.dtype}")
    return _write_volume(path, image, "image", force)
