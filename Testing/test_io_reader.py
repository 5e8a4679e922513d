"""read_ct / read_labelmap: every format keeps the physical position of every voxel, and
every refusal says what it saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _dicom_series import write_ct_series
from conftest import MARKED_LABEL, MARKED_VOXEL_IJK

from SpineLabelerLib.image import Image, index_to_lps, to_sitk
from SpineLabelerLib.io import CTInputError, read_ct, read_labelmap
from SpineLabelerLib.io.checks import check_layout


def marked_position_lps(labels: Image) -> np.ndarray:
    """LPS mm of the one voxel carrying MARKED_LABEL."""
    kji = np.argwhere(labels.array == MARKED_LABEL)
    assert len(kji) == 1
    return index_to_lps(labels, kji[0][::-1].astype(float))[0]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_ct_round_trip_keeps_voxels_and_oblique_flipped_geometry(tmp_path, tiny_ct, suffix):
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(to_sitk(tiny_ct), str(path))
    back = read_ct(path)
    assert back.same_grid(tiny_ct, tol=1e-4)
    assert np.linalg.det(back.direction) == pytest.approx(-1.0, abs=1e-6)
    np.testing.assert_array_equal(back.array, tiny_ct.array)


def test_float_hu_is_accepted(tmp_path, tiny_ct):
    path = tmp_path / "float.nii.gz"
    sitk.WriteImage(to_sitk(tiny_ct.with_array(tiny_ct.array.astype(np.float32) + 0.25)), str(path))
    back = read_ct(path)
    assert back.array.dtype == np.float32
    assert float(back.array.min()) == pytest.approx(-999.75)


def test_labelmap_round_trip_keeps_marked_voxel_position(tmp_path, tiny_ct, tiny_labels):
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(to_sitk(tiny_labels), str(path))
    back = read_labelmap(path, reference=tiny_ct)
    assert back.same_grid(tiny_ct, tol=0)  # exact reference geometry adopted
    np.testing.assert_allclose(
        marked_position_lps(back), marked_position_lps(tiny_labels), atol=1e-4
    )


def test_labelmap_on_other_grid_is_resampled_onto_reference(tmp_path, tiny_labels):
    shifted = Image(
        tiny_labels.array,
        tiny_labels.spacing_mm,
        tuple(np.add(tiny_labels.origin_lps, 0.01)),
        tiny_labels.direction,
    )
    path = tmp_path / "labels.nrrd"
    sitk.WriteImage(to_sitk(shifted), str(path))
    back = read_labelmap(path, reference=tiny_labels)
    assert back.same_grid(tiny_labels, tol=0)
    np.testing.assert_array_equal(back.array, tiny_labels.array)  # 0.01 mm shift: same voxels


def test_float_labelmap_with_fractions_is_refused(tmp_path, tiny_labels):
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(to_sitk(tiny_labels.with_array(tiny_labels.array * 0.5)), str(path))
    with pytest.raises(CTInputError, match="whole numbers"):
        read_labelmap(path)


def test_dicom_folder_picks_the_largest_series_and_says_so(tmp_path, tiny_ct):
    marked = tiny_ct.array.copy()
    i, j, k = MARKED_VOXEL_IJK
    marked[k, j, i] = 1234  # a bright voxel to find again in the read-back volume
    ct = tiny_ct.with_array(marked)
    write_ct_series(ct, tmp_path / "dicom", series_uid="1.2.826.0.1.3680043.2.1125.101")
    scout = ct.with_array(ct.array)
    write_ct_series(
        scout,
        tmp_path / "dicom" / "scout",
        series_uid="1.2.826.0.1.3680043.2.1125.202",
        drop_slices=[*range(3), *range(12, 16)],
    )
    notes: list[str] = []
    back = read_ct(tmp_path / "dicom", notes)
    assert back.same_grid(ct, tol=1e-6)
    assert len(notes) == 1 and "2 DICOM series" in notes[0]
    assert "using 1.2.826.0.1.3680043.2.1125.101 (16 slices" in notes[0]
    np.testing.assert_array_equal(back.array, ct.array)
    np.testing.assert_allclose(
        marked_position_lps(labels_like(back)), marked_position_lps(labels_like(ct)), atol=1e-4
    )
    # One file of the small series reads that series.
    one = sorted((tmp_path / "dicom" / "scout").glob("*.dcm"))[0]
    assert read_ct(one).size_ijk == (24, 20, 9)


def labels_like(ct: Image) -> Image:
    """The bright voxel of ``ct`` as MARKED_LABEL on its grid."""
    return ct.with_array(np.where(ct.array == 1234, MARKED_LABEL, 0).astype(np.uint8))


# ---- refusals: each says what it saw ------------------------------------------------


def write(path: Path, array: np.ndarray, spacing=None, is_vector=False) -> Path:
    img = sitk.GetImageFromArray(array, isVector=is_vector)
    if spacing is not None:
        img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def ct_like(shape=(16, 20, 24), dtype=np.int16) -> np.ndarray:
    array = np.full(shape, -1000, dtype)
    array[..., 4:-4] = 300
    return array


def test_refuses_missing_corrupt_and_unknown_files(tmp_path):
    with pytest.raises(CTInputError, match="no such file"):
        read_ct(tmp_path / "nothing.nii.gz")
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all")
    with pytest.raises(CTInputError, match="cannot read this file"):
        read_ct(bad)
    other = tmp_path / "scan.jpg"
    other.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(CTInputError, match="unsupported file type .jpg"):
        read_ct(other)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CTInputError, match="no DICOM series"):
        read_ct(tmp_path / "empty")


def test_refuses_2d_single_slice_and_rgb(tmp_path):
    with pytest.raises(CTInputError, match=r"a 2D image \(24 x 20 voxels\)"):
        read_ct(write(tmp_path / "flat.nii.gz", ct_like()[0]))
    with pytest.raises(CTInputError, match=r"single slice \(24 x 20 x 1 voxels\)"):
        read_ct(write(tmp_path / "one.nrrd", ct_like()[:1]))
    rgb = np.zeros((16, 20, 24, 3), np.uint8)
    with pytest.raises(CTInputError, match="vector/RGB image with 3 components"):
        read_ct(write(tmp_path / "rgb.mha", rgb, is_vector=True))


def test_refuses_nan_spacing_and_too_few_voxels(tmp_path):
    array = ct_like(dtype=np.float32)
    array[3, 4, 5] = np.nan
    array[3, 4, 6] = np.inf
    with pytest.raises(CTInputError, match="2 voxels are NaN or infinite"):
        read_ct(write(tmp_path / "nan.mha", array))
    # ITK's NIfTI reader turns NaN/inf into 0; the raw bytes are checked for them.
    for name in ("nan.nii", "nan.nii.gz"):
        with pytest.raises(CTInputError, match="2 voxels are NaN or infinite"):
            read_ct(write(tmp_path / name, array))
    assert (
        read_ct(write(tmp_path / "finite.nii.gz", np.nan_to_num(array, posinf=0.0))).array.dtype
        == np.float32
    )
    with pytest.raises(CTInputError, match=r"spacing 1 x 1 x 25 mm; more than 20 mm"):
        read_ct(write(tmp_path / "coarse.mha", ct_like(), spacing=(1.0, 1.0, 25.0)))
    with pytest.raises(CTInputError, match=r"spacing 1 x 0 x 1 mm; spacing must be > 0"):
        check_layout((24, 20, 16), (1.0, 0.0, 1.0))
    with pytest.raises(CTInputError, match=r"only 24 x 20 x 3 voxels"):
        read_ct(write(tmp_path / "thin.nii.gz", ct_like((3, 20, 24))))


def test_refuses_values_that_cannot_be_ct(tmp_path):
    mr = np.random.default_rng(0).integers(0, 4000, (16, 20, 24)).astype(np.uint16)
    with pytest.raises(CTInputError, match=r"values 0 .. 399\d, nothing below -50: no air"):
        read_ct(write(tmp_path / "mr.nii.gz", mr))
    normalised = np.linspace(-1, 1, 16 * 20 * 24, dtype=np.float32).reshape(16, 20, 24)
    with pytest.raises(CTInputError, match=r"values -1 .. 1, nothing below -50"):
        read_ct(write(tmp_path / "norm.nii.gz", normalised))
    boneless = ct_like()
    boneless[boneless > 0] = 40
    with pytest.raises(CTInputError, match=r"values -1000 .. 40, nothing above 150: no bone"):
        read_ct(write(tmp_path / "boneless.nii.gz", boneless))
    with pytest.raises(CTInputError, match="every voxel is -1000"):
        read_ct(write(tmp_path / "air.nii.gz", np.full((16, 20, 24), -1000, np.int16)))


def test_4d_file_with_one_volume_reads_as_3d_and_real_4d_is_refused(tmp_path, tiny_ct):
    one = sitk.JoinSeries([to_sitk(tiny_ct)])
    sitk.WriteImage(one, str(tmp_path / "one.nii.gz"))
    assert read_ct(tmp_path / "one.nii.gz").same_grid(tiny_ct, tol=1e-4)
    two = sitk.JoinSeries([to_sitk(tiny_ct), to_sitk(tiny_ct)])
    sitk.WriteImage(two, str(tmp_path / "two.nii.gz"))
    with pytest.raises(CTInputError, match=r"a 4D image \(24 x 20 x 16 x 2 voxels\)"):
        read_ct(tmp_path / "two.nii.gz")
