"""One training sample from a prepared case: a stage-1 crop or a stage-2 patch (numpy).

A :class:`PreparedCase` is a CT already on its stage's canonical grid (axis-aligned LPS,
isotropic ``spacing_mm``; k runs to Superior) with intensities in [-1, 1] and its VerSe
labelmap on the same grid. Arrays are ``(K, J, I)``. Sampling is a pure function of the case
and a ``numpy.random.Generator``, so a run that seeds the generator per step is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from SpineLabelerLib import anatomy
from SpineLabelerLib.preprocess import region_classes

CT_FILL = -1.0  # normalized air: what lies outside the field of view
TYPICAL_STEP_MM = 25.0  # centroid-to-centroid distance used when a vertebra has no neighbour
MIN_VERTEBRA_VOXELS = 20  # smaller label fragments are not sampled as targets


@dataclass
class PreparedCase:
    """CT ``(K, J, I)`` float32 in [-1, 1] and VerSe labels ``(K, J, I)`` uint8, one grid."""

    ct: np.ndarray
    labels: np.ndarray
    spacing_mm: float
    name: str = ""
    _centroids: dict[int, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.ct.shape != self.labels.shape or self.ct.ndim != 3:
            raise ValueError(
                f"CT {self.ct.shape} and labels {self.labels.shape} must be one 3D grid"
            )

    def centroids_kji(self) -> dict[int, np.ndarray]:
        """Vertebra label -> centroid (k, j, i) in voxels, for labels of the C1-L6 table."""
        if self._centroids is None:
            present = [int(v) for v in np.unique(self.labels) if int(v) in anatomy.BY_LABEL]
            counts = ndimage.sum_labels(np.ones_like(self.labels, np.int32), self.labels, present)
            present = [
                v for v, n in zip(present, np.atleast_1d(counts)) if n >= MIN_VERTEBRA_VOXELS
            ]
            coms = ndimage.center_of_mass(np.ones_like(self.labels), self.labels, present)
            self._centroids = {v: np.asarray(c, float) for v, c in zip(present, coms)}
        return self._centroids


def patch_slices(start_kji, size_kji, shape) -> tuple[tuple, tuple] | None:
    """(volume slices, patch slices) of the part of a ``size_kji`` patch at ``start_kji``
    that lies inside a volume of ``shape``; None where none of it does."""
    src, dst = [], []
    for s, n, dim in zip(np.asarray(start_kji, int), size_kji, shape):
        lo, hi = max(int(s), 0), min(int(s + n), dim)
        if hi <= lo:
            return None
        src.append(slice(lo, hi))
        dst.append(slice(lo - int(s), hi - int(s)))
    return tuple(src), tuple(dst)


def crop_with_fill(volume: np.ndarray, start_kji: np.ndarray, size_kji, fill: float) -> np.ndarray:
    """``volume[start : start + size]`` per axis, reading ``fill`` outside the volume."""
    out = np.full(tuple(size_kji), fill, volume.dtype)
    inside = patch_slices(start_kji, size_kji, volume.shape)
    if inside is not None:
        src, dst = inside
        out[dst] = volume[src]
    return out


# ----------------------------------------------------------------------------- stage 1


@dataclass(frozen=True)
class Stage1Sampling:
    """How stage-1 crops are drawn (a training config's ``stage1_sampling``)."""

    spine_bias: float = 0.5  # centred near a random vertebra voxel, else anywhere
    # Cut in-plane around the spine, as a spine-tight scan or a VerSe-style crop is: no ribs'
    # shafts, lungs or body outline left to tell the region, only the vertebrae and the
    # stubs of their ribs (stage 1 named real tight crops' upper lumbar vertebrae thoracic).
    p_tight: float = 0.0
    tight_half_width_mm: tuple[float, float] = (40.0, 80.0)  # drawn per axis (AP, LR)
    tight_shift_mm: float = 10.0  # the box's centre off the spine's, per axis

    def __post_init__(self) -> None:
        lo, hi = self.tight_half_width_mm
        if not (0.0 <= self.p_tight <= 1.0 and 0.0 <= self.spine_bias <= 1.0 and 0 < lo <= hi):
            raise ValueError(f"unusable stage-1 sampling {self}")


def stage1_sample(
    case: PreparedCase,
    crop_kji: tuple[int, int, int],
    rng: np.random.Generator,
    sampling: Stage1Sampling = Stage1Sampling(),
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop: CT ``(1, K, J, I)`` float32 and region classes ``(K, J, I)`` int64
    (0 bg, 1 C, 2 T, 3 L). With probability ``spine_bias`` the crop is centred near a random
    vertebra voxel, otherwise anywhere in the case (so background and leg CTs are seen too);
    with probability ``p_tight`` it is then cut in-plane around the spine."""
    shape = np.asarray(case.ct.shape)
    size = np.asarray(crop_kji)
    centroids = case.centroids_kji()
    if centroids and rng.random() < sampling.spine_bias:
        centre = np.asarray(list(centroids.values()))[rng.integers(len(centroids))]
        centre = centre + rng.uniform(-0.35, 0.35, 3) * size
    else:
        centre = rng.uniform(0, 1, 3) * shape
    # keep the crop inside the case where the case is larger than the crop
    start = np.round(centre - size / 2).astype(int)
    start = np.where(shape >= size, np.clip(start, 0, shape - size), (shape - size) // 2)
    ct = crop_with_fill(case.ct, start, crop_kji, CT_FILL)
    classes = region_classes(crop_with_fill(case.labels, start, crop_kji, 0)).astype(np.int64)
    if centroids and sampling.p_tight > 0 and rng.random() < sampling.p_tight:
        _tight_cut(ct, classes, start, centroids, case.spacing_mm, rng, sampling)
    return ct[None], classes


def _tight_cut(
    ct: np.ndarray,
    classes: np.ndarray,
    start: np.ndarray,
    centroids: dict[int, np.ndarray],
    spacing_mm: float,
    rng: np.random.Generator,
    sampling: Stage1Sampling,
) -> None:
    """Blank the crop outside an in-plane box around the spine (in place): air in the CT,
    background in the classes (a vertebra's part outside the scan is not there to call).
    The box is centred on the vertebrae whose centroids lie in the crop's slices (all of
    them where none does)."""
    points = np.asarray(list(centroids.values())) - start
    inside = points[(points[:, 0] >= 0) & (points[:, 0] < ct.shape[0])]
    centre_ji = np.median(inside if len(inside) else points, axis=0)[1:]
    centre_ji = centre_ji + rng.uniform(-1, 1, 2) * sampling.tight_shift_mm / spacing_mm
    half = rng.uniform(*sampling.tight_half_width_mm, size=2) / spacing_mm
    j = np.abs(np.arange(ct.shape[1]) - centre_ji[0]) > half[0]
    i = np.abs(np.arange(ct.shape[2]) - centre_ji[1]) > half[1]
    outside = j[:, None] | i[None, :]
    ct[:, outside] = CT_FILL
    classes[:, outside] = 0


# ----------------------------------------------------------------------------- stage 2


@dataclass(frozen=True)
class Stage2Sampling:
    """How often each kind of stage-2 sample is drawn, and the centre jitter (ARCHITECTURE)."""

    p_no_memory: float = 0.15  # first vertebra of a walk: nothing in memory yet
    p_past_end: float = 0.10  # patch past the last vertebra: empty target
    p_fov_cut: float = 0.10  # the field of view cuts the target vertebra
    p_central: float = 0.5  # target = the vertebra nearest the case centre (crops: a whole one)
    jitter_along_steps: float = 1.0 / 3.0  # along the spine, fraction of the local step
    jitter_across_mm: float = 4.0


def _local_step(centroids: dict[int, np.ndarray], v: int, spacing_mm: float) -> np.ndarray:
    """Vector (voxels, k j i) from v towards its caudal neighbour, from the nearest neighbours."""
    labels = sorted(centroids)
    idx = labels.index(v)
    steps = []
    if idx + 1 < len(labels):
        steps.append(centroids[labels[idx + 1]] - centroids[v])
    if idx > 0:
        steps.append(centroids[v] - centroids[labels[idx - 1]])
    if not steps:
        return np.array([-TYPICAL_STEP_MM / spacing_mm, 0.0, 0.0])  # caudal = -k
    return np.mean(steps, axis=0)


class Stage2Sample(NamedTuple):
    """A stage-2 patch with what it shows: the target's VerSe label (None: empty target)."""

    input: np.ndarray  # (CT, memory) (2, K, J, I) float32
    target: np.ndarray  # (K, J, I) uint8
    label: int | None


def stage2_sample(
    case: PreparedCase,
    patch_kji: tuple[int, int, int],
    rng: np.random.Generator,
    sampling: Stage2Sampling = Stage2Sampling(),
) -> tuple[np.ndarray, np.ndarray]:
    """(CT, memory) ``(2, K, J, I)`` float32 and the target mask ``(K, J, I)`` uint8.

    The target is the vertebra nearest the patch centre that is not in memory; the memory
    holds every vertebra on one random side (cranial or caudal) of it. Leg CTs and patches
    past the end of the spine give an empty target.
    """
    drawn = labelled_stage2_sample(case, patch_kji, rng, sampling)
    return drawn.input, drawn.target


def labelled_stage2_sample(
    case: PreparedCase,
    patch_kji: tuple[int, int, int],
    rng: np.random.Generator,
    sampling: Stage2Sampling = Stage2Sampling(),
) -> Stage2Sample:
    """:func:`stage2_sample` with the target's label (for the level head); same draws."""
    size = np.asarray(patch_kji)
    centroids = case.centroids_kji()
    if not centroids:  # leg CT: anywhere, empty target, empty memory
        centre = rng.uniform(0, 1, 3) * np.asarray(case.ct.shape)
        return Stage2Sample(*_cut(case, centre, size, memory_labels=(), target_label=None), None)
    labels = sorted(centroids)
    if rng.random() < sampling.p_past_end:
        return Stage2Sample(*_past_end_sample(case, labels, centroids, size, rng), None)
    if rng.random() < sampling.p_central:
        middle = (np.asarray(case.ct.shape) - 1) / 2
        v = min(labels, key=lambda x: float(np.linalg.norm(centroids[x] - middle)))
    else:
        v = labels[rng.integers(len(labels))]
    step = _local_step(centroids, v, case.spacing_mm)
    along = step / max(np.linalg.norm(step), 1e-6)
    centre = centroids[v] + along * rng.uniform(
        -1, 1
    ) * sampling.jitter_along_steps * np.linalg.norm(step)
    across = rng.uniform(-1, 1, 3) * sampling.jitter_across_mm / case.spacing_mm
    centre = centre + across - along * np.dot(across, along)
    if rng.random() < sampling.p_no_memory:
        memory: tuple[int, ...] = ()
    elif rng.random() < 0.5:
        memory = tuple(x for x in labels if x < v)  # cranial side already walked
    else:
        memory = tuple(x for x in labels if x > v)
    ct_mem, target = _cut(case, centre, size, memory, v)
    if rng.random() < sampling.p_fov_cut and target.any():
        _fov_cut(ct_mem, target, rng)
    return Stage2Sample(ct_mem, target, int(v) if target.any() else None)


def _past_end_sample(case, labels, centroids, size, rng):
    """Centre one step beyond the most cranial or caudal vertebra; all of the spine in memory."""
    end = labels[0] if rng.random() < 0.5 else labels[-1]
    step = _local_step(centroids, end, case.spacing_mm)
    outward = -step if end == labels[0] else step
    centre = centroids[end] + outward * rng.uniform(0.9, 1.3)
    return _cut(case, centre, size, memory_labels=tuple(labels), target_label=None)


def _cut(case, centre_kji, size, memory_labels, target_label):
    start = np.round(np.asarray(centre_kji) - size / 2).astype(int)
    ct = crop_with_fill(case.ct, start, tuple(size), CT_FILL)
    lab = crop_with_fill(case.labels, start, tuple(size), 0)
    memory = np.isin(lab, memory_labels).astype(np.float32) if memory_labels else np.zeros_like(ct)
    if target_label is None:
        target = np.zeros(lab.shape, np.uint8)
    else:
        target = (lab == target_label).astype(np.uint8)
    return np.stack([ct.astype(np.float32), memory]), target


def _fov_cut(ct_mem: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> None:
    """Simulate the end of the scan through the target: blank one side of a k plane (in place).

    The plane lies within the target's k extent, so part of the vertebra stays visible."""
    ks = np.nonzero(target.any(axis=(1, 2)))[0]
    plane = int(rng.integers(ks[0] + 1, ks[-1] + 1)) if ks[-1] > ks[0] else int(ks[0])
    gone = np.s_[plane:] if rng.random() < 0.5 else np.s_[:plane]
    ct_mem[0][gone] = CT_FILL
    ct_mem[1][gone] = 0.0
    target[gone] = 0
