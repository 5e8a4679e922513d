"""Scanner physics applied to a painted phantom on its output grid: the point spread
(in-plane blur and the slice profile along the thickest axis), a smooth bias field,
metal streaks, noise and integer quantization.

All figures are drawn per case within PHANTOM.md's ranges: in-plane FWHM 0.5-1.2 mm,
slice profile FWHM 0.7-1.2 x the slice spacing, noise sigma 10-55 HU (a little
beyond PHANTOM.md's 10-40: low-dose and thin-slice scans are noisier) (correlated by
the same point spread, as reconstruction makes it), bias up to about +-30 HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from SpineLabelerLib.phantom import tissues as T

FWHM_TO_SIGMA = 1.0 / 2.3548


@dataclass(frozen=True)
class Physics:
    inplane_fwhm_mm: float
    slice_fwhm_factor: float
    noise_hu: float
    bias_hu: tuple[float, float, float, float]  # constant, x slope, y slope, radial (per 100 mm)
    streak_hu: float

    @staticmethod
    def draw(rng: np.random.Generator) -> Physics:
        return Physics(
            inplane_fwhm_mm=float(rng.uniform(0.5, 1.2)),
            slice_fwhm_factor=float(rng.uniform(0.7, 1.2)),
            noise_hu=float(rng.uniform(10, 55)),
            bias_hu=tuple(float(x) for x in rng.uniform([-15, -8, -8, -20], [15, 8, 8, 15])),  # type: ignore[arg-type]
            streak_hu=float(rng.uniform(300, 900)),
        )

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def psf_sigma_vox(spacing_ijk: tuple[float, float, float], ph: Physics) -> np.ndarray:
    """Gaussian PSF sigma per array axis (k, j, i), voxels; the thickest axis gets the
    slice profile, the others the in-plane blur."""
    sp = np.asarray(spacing_ijk, float)
    thick = int(np.argmax(sp)) if sp.max() > 1.2 * sp.min() else 2
    sigma_mm = np.full(3, ph.inplane_fwhm_mm * FWHM_TO_SIGMA)
    sigma_mm[thick] = max(sp[thick] * ph.slice_fwhm_factor, ph.inplane_fwhm_mm) * FWHM_TO_SIGMA
    return (sigma_mm / sp)[::-1]


def _noise_gain(sigma_vox: np.ndarray) -> float:
    """How much a Gaussian blur of ``sigma_vox`` shrinks the std of white noise."""
    g = 1.0
    for s in sigma_vox:
        if s > 0.05:
            x = np.arange(-int(3 * s + 1), int(3 * s + 1) + 1)
            w = np.exp(-0.5 * (x / s) ** 2)
            g *= float(np.sqrt((w**2).sum()) / w.sum())
    return g


def blur_with_noise(
    hu: np.ndarray, spacing_ijk, ph: Physics, rng: np.random.Generator
) -> np.ndarray:
    """Add white noise and blur once with the scanner PSF: the noise comes out correlated
    like reconstructed CT noise, with standard deviation ``noise_hu`` after the blur."""
    sigma = psf_sigma_vox(spacing_ijk, ph)
    gain = _noise_gain(sigma)
    scale = np.float32(ph.noise_hu / gain)
    for k0 in range(0, hu.shape[0], 16):  # slab by slab: no second full-size array
        slab = hu[k0 : k0 + 16]
        slab += scale * rng.standard_normal(slab.shape, dtype=np.float32)
    return gaussian_filter(hu, sigma, mode="nearest", truncate=2.5)


def bias_field(shape: tuple[int, int, int], spacing_ijk, ph: Physics) -> np.ndarray:
    """Smooth additive field (HU): offset, linear ramps and a radial cupping term, (K, J, I)."""
    k, j, i = shape
    x = (np.arange(i, dtype=np.float32) - i / 2) * np.float32(spacing_ijk[0] / 100.0)
    y = (np.arange(j, dtype=np.float32) - j / 2) * np.float32(spacing_ijk[1] / 100.0)
    c, sx, sy, rad = (np.float32(v) for v in ph.bias_hu)
    plane = c + sx * x[None, :] + sy * y[:, None] + rad * (x[None, :] ** 2 + y[:, None] ** 2)
    return np.broadcast_to(plane, shape)


def metal_streaks(
    hu: np.ndarray, tissue: np.ndarray, ph: Physics, rng: np.random.Generator
) -> None:
    """Bright/dark streaks radiating in-plane from metal, in the slices that hold metal."""
    slices = np.nonzero((tissue == T.METAL).any(axis=(1, 2)))[0]
    if len(slices) == 0:
        return
    j, i = hu.shape[1:]
    Y, X = np.mgrid[0:j, 0:i].astype(np.float32)
    angles = rng.uniform(0, np.pi, 8)
    amps = rng.uniform(-1, 1, 8).astype(np.float32)
    for k in slices:
        jj, ii = np.nonzero(tissue[k] == T.METAL)
        cy, cx = jj.mean(), ii.mean()
        r = np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) + 1.0
        streak = np.zeros((j, i), np.float32)
        for ang, amp in zip(angles, amps):
            dist = np.abs((X - cx) * np.sin(ang) - (Y - cy) * np.cos(ang))
            streak += amp * np.exp(-dist / 1.5)
        hu[k] += np.float32(ph.streak_hu) * streak * np.minimum(np.float32(20.0) / r, 1)


def outside_scan_circle(hu: np.ndarray, value: float) -> None:
    """Set the voxels outside the reconstruction circle of each axial slice (K, J, I) to
    the scanner's padding value, as many scanners write them."""
    k, j, i = hu.shape
    yy, xx = np.ogrid[0:j, 0:i]
    r = 0.5 * min(i, j)
    outside = (xx - (i - 1) / 2) ** 2 + (yy - (j - 1) / 2) ** 2 > r * r
    hu[:, outside] = np.float32(value)


def quantize(hu: np.ndarray, as_float: bool) -> np.ndarray:
    """Clip to the scanner range [-1024, 3071] HU; int16 unless float is asked for."""
    np.clip(hu, -1024, 3071, out=hu)
    if as_float:
        return hu
    np.rint(hu, out=hu)
    return hu.astype(np.int16)
