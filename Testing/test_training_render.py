"""training.render (label map -> CT-like image) and the sources that use it (training.data,
loop.build_sources). Synthetic masks: a column of three lumbar-like vertebrae (body, arch
round a canal, spinous process) at 1 x 1 x 2 mm; the slow test renders a real VerSe mask
(VerSe, CC BY-SA 4.0: Loeffler et al. 2020, Sekuboyina et al. 2021)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineLabelerLib.image import Image, to_sitk
from SpineLabelerLib.preprocess import physical_bounds_lps
from SpineLabelerLib.training import data
from SpineLabelerLib.training.loop import TrainConfig, build_sources
from SpineLabelerLib.training.render import RenderSettings, draw_scan, render

REALDATA = Path("/work/shared/realdata")
FAST = RenderSettings(margin_mm=(-5.0, 25.0), max_output_voxels=1_500_000)
SPACING = (1.0, 1.0, 2.0)


def column(labels=(20, 21, 22)) -> Image:
    """Vertebrae stacked along k (Superior; the first label on top), PIR-like spacing."""
    kk, jj, ii = np.mgrid[0:60, 0:70, 0:60]
    lab = np.zeros(kk.shape, np.uint8)
    for n, label in enumerate(labels):
        k0 = 42 - 18 * n  # 2 mm slices: 36 mm apart, bodies 24 mm high
        rows = (kk >= k0) & (kk < k0 + 12)
        body = ((ii - 30) ** 2 + (jj - 22) ** 2 <= 12**2) & rows
        ring = (ii - 30) ** 2 + (jj - 42) ** 2
        arch = (ring <= 10**2) & (ring >= 6**2) & rows & (kk >= k0 + 3)
        spinous = (abs(ii - 30) <= 2) & (jj >= 50) & (jj < 64) & rows & (kk >= k0 + 3)
        lab[body | arch | spinous] = label
    return Image(lab, SPACING, (-30.0, -20.0, -60.0))


def mean_hu_inside_and_around(rendered) -> tuple[float, float]:
    bone = rendered.labels.array > 0
    around = ndimage.binary_dilation(bone, iterations=4) & ~ndimage.binary_dilation(bone)
    ct = rendered.ct.array.astype(float)
    return float(ct[bone].mean()), float(ct[around].mean())


def test_same_seed_same_image_and_labels():
    a = render(column(), np.random.default_rng(7), settings=FAST)
    b = render(column(), np.random.default_rng(7), settings=FAST)
    assert a.ct.same_grid(b.ct) and a.labels.same_grid(b.labels)
    np.testing.assert_array_equal(a.ct.array, b.ct.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)


def test_different_seeds_draw_different_hu_spacing_and_orientation():
    cases = [render(column(), np.random.default_rng(s), settings=FAST) for s in range(4)]
    assert len({c.ct.spacing_mm for c in cases}) == 4
    assert len({tuple(np.round(c.ct.direction, 3).ravel()) for c in cases}) == 4
    bone_hu = [mean_hu_inside_and_around(c)[0] for c in cases]
    assert np.ptp(bone_hu) > 30


def test_labels_lie_on_the_rendered_bone():
    for seed in range(6):
        rendered = render(column(), np.random.default_rng(seed), settings=FAST)
        assert rendered.ct.same_grid(rendered.labels)
        assert rendered.ct.array.dtype == np.int16
        assert set(np.unique(rendered.labels.array)) <= {0, 20, 21, 22}
        inside, around = mean_hu_inside_and_around(rendered)
        assert inside > around + 100, (seed, inside, around)


def test_drawn_scan_is_the_output_geometry():
    for seed in range(6):
        scan = draw_scan(np.random.default_rng(seed), FAST)  # render draws the scan first
        out = render(column(), np.random.default_rng(seed), settings=FAST).ct
        np.testing.assert_allclose(out.direction, scan.direction)
        assert out.spacing_mm[2] == pytest.approx(scan.spacing_mm[2])
        if out.array.size < 0.9 * FAST.max_output_voxels:  # else coarsened in-plane
            np.testing.assert_allclose(out.spacing_mm, scan.spacing_mm)
        assert int(np.argmax(np.abs(out.direction[:, 2]))) == scan.slice_axis_lps
        axes = np.round(out.direction)  # the signed axis permutation under the tilt
        cos = (np.trace(out.direction @ axes.T) - 1) / 2
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) == pytest.approx(scan.tilt_deg, abs=0.01)
        assert 0.3 <= scan.spacing_mm[0] == scan.spacing_mm[1] <= 1.0
        assert 1.0 <= scan.spacing_mm[2] <= 5.0


def test_slice_axes_orientations_and_tilts_all_occur():
    scans = [draw_scan(np.random.default_rng(s)) for s in range(60)]
    assert {s.slice_axis_lps for s in scans} == {0, 1, 2}
    assert any(s.tilt_deg == 0 for s in scans) and any(s.tilt_deg > 3 for s in scans)
    assert len({tuple(np.sign(np.round(s.direction)).ravel()) for s in scans}) > 10


def test_large_output_is_coarsened_in_plane_only():
    settings = RenderSettings(margin_mm=(20.0, 25.0), max_output_voxels=50_000)
    rendered = render(column(), np.random.default_rng(3), settings=settings)
    drawn = draw_scan(np.random.default_rng(3), settings)
    assert rendered.ct.array.size <= 50_000 * 1.1
    assert rendered.ct.spacing_mm[2] == pytest.approx(drawn.spacing_mm[2])
    assert rendered.ct.spacing_mm[0] > drawn.spacing_mm[0]


def test_crops_cut_the_column_sometimes():
    seen = [
        set(
            np.unique(
                render(
                    column((1, 2, 3, 4, 5)), np.random.default_rng(s), settings=FAST
                ).labels.array
            )
        )
        - {0}
        for s in range(6)
    ]
    assert any(len(s) < 5 for s in seen) and all(len(s) >= 3 for s in seen)


def test_a_map_without_vertebrae_is_refused():
    empty = Image(np.zeros((10, 10, 10), np.uint8))
    with pytest.raises(ValueError, match="no vertebra"):
        render(empty, np.random.default_rng(0))


def test_tissue_map_gives_the_surroundings():
    from SpineLabelerLib.phantom import tissues as T

    labels = column()
    tissues = np.full(labels.array.shape, T.MUSCLE, np.uint8)
    tissues[:, :, :26] = T.LUNG  # beside the column, whatever the crop
    rendered = render(labels, np.random.default_rng(1), labels.with_array(tissues), FAST)
    inside, around = mean_hu_inside_and_around(rendered)
    assert inside > around + 50
    assert rendered.ct.array.min() < -500  # the lung
    untilted = next(s for s in range(20) if draw_scan(np.random.default_rng(s), FAST).tilt_deg == 0)
    out = render(labels, np.random.default_rng(untilted), labels.with_array(tissues), FAST).ct
    lo, hi = physical_bounds_lps(out)
    map_lo, map_hi = physical_bounds_lps(labels)
    assert np.all(lo >= map_lo - 1.0) and np.all(hi <= map_hi + 1.0)  # nothing beyond the map


# ----------------------------------------------------------------------------- sources


def write(image: Image, path: Path, dtype=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.array if dtype is None else image.array.astype(dtype)
    sitk.WriteImage(to_sitk(image.with_array(array)), str(path))
    return path


def test_float_mask_is_read_as_labels_and_rendered_the_same_per_index(tmp_path):
    path = write(column(), tmp_path / "sub-x01_seg-vert_msk.nii.gz", np.float32)
    mask = data.LabelMapFile(path)
    labels, tissues = mask.load()
    assert mask.name == "sub-x01" and tissues is None
    assert labels.array.dtype == np.uint8
    assert set(np.unique(labels.array)) == {0, 20, 21, 22}
    source = data.RenderedMaskSource([mask], seeds=[5, 6], settings={"margin_mm": [-5.0, 25.0]})
    again = data.RenderedMaskSource([mask], seeds=[5, 6], settings={"margin_mm": [-5.0, 25.0]})
    np.testing.assert_array_equal(source.load(1)[0].array, again.load(1)[0].array)
    assert source.key(1) == again.key(1) != source.key(0)
    assert source.load(0)[0].spacing_mm != source.load(1)[0].spacing_mm


def real_folder(root: Path) -> Path:
    """VerSe layout: CT + mask for sub-verse001 and sub-verse002, a mask alone for sub-gl003."""
    for n, name in enumerate(("sub-verse001", "sub-verse002")):
        rendered = render(column(), np.random.default_rng(n), settings=FAST)
        write(rendered.ct, root / name / f"{name}_ct.nii.gz")
        write(rendered.labels, root / name / f"{name}_seg-vert_msk.nii.gz")
    write(column((5, 6, 7)), root / "masks_only" / "sub-gl003_dir-ax_seg-vert_msk.nii.gz")
    return root


def mix_config(root: Path, **changes) -> TrainConfig:
    raw = {
        "spacing_mm": 1.0,
        "size_kji": [16, 16, 16],
        "net": {"base_channels": 4, "depth": 2, "convs_per_level": 1},
        "train_cases": 3,
        "mix": {"phantom": 1, "rendered": 1, "rendered_phantom": 1, "real_ct": 1},
        "rendered_masks": [str(root)],
        "rendered_phantoms": 2,
        "rendered_cases": 9,
        "real_ct": [str(root)],
        "holdout_real": ["verse001"],
    }
    raw.update(changes)
    return TrainConfig.from_dict(raw)


def test_held_out_case_never_appears_in_the_sources(tmp_path):
    root = real_folder(tmp_path / "real")
    train, validation = build_sources(mix_config(root), None)
    keys = {train.key(n) for n in range(len(train))} | {
        validation.key(n) for n in range(len(validation))
    }
    assert not [k for k in keys if "verse001" in k]
    assert [k for k in keys if k.startswith("verse-") and k.endswith("sub-verse002")]
    assert {k.split("-")[2] for k in keys if k.startswith("rendered-")} >= {"sub", "phantom"}
    assert any("sub-gl003" in k for k in keys) and any("sub-verse002" in k for k in keys)
    held = mix_config(root, holdout_real=["verse001", "gl003"])
    keys = {build_sources(held, None)[0].key(n) for n in range(1000)}
    assert not [k for k in keys if "verse001" in k or "gl003" in k]


def test_held_out_name_that_matches_nothing_is_refused(tmp_path):
    root = real_folder(tmp_path / "real")
    with pytest.raises(data.SourceError, match="verse0001"):
        build_sources(mix_config(root, holdout_real=["verse0001"]), None)
    with pytest.raises(data.SourceError, match="--data"):
        build_sources(mix_config(root), root)


def test_mix_draws_each_source_by_its_weight(tmp_path):
    root = real_folder(tmp_path / "real")
    cfg = mix_config(root, mix={"phantom": 0.5, "rendered": 0.3, "real_ct": 0.2})
    train, _ = build_sources(cfg, None)
    kinds = [train.key(n).split("-")[0] for n in range(len(train))]
    shares = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
    assert shares == pytest.approx({"phantom": 0.5, "rendered": 0.3, "verse": 0.2}, abs=0.01)


@pytest.mark.parametrize(
    "changes",
    [
        {"mix": {"phantoms": 1}},
        {"mix": {"rendered": 1}, "rendered_masks": []},
        {"mix": {"real_ct": 1}, "real_ct": []},
        {"mix": {"phantom": 0}},
        {"render": {"slice_thickness": 3}},
        {"holdout_real": "verse005"},
    ],
)
def test_unusable_mix_settings_are_refused(tmp_path, changes):
    with pytest.raises(ValueError):
        mix_config(tmp_path, **changes)


def test_shipped_real_configs_build_and_hold_out_their_case():
    if not REALDATA.is_dir():
        pytest.skip("no /work/shared/realdata here")
    root = Path(__file__).parent.parent / "configs"
    for name in ("stage2_real_cpu.json", "stage2_real_gpu.json"):
        cfg = TrainConfig.from_file(root / name)
        assert json.loads((root / name).read_text())["holdout_real"] == cfg.holdout_real
        train, _ = build_sources(cfg, None)
        keys = {train.key(n) for n in range(len(train))}
        for held in cfg.holdout_real:
            assert not [k for k in keys if held in k]


@pytest.mark.slow
def test_a_real_float_mask_renders_as_bone_in_tissue():
    path = REALDATA / "masks_only" / "sub-gl017_seg-vert_msk.nii.gz"
    if not path.is_file():
        pytest.skip("no real masks here")
    labels, _ = data.LabelMapFile(path).load()
    rendered = render(labels, np.random.default_rng(0))
    inside, around = mean_hu_inside_and_around(rendered)
    assert inside > around + 100
    assert set(np.unique(rendered.labels.array)) - {0} <= set(range(1, 13))


def test_a_run_names_the_real_cases_it_trained_on_and_never_the_held_out_one(tmp_path):
    from SpineLabelerLib.training.real_uses import PHANTOM_HU_USE, real_case_uses

    root = real_folder(tmp_path / "real")
    uses = real_case_uses(mix_config(root))
    trained = sorted(u.case for u in uses if u.role == "trained")
    assert trained == ["sub-gl003_dir-ax", "sub-verse002", "sub-verse002"]
    assert {u.what for u in uses if u.case == "sub-verse002"} == {
        "its expert mask rendered as CT",
        "its CT and expert mask",
    }
    assert PHANTOM_HU_USE in uses and not [u for u in uses if "verse001" in u.case]
    no_masks = real_case_uses(mix_config(root, mix={"phantom": 0, "real_ct": 1}))
    assert [u.case for u in no_masks] == ["sub-verse002"]  # no phantoms drawn: no HU match
