"""The one image type and every geometry conversion the project needs.

An ``Image`` carries its voxels together with spacing, origin and direction, so nothing
loses its geometry. Conventions, used everywhere in the library:

- ``array`` is indexed ``(k, j, i)`` (slice, row, column), as SimpleITK and Slicer's
  ``arrayFromVolume`` give it; ``spacing_mm`` and index triplets are ``(i, j, k)``.
- Physical space is LPS millimetres (ITK/DICOM). Slicer's RAS appears only through
  :func:`lps_to_ras` / :func:`ras_to_lps` / :func:`ijk_to_ras_matrix`, the single place that
  flips the first two axes.
- ``direction`` is 3x3 with column ``c`` the LPS unit vector of index axis ``c``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Image:
    """Voxels plus geometry. ``array`` shape ``(K, J, I)``; vectors in ``(i, j, k)`` order."""

    array: np.ndarray
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin_lps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        object.__setattr__(self, "origin_lps", tuple(float(o) for o in self.origin_lps))
        object.__setattr__(self, "direction", np.asarray(self.direction, float).reshape(3, 3))

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.array.shape[:3]
        return (i, j, k)

    def with_array(self, array: np.ndarray) -> Image:
        """Same geometry, other voxels (e.g. a labelmap on this CT's grid)."""
        if array.shape[:3] != self.array.shape[:3]:
            raise ValueError(f"array shape {array.shape} does not match grid {self.array.shape}")
        return replace(self, array=array)

    def same_grid(self, other: Image, tol: float = 1e-4) -> bool:
        return (
            self.array.shape[:3] == other.array.shape[:3]
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=tol)
            and np.allclose(self.origin_lps, other.origin_lps, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )


def from_sitk(img: sitk.Image) -> Image:
    if img.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {img.GetDimension()}D")
    return Image(
        array=sitk.GetArrayFromImage(img),
        spacing_mm=img.GetSpacing(),
        origin_lps=img.GetOrigin(),
        direction=np.array(img.GetDirection()).reshape(3, 3),
    )


def to_sitk(image: Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(image.array), isVector=image.array.ndim == 4)
    img.SetSpacing(image.spacing_mm)
    img.SetOrigin(image.origin_lps)
    img.SetDirection(tuple(image.direction.ravel()))
    return img


def ijk_to_lps_matrix(image: Image) -> np.ndarray:
    """4x4 homogeneous matrix taking continuous index ``(i, j, k, 1)`` to LPS mm."""
    m = np.eye(4)
    m[:3, :3] = image.direction @ np.diag(image.spacing_mm)
    m[:3, 3] = image.origin_lps
    return m


def ijk_to_ras_matrix(image: Image) -> np.ndarray:
    """4x4 index-to-RAS matrix, what Slicer's ``SetIJKToRASMatrix`` expects."""
    m = ijk_to_lps_matrix(image)
    m[:3, :] = _LPS_TO_RAS @ m[:3, :]
    return m


def image_from_ijk_to_ras(array: np.ndarray, ijk_to_ras: np.ndarray) -> Image:
    """Build an Image from a Slicer volume's ``(K, J, I)`` array and its IJK-to-RAS matrix."""
    m = np.asarray(ijk_to_ras, float).reshape(4, 4).copy()
    m[:3, :] = _LPS_TO_RAS @ m[:3, :]
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    return Image(array, tuple(spacing), tuple(m[:3, 3]), m[:3, :3] / spacing)


def index_to_lps(image: Image, ijk: np.ndarray) -> np.ndarray:
    """Continuous ``(N, 3)`` (i, j, k) indices to ``(N, 3)`` LPS mm."""
    pts = np.atleast_2d(np.asarray(ijk, float))
    return pts @ (image.direction @ np.diag(image.spacing_mm)).T + np.asarray(image.origin_lps)


def lps_to_index(image: Image, lps: np.ndarray) -> np.ndarray:
    """``(N, 3)`` LPS mm to continuous ``(N, 3)`` (i, j, k) indices."""
    pts = np.atleast_2d(np.asarray(lps, float)) - np.asarray(image.origin_lps)
    return pts @ np.linalg.inv(image.direction @ np.diag(image.spacing_mm)).T


def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """``(N, 3)`` or ``(3,)`` LPS points to RAS (negate x and y)."""
    return np.asarray(points, float) @ _LPS_TO_RAS


def ras_to_lps(points: np.ndarray) -> np.ndarray:
    """``(N, 3)`` or ``(3,)`` RAS points to LPS (the conversion is its own inverse)."""
    return np.asarray(points, float) @ _LPS_TO_RAS


def orientation_code(image: Image) -> str:
    """Three-letter orientation code: the patient direction each index axis points *towards*
    (SimpleITK >= 2: identity direction -> "LPS"; a usual DICOM axial CT -> "LPS")."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        tuple(image.direction.ravel())
    )


def physical_extent_mm(image: Image) -> tuple[float, float, float]:
    """Field of view along each index axis, mm."""
    return tuple(n * s for n, s in zip(image.size_ijk, image.spacing_mm))  # type: ignore[return-value]


def resample_to_spacing(
    image: Image, spacing_mm: tuple[float, float, float], *, nearest: bool = False, fill: float = 0
) -> Image:
    """Resample onto a grid with the same origin corner, direction and extent but new spacing.

    Linear for intensities, nearest neighbour for labels (``nearest=True``).
    """
    spacing = np.asarray(spacing_mm, float)
    extent = np.asarray(image.size_ijk) * np.asarray(image.spacing_mm)
    size = np.maximum(np.round(extent / spacing).astype(int), 1)
    # Keep the outer corner of voxel 0 fixed so that the extent is unchanged.
    corner = index_to_lps(image, [-0.5, -0.5, -0.5])[0]
    origin = corner + image.direction @ (0.5 * spacing)
    reference = Image(
        np.zeros(size[::-1], np.uint8), tuple(spacing), tuple(origin), image.direction
    )
    return resample_onto(image, reference, nearest=nearest, fill=fill)


def resample_onto(
    image: Image, reference: Image, *, nearest: bool = False, fill: float = 0, float32: bool = False
) -> Image:
    """Resample ``image`` onto ``reference``'s grid (physical positions are preserved).

    ``float32``: the output is float32 whatever the input's type, so that an int16 CT need
    not be copied to float first (a clinical CT's float copy is about 1 GB)."""
    f = sitk.ResampleImageFilter()
    ref = sitk.Image([int(n) for n in reference.size_ijk], sitk.sitkUInt8)
    ref.SetSpacing(reference.spacing_mm)
    ref.SetOrigin(reference.origin_lps)
    ref.SetDirection(tuple(reference.direction.ravel()))
    f.SetReferenceImage(ref)
    f.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
    f.SetDefaultPixelValue(float(fill))
    if float32:
        f.SetOutputPixelType(sitk.sitkFloat32)
    out = f.Execute(to_sitk(image))
    return Image(
        sitk.GetArrayFromImage(out), reference.spacing_mm, reference.origin_lps, reference.direction
    )


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Index slices of the box holding a bool array's True voxels, or None if there are none:
    work on a mask that fills a few per cent of its array is done inside this box."""
    found = ndimage.find_objects(mask.view(np.uint8))
    return found[0] if found else None


def grow_box(
    box: tuple[slice, ...], voxels: int | Sequence[int], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """``box`` grown by ``voxels`` on every side (one count, or one per axis), kept inside an
    array of ``shape``."""
    per_axis = np.broadcast_to(np.asarray(voxels, int), (len(box),))
    return tuple(
        slice(max(b.start - int(m), 0), min(b.stop + int(m), n))
        for b, m, n in zip(box, per_axis, shape)
    )


def subimage(image: Image, box: tuple[slice, ...]) -> Image:
    """The part of ``image`` under ``(k, j, i)`` slices, a view with its own origin."""
    start = np.array([sl.start for sl in box[::-1]], float)
    origin = index_to_lps(image, start[None])[0]
    return Image(image.array[box], image.spacing_mm, tuple(origin), image.direction)
