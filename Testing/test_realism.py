"""Realism measures on hand-built volumes whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from SpineLabelerLib import realism
from SpineLabelerLib.image import Image

# Toy spine on a 1 x 1 x 2 mm grid (i -> L, j -> P, k -> S, identity direction), as the
# real case's anisotropy. Each vertebra: a body box 40 (x) x 30 (y) x 24 (z) mm and, behind
# it, a U of 4 mm walls 30 mm wide and 20 mm deep closing a 22 x 16 mm canal on the body.
SPACING = (1.0, 1.0, 2.0)
SHAPE_KJI = (54, 110, 110)
BODY_I, BODY_J = (35, 75), (20, 50)  # x 40 mm, y 30 mm (anterior = small j)
RING_I, RING_J = (40, 70), (50, 70)  # ring x 30 mm, y 20 mm behind the body
WALL = 4
BODY_HEIGHT_VOX, GAP_VOX = 12, 5  # 24 mm bodies, 10 mm discs
LEVELS = (20, 21, 22)  # L1 on top (largest k)
HU = {
    "cortex": 1200.0,
    "middle": 600.0,
    "core": 200.0,
    "disc": 80.0,
    "canal": 10.0,
    "muscle": 40.0,
    "fat": -100.0,
}


def level_k(n: int) -> tuple[int, int]:
    top = SHAPE_KJI[0] - 4 - n * (BODY_HEIGHT_VOX + GAP_VOX)
    return top - BODY_HEIGHT_VOX, top


def toy_labels() -> Image:
    a = np.zeros(SHAPE_KJI, np.uint8)
    for n, label in enumerate(LEVELS):
        k0, k1 = level_k(n)
        a[k0:k1, BODY_J[0] : BODY_J[1], BODY_I[0] : BODY_I[1]] = label
        ring = np.zeros(SHAPE_KJI[1:], bool)
        ring[RING_J[0] : RING_J[1], RING_I[0] : RING_I[1]] = True
        ring[RING_J[0] : RING_J[1] - WALL, RING_I[0] + WALL : RING_I[1] - WALL] = False
        a[k0:k1][:, ring] = label
    return Image(a, SPACING, (-55.0, -40.0, 10.0))


def toy_ct(labels: Image, noise_sd: float = 0.0) -> Image:
    """Bone: cortex within 2 mm of the outside, core deeper than 4 mm, 'middle' between;
    disc and canal columns; muscle around, fat far to the sides behind the spine."""
    bone = labels.array > 0
    depth = ndi.distance_transform_edt(np.pad(bone, 1), sampling=SPACING[::-1])[1:-1, 1:-1, 1:-1]
    ct = np.full(SHAPE_KJI, HU["muscle"])
    ct[:, 70:, :15] = HU["fat"]
    ct[:, 70:, -15:] = HU["fat"]
    ct[:, BODY_J[0] : BODY_J[1], BODY_I[0] : BODY_I[1]] = HU["disc"]
    ct[:, RING_J[0] : RING_J[1] - WALL, RING_I[0] + WALL : RING_I[1] - WALL] = HU["canal"]
    ct[bone] = HU["middle"]
    ct[bone & (depth <= 2.0)] = HU["cortex"]
    ct[bone & (depth > 4.0)] = HU["core"]
    if noise_sd:
        ct = ct + np.random.default_rng(1).normal(0.0, noise_sd, ct.shape)
    return labels.with_array(ct.astype(np.float32))


@pytest.fixture(scope="module")
def toy():
    labels = toy_labels()
    return toy_ct(labels), labels


def test_tissue_medians_are_the_drawn_hu(toy):
    ct, labels = toy
    stats = realism.tissue_hu(ct, labels)
    assert stats["cortical"].median == HU["cortex"] and stats["cortical"].iqr == 0
    assert stats["cancellous"].median == HU["core"] and stats["cancellous"].iqr == 0
    assert stats["disc"].median == HU["disc"] and stats["disc"].n > 100
    assert stats["canal"].median == HU["canal"] and stats["canal"].n > 100
    assert stats["muscle"].median == HU["muscle"]
    assert stats["fat"].median == HU["fat"]


def test_arch_is_the_mask_behind_the_canal(toy):
    ct, labels = toy
    masks = realism.tissue_masks(ct, labels)
    expected = np.zeros(SHAPE_KJI, bool)
    for n in range(len(LEVELS)):
        k0, k1 = level_k(n)
        expected[k0:k1, RING_J[1] - WALL : RING_J[1], RING_I[0] : RING_I[1]] = True  # the back wall
    assert np.array_equal(masks["arch"], expected)
    assert realism.tissue_hu(ct, labels)["arch"].median == HU["cortex"]  # 4 mm thin: all shell


def test_disc_lies_between_bodies(toy):
    ct, labels = toy
    disc = realism.tissue_masks(ct, labels)["disc"]
    k = np.nonzero(disc.any(axis=(1, 2)))[0]
    gaps = set()
    for n in range(len(LEVELS) - 1):
        gaps |= set(range(level_k(n + 1)[1], level_k(n)[0]))
    assert set(k.tolist()) <= gaps
    _, j, i = np.nonzero(disc)
    # within DISC_RADIUS_MM (6 mm) of the body-centre line
    assert np.all(np.abs(i - 54.5) <= 6.0) and np.all(np.abs(j - 34.5) <= 6.0)


def test_shape_of_boxes(toy):
    _, labels = toy
    shapes = realism.shape_per_level(labels)
    assert sorted(shapes) == list(LEVELS)
    step = realism.LOCAL_STEP_MM
    voxels = 40 * 30 * 12 + (30 * 20 - 22 * 16) * 12
    for label in LEVELS:
        s = shapes[label]
        assert not s.at_border
        assert s.volume_ml == pytest.approx(voxels * 2.0 / 1000.0)
        assert s.body_height_mm == pytest.approx(24.0, abs=step)
        assert s.body_width_mm == pytest.approx(40.0, abs=step)
        assert s.body_depth_mm == pytest.approx(30.0, abs=step)
        assert s.canal_lr_mm == pytest.approx(22.0, abs=step)
        assert s.canal_ap_mm == pytest.approx(16.0, abs=step)
        assert s.canal_area_mm2 == pytest.approx(22 * 16, rel=0.06)
        assert s.arch_height_mm == pytest.approx(24.0, abs=step)  # the ring's back wall
        assert s.arch_reach_mm == pytest.approx(WALL, abs=step)
    assert shapes[20].disc_gap_below_mm == pytest.approx(10.0, abs=0.3)
    assert shapes[21].disc_gap_below_mm == pytest.approx(10.0, abs=0.3)
    assert math.isnan(shapes[22].disc_gap_below_mm)


def test_level_at_border_is_flagged():
    labels = toy_labels()
    cut = labels.array.copy()
    cut[level_k(0)[0] + 6 :] = 0  # keep only the lower half of the top level ...
    cut = cut[: level_k(0)[0] + 6]  # ... and end the grid there
    shapes = realism.shape_per_level(Image(cut, SPACING))
    assert shapes[20].at_border and not shapes[21].at_border


def test_noise_is_the_drawn_sd():
    labels = toy_labels()
    ct = toy_ct(labels, noise_sd=20.0)
    assert realism.noise_hu(ct, labels) == pytest.approx(20.0, rel=0.05)


def blurred_box(sigma_fine_mm: float, sigma_thick_mm: float):
    spacing = (1.0, 1.0, 2.0)
    a = np.zeros((40, 70, 70), np.uint8)
    a[10:30, 15:55, 15:55] = 20  # 40 x 40 x 40 mm
    sigma_kji = (sigma_thick_mm / 2.0, sigma_fine_mm, sigma_fine_mm)
    ct = ndi.gaussian_filter(np.where(a > 0, 1000.0, 0.0), sigma_kji)
    return Image(ct, spacing), Image(a, spacing)


def test_edge_rise_distance_of_gaussian_blur():
    """A step blurred by a Gaussian of sd sigma rises 10-90 % over 2 * 1.2816 * sigma."""
    ct, labels = blurred_box(0.8, 1.5)
    q = realism.image_quality(ct, labels, noise_region=np.zeros(ct.array.shape, bool))
    assert q.thick_axis_spacing_mm == 2.0
    assert q.n_profiles_fine > 100 and q.n_profiles_thick > 100
    assert q.edge_rise_fine_mm == pytest.approx(2.5631 * 0.8, rel=0.15)
    assert q.edge_rise_thick_mm == pytest.approx(2.5631 * 1.5, rel=0.15)
    assert math.isnan(q.noise_hu)


def test_hu_comparison_rules():
    real = realism.HUStats.of(np.arange(0.0, 401.0))  # median 200, IQR 100-300
    near = realism.HUStats.of(np.arange(20.0, 421.0))  # +20 HU
    far = realism.HUStats.of(np.arange(350.0, 751.0))  # +350 HU, IQR 450-650
    assert realism.within_target(near, real)
    assert not realism.within_target(far, real)
    assert realism.hu_distance(near, real) == pytest.approx(20.0)
    low = realism.HUStats.of(np.arange(-40.0, 41.0))  # median 0, IQR -20..20
    # 30 HU off is more than 15 % of 0 but within the 40 HU floor; IQR 12.5..47.5 overlaps.
    assert realism.within_target(realism.HUStats.of(np.arange(-5.0, 66.0)), low)
    assert not realism.within_target(realism.HUStats.of(np.arange(5.0, 86.0)), low)


def test_oblique_grid_runs(tiny_ct, tiny_labels):
    stats = realism.tissue_hu(tiny_ct, tiny_labels)
    assert stats["cortical"].median == 700.0
    with pytest.raises(ValueError, match="one grid"):
        realism.tissue_hu(tiny_ct, Image(tiny_labels.array))


def test_large_grid_gives_the_same_masks(toy):
    """Masks are computed in a box around the spine: a grid padded far beyond it (80 mm of
    muscle each side) gives the same voxels, shifted by the padding."""
    ct, labels = toy
    pad = ((0, 0), (0, 0), (80, 80))
    big_labels = Image(np.pad(labels.array, pad), SPACING, (-135.0, -40.0, 10.0))
    big_ct = big_labels.with_array(np.pad(ct.array, pad, constant_values=HU["muscle"]))
    small = realism.tissue_masks(ct, labels)
    big = realism.tissue_masks(big_ct, big_labels)
    for name in realism.TISSUES:
        np.testing.assert_array_equal(big[name][:, :, 80:-80], small[name], err_msg=name)
        assert big[name].sum() == small[name].sum()


def test_shape_on_an_oblique_grid():
    """The same toy spine resampled onto a grid rotated 20 deg about L and 15 deg about S
    (1 x 1 x 2 mm, like the real case's oblique crop) keeps its figures within one thick
    voxel (2 mm): nearest-neighbour resampling makes the tilted end plates stairs."""
    from SpineLabelerLib.image import index_to_lps, resample_onto

    labels = toy_labels()
    a, b = np.deg2rad(20.0), np.deg2rad(15.0)
    rot_l = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rot_s = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    direction = rot_s @ rot_l
    size_ijk = np.array([140, 140, 70])
    centre = index_to_lps(labels, (np.array(labels.size_ijk) - 1) / 2.0)[0]
    origin = centre - direction @ ((size_ijk - 1) * np.array(SPACING) / 2.0)
    grid = Image(np.zeros(size_ijk[::-1], np.uint8), SPACING, tuple(origin), direction)
    oblique = resample_onto(labels, grid, nearest=True)
    shapes = realism.shape_per_level(oblique)
    for label in LEVELS:
        s = shapes[label]
        assert s.body_height_mm == pytest.approx(24.0, abs=2.0)
        assert s.body_width_mm == pytest.approx(40.0, abs=2.0)
        assert s.body_depth_mm == pytest.approx(30.0, abs=2.0)
        assert s.canal_lr_mm == pytest.approx(22.0, abs=2.0)
        assert s.volume_ml == pytest.approx(shapes[LEVELS[0]].volume_ml, rel=0.05)
    assert shapes[20].disc_gap_below_mm == pytest.approx(10.0, abs=2.0)


def test_edge_layers_read_each_voxel_layer_across_the_mask_surface():
    mask = np.zeros((30, 32, 34), bool)
    mask[6:24, 7:25, 8:26] = True
    layer2 = ndi.binary_erosion(mask)
    core = ndi.binary_erosion(layer2)
    halo = ndi.binary_dilation(mask) & ~mask
    ct = np.zeros(mask.shape, np.float32)
    ct[halo], ct[mask], ct[layer2], ct[core] = 50.0, 1000.0, 300.0, 100.0
    labels = Image(mask.astype(np.uint8) * 20, (1.0, 1.0, 2.0))
    layers = realism.edge_layers(labels.with_array(ct), labels, n_inside=4, n_outside=2)
    assert layers.inside == (1000.0, 300.0, 100.0, 100.0)
    assert layers.outside == (50.0, 0.0)
