"""Phantom generator: determinism, label order, ribs, tissue HU, spacing between
neighbours, leg cases, centroids, crops and the transitional variants (issue 3).

Cases are small (3 mm grids or 1 mm crops) so the module runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import index_to_lps, lps_to_index
from SpineLabelerLib.phantom import FOVS, VARIANTS, generate_case
from SpineLabelerLib.phantom import tissues as T
from SpineLabelerLib.phantom.body import build_body
from SpineLabelerLib.phantom.layout import build_layout
from SpineLabelerLib.phantom.scan import MAX_VOXELS, draw_scan, fov_z_range
from SpineLabelerLib.phantom.subject import draw_subject


@pytest.fixture(scope="module")
def whole3():
    return generate_case(11, "whole", "normal", spacing_mm=(3.0, 3.0, 3.0), physics=False)


def _positions_along_spine(case) -> list[int]:
    """Labels ordered from the top of the patient (largest S coordinate) down."""
    return [lab for lab, _ in sorted(case.centroids_lps.items(), key=lambda kv: -kv[1][2])]


def test_same_seed_same_arrays_other_seed_differs():
    a = generate_case(5, "lumbar", spacing_mm=(3.0, 3.0, 3.0))
    b = generate_case(5, "lumbar", spacing_mm=(3.0, 3.0, 3.0))
    c = generate_case(6, "lumbar", spacing_mm=(3.0, 3.0, 3.0))
    assert np.array_equal(a.ct.array, b.ct.array) and np.array_equal(a.labels.array, b.labels.array)
    assert a.ct.origin_lps == b.ct.origin_lps and a.meta == b.meta
    assert a.ct.array.shape != c.ct.array.shape or not np.array_equal(a.ct.array, c.ct.array)


def test_whole_spine_holds_c1_to_l5_in_order(whole3):
    order = _positions_along_spine(whole3)
    assert order == list(range(1, 25)), order
    assert whole3.labels.array.dtype == np.uint8 and whole3.ct.array.dtype == np.int16
    assert whole3.meta["partial_labels"] == []
    for other in (whole3.labels, whole3.tissues, whole3.ribs):
        assert other.same_grid(whole3.ct)


@pytest.mark.parametrize(("variant", "last", "count"), [("L6", 25, 25), ("sacralized-L5", 23, 23)])
def test_lumbar_count_follows_the_variant(variant, last, count):
    case = generate_case(21, "whole", variant, spacing_mm=(3.0, 3.0, 3.0), physics=False)
    order = _positions_along_spine(case)
    assert len(order) == count and order[-1] == last and order == sorted(order)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ribs_touch_exactly_the_rib_bearing_vertebrae(variant):
    case = generate_case(31, "whole", variant, spacing_mm=(3.0, 3.0, 3.0), physics=False)
    expected = {
        "normal": set(range(8, 20)),
        "L6": set(range(8, 20)),
        "sacralized-L5": set(range(8, 20)),
        "11-ribs": set(range(8, 19)),
        "13-ribs": set(range(8, 21)),
        "cervical-rib": set(range(7, 20)),
    }[variant]
    owners = set(np.unique(case.ribs.array)) - {0}
    assert owners == expected
    assert set(case.meta["rib_labels"]) == expected
    labels, ribs = case.labels.array, case.ribs.array
    for owner in owners:
        near = ndimage.binary_dilation(labels == owner, iterations=2)
        assert (near & (ribs == owner)).any(), f"rib of {owner} does not reach its vertebra"
        # a rib is not part of any vertebra's label
        assert not ((ribs == owner) & (labels > 0)).any()
    # both sides of every rib-bearing level
    for owner in owners:
        centre_x = case.centroids_lps[owner][0]
        xs = index_to_lps(case.ribs, np.argwhere(ribs == owner)[:, ::-1].astype(float))[:, 0]
        assert (xs < centre_x - 20).any() and (xs > centre_x + 20).any()


def test_tissue_hu_in_range_without_physics(whole3):
    ct, tis = whole3.ct.array.astype(float), whole3.tissues.array
    ranges = {
        T.FAT: (-130, -50), T.MUSCLE: (30, 70), T.LUNG: (-910, -700), T.DISC: (60, 120),
        T.CANCELLOUS: (40, 360), T.CORTEX: (400, 1900),
    }  # fmt: skip
    for cls, (lo, hi) in ranges.items():
        inside = (
            ndimage.binary_erosion(tis == cls) if cls in (T.FAT, T.MUSCLE, T.LUNG) else tis == cls
        )
        assert inside.sum() > 20, T.TISSUE_NAMES[cls]
        med = float(np.median(ct[inside]))
        assert lo <= med <= hi, (T.TISSUE_NAMES[cls], med)


def test_physics_adds_noise_in_the_drawn_range():
    case = generate_case(12, "abdomen", spacing_mm=(2.0, 2.0, 2.0))
    ct, tis = case.ct.array.astype(float), case.tissues.array
    muscle = ndimage.binary_erosion(tis == T.MUSCLE, iterations=3)
    drawn = case.meta["physics"]["noise_hu"]
    assert 10 <= drawn <= 55
    assert 0.5 * drawn < ct[muscle].std() < 2.0 * drawn + 10


@pytest.mark.parametrize(("upper", "region"), [(4, "cervical"), (13, "thoracic"), (22, "lumbar")])
def test_neighbours_never_overlap_but_nearly_touch(upper, region):
    """At 1 mm, the closest voxel centres of two neighbours lie a joint space apart."""
    case = generate_case(
        41,
        "whole",
        spacing_mm=(1.0, 1.0, 1.0),
        physics=False,
        crop_around_label=upper,
        roi_size_mm=(110.0, 110.0, 90.0),
    )
    lab = case.labels.array
    a, b = lab == upper, lab == upper + 1
    assert a.sum() > 500 and b.sum() > 500
    dist_to_a = ndimage.distance_transform_edt(~a, sampling=case.labels.spacing_mm[::-1])
    gap = float(dist_to_a[b].min())
    assert case.meta["joint_mm"] - 1e-6 <= gap <= 4.0, (region, gap)


def test_leg_cases_hold_no_vertebra():
    case = generate_case(7, "leg", spacing_mm=(3.0, 3.0, 3.0))
    assert not case.labels.array.any() and case.centroids_lps == {}
    assert (case.tissues.array == T.BONE_CORTEX).any()  # femurs or at least bone is there


def test_centroids_are_the_labelmaps_centres_of_mass(whole3):
    for lab, c in whole3.centroids_lps.items():
        ijk = np.argwhere(whole3.labels.array == lab)[:, ::-1].mean(axis=0)
        assert np.allclose(index_to_lps(whole3.labels, ijk)[0], c, atol=1e-6)


def test_fov_cuts_are_reported_and_touch_the_border():
    case = generate_case(3, "lumbar", spacing_mm=(2.0, 2.0, 2.0), physics=False)
    lab = case.labels.array
    assert case.meta["partial_labels"], "a lumbar FOV cuts the top vertebra"
    for p in case.meta["partial_labels"]:
        border = np.concatenate([lab[0].ravel(), lab[-1].ravel()])
        assert p in border
    names = case.meta["names"]
    assert "L5" in names and "C7" not in names


def test_crop_is_the_same_patient_as_the_full_case():
    full = generate_case(
        8,
        "whole",
        spacing_mm=(1.0, 1.0, 1.0),
        physics=False,
        orientation="axial",
        crop_around_label=20,
        roi_size_mm=(160.0, 160.0, 200.0),
    )
    crop = generate_case(
        8,
        "whole",
        spacing_mm=(1.0, 1.0, 1.0),
        physics=False,
        crop_around_label=20,
        roi_size_mm=(140.0, 170.0, 90.0),
    )
    assert 20 in crop.centroids_lps and 20 not in crop.meta["partial_labels"]
    assert np.linalg.norm(full.centroids_lps[20] - crop.centroids_lps[20]) < 1.0
    centre_idx = lps_to_index(crop.labels, crop.centroids_lps[20])[0]
    # the crop is centred on the body; the centroid lies a little behind it (arch, spinous)
    offset = centre_idx - (np.array(crop.labels.size_ijk) - 1) / 2
    assert abs(offset[0]) < 5 and 0 < offset[1] < 25 and abs(offset[2]) < 5, offset


def test_metal_probability_gives_screws_without_changing_the_anatomy():
    """A training run may ask for more screws; the rest of each subject stays as drawn."""
    for seed in range(12):
        plain = draw_subject(np.random.default_rng(seed))
        always = draw_subject(np.random.default_rng(seed), metal_probability=1.0)
        never = draw_subject(np.random.default_rng(seed), metal_probability=0.0)
        assert 2 <= len(always.metal_levels) <= 3 and never.metal_levels == []
        assert all(label >= 17 for label in always.metal_levels)  # T10 and below
        assert always.levels == plain.levels and always.scoliosis == plain.scoliosis


def test_clinical_scan_draws_stay_in_clinical_ranges():
    """Spacing and orientation draws over many seeds (geometry only, nothing painted)."""
    rng = np.random.default_rng(0)
    subject = draw_subject(rng)
    layout = build_layout(subject, rng)
    body = build_body(subject, layout, rng)
    kinds = set()
    for fov in FOVS:
        for _ in range(20):
            geo = draw_scan(rng, fov, layout, body, None, None, None)
            sp = sorted(geo.spacing_mm)
            assert 0.3 <= sp[0] <= 1.0 + 1e-6 and 0.5 <= sp[2] <= 3.0 + 1e-6, (fov, sp)
            assert np.prod(geo.size_ijk) <= 1.5 * MAX_VOXELS
            assert np.allclose(geo.direction.T @ geo.direction, np.eye(3), atol=1e-6)
            kinds.add(geo.orientation)
    assert {"axial", "flipped", "permuted", "oblique"} <= kinds


def test_a_lumbar_crop_is_tight_and_cuts_the_top_of_the_sacrum():
    rng = np.random.default_rng(1)
    subject = draw_subject(rng)
    layout = build_layout(subject, rng)
    body = build_body(subject, layout, rng)
    s1 = next(p for p in layout.sacrum if p.name == "S1")
    l1 = next(p for p in layout.poses if p.name == "L1")
    for _ in range(20):
        bottom, top = fov_z_range("lumbar-crop", layout, body, rng)
        assert s1.frame.origin[2] <= bottom <= s1.frame.origin[2] + 0.5 * s1.height_mm
        assert top >= l1.frame.origin[2] - 0.5 * l1.height_mm
        assert draw_scan(rng, "lumbar-crop", layout, body, None, None, None).tight


@pytest.mark.slow
def test_clinical_case_has_the_drawn_geometry():
    case = generate_case(2, "lumbar")
    assert case.ct.spacing_mm == tuple(case.meta["spacing_mm"])
    assert case.ct.size_ijk == tuple(case.meta["size_ijk"])
    assert np.allclose(case.ct.direction, case.meta["direction"], atol=1e-6)


def test_float_hu_and_bad_input():
    case = generate_case(2, "lumbar", spacing_mm=(3.0, 3.0, 3.0), float_hu=True)
    assert case.ct.array.dtype == np.float32
    with pytest.raises(ValueError, match="field of view"):
        generate_case(1, "knee")
    with pytest.raises(ValueError, match="variant"):
        generate_case(1, "whole", "T13")
    with pytest.raises(ValueError, match="not in"):
        generate_case(1, "whole", "normal", crop_around_label=25)
    assert set(FOVS) == {"whole", "head-neck", "chest", "abdomen", "lumbar", "lumbar-crop", "leg"}
    assert anatomy.vertebra(25).name == "L6"


def test_flipped_permuted_and_oblique_grids_hold_the_same_patient():
    """The same seed drawn on other axes puts every whole vertebra at the same LPS place."""
    kw = dict(spacing_mm=(2.0, 2.5, 3.0), physics=False)  # anisotropic: a wrong axis shows
    axial = generate_case(17, "lumbar", orientation="axial", **kw)
    seen = set()
    for seed in range(17, 60):
        if seed != 17:
            axial = generate_case(seed, "lumbar", orientation="axial", **kw)
        other = generate_case(seed, "lumbar", orientation="random", **kw)
        kind = other.meta["orientation"]
        if kind == "axial" or kind in seen:
            continue
        seen.add(kind)
        assert np.allclose(other.ct.direction.T @ other.ct.direction, np.eye(3), atol=1e-6)
        whole = (
            set(axial.centroids_lps)
            - set(axial.meta["partial_labels"])
            - set(other.meta["partial_labels"])
        )
        assert whole, kind
        for lab in whole:
            tol = 1.5 if kind != "oblique" else 2.5  # voxelized on other axes / resampled
            assert np.linalg.norm(axial.centroids_lps[lab] - other.centroids_lps[lab]) < tol, (
                kind,
                lab,
            )
        if seen >= {"flipped", "permuted", "oblique"}:
            break
    assert seen >= {"flipped", "permuted", "oblique"}


def test_progress_is_reported_and_cancel_stops_the_job():
    from SpineLabelerLib.progress import CancelFlag, Cancelled

    seen = []
    generate_case(1, "lumbar", spacing_mm=(3.0, 3.0, 3.0), progress=lambda s, f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    flag = CancelFlag()
    flag.set()
    with pytest.raises(Cancelled):
        generate_case(1, "lumbar", spacing_mm=(3.0, 3.0, 3.0), cancel=flag)


def test_preview_of_a_scoliotic_phantom_shows_every_vertebra_in_both_views():
    """Seed 8 draws a 55 degree thoracic scoliosis: the curved overview views still show
    every vertebra in view (a flat mid-coronal plane shows 21 of 24), and the preview puts the
    axial panels under the overview."""
    from SpineLabelerLib.io.overview import render_overview
    from SpineLabelerLib.phantom.preview import AXIAL_PX, preview_image

    case = generate_case(8, "whole", spacing_mm=(3.0, 3.0, 3.0), physics=False)
    assert case.meta["scoliosis"]["cobb_deg"] > 50
    overview, layout = render_overview(case.ct, case.labels, case.centroids_lps)
    present = tuple(sorted(case.centroids_lps))
    assert layout.labels_shown["sagittal"] == present == layout.labels_shown["coronal"]
    assert set(layout.name_boxes["coronal"]) == set(present)
    picture = preview_image(case.ct, case.labels, case.centroids_lps)
    assert picture.height == overview.height + 8 + AXIAL_PX
    assert np.array_equal(
        np.asarray(picture)[: overview.height, : overview.width], np.asarray(overview)
    )


def test_a_screwed_case_and_its_twin_without_screws_share_their_anatomy():
    """``screws=False`` leaves out the metal once drawn: the same vertebrae, voxel for voxel,
    and no metal (benchmarks/metal.py compares the two)."""
    kw = dict(metal_probability=1.0, crop_around_label=22, roi_size_mm=(96.0, 96.0, 72.0))
    screwed = generate_case(3, "lumbar", "normal", (1.0, 1.0, 1.0), **kw)
    twin = generate_case(3, "lumbar", "normal", (1.0, 1.0, 1.0), screws=False, **kw)
    assert screwed.meta["metal_labels"] and twin.meta["metal_labels"] == []
    assert np.array_equal(screwed.labels.array, twin.labels.array)
    assert (screwed.tissues.array == T.METAL).any() and not (twin.tissues.array == T.METAL).any()
    assert twin.ct.array.max() < 2500 <= screwed.ct.array.max()
