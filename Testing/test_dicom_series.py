"""DICOM series: the test writer makes valid CT series that read back exactly; the reader
chooses a series of several and refuses a stack that would land on a wrong grid."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _dicom_series import write_ct_series
from conftest import make_tiny_ct
from test_pipeline import spine_ct, use_oracle_networks

from SpineLabelerLib import cli
from SpineLabelerLib.image import Image
from SpineLabelerLib.io import CTInputError, read_ct
from SpineLabelerLib.io.dicom_series import choose_series, find_series


def axis_aligned_ct() -> Image:
    ct = make_tiny_ct()
    return Image(ct.array, ct.spacing_mm, ct.origin_lps, np.eye(3))


def flipped_ct() -> Image:
    """Index axes towards R, P, I: a left-handed, axis-aligned frame."""
    ct = make_tiny_ct()
    return Image(ct.array, ct.spacing_mm, ct.origin_lps, np.diag([-1.0, 1.0, -1.0]) @ np.eye(3))


@pytest.mark.parametrize(
    "make", [axis_aligned_ct, flipped_ct, make_tiny_ct], ids=["aligned", "flipped", "oblique"]
)
def test_written_series_reads_back_with_the_same_voxels_and_grid(tmp_path, make):
    ct = make()
    files = write_ct_series(ct, tmp_path / "dcm")
    assert len(files) == ct.array.shape[0]
    back = read_ct(tmp_path / "dcm")
    assert back.same_grid(ct, tol=1e-6)
    np.testing.assert_array_equal(back.array, ct.array)


def test_series_files_are_listed_in_slice_order_with_their_uids(tmp_path, tiny_ct):
    files = write_ct_series(
        tiny_ct,
        tmp_path,
        study_uid="1.2.3.4",
        series_uid="1.2.3.4.5",
        frame_of_reference_uid="1.2.3.4.6",
        series_description="spine 2.5 mm",
    )
    (series,) = find_series(tmp_path)
    assert series.files == tuple(files)  # k = 0 first, though det(direction) = -1
    assert (series.uid, series.study_uid, series.frame_of_reference_uid) == (
        "1.2.3.4.5",
        "1.2.3.4",
        "1.2.3.4.6",
    )
    assert (series.modality, series.description) == ("CT", "spine 2.5 mm")
    ds = pydicom.dcmread(files[3])
    assert ds.InstanceNumber == 4 and ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert [float(v) for v in ds.PixelSpacing] == [1.1, 0.8]  # rows (j), then columns (i)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not installed")
def test_written_slices_are_a_valid_ct_image_iod(tmp_path, tiny_ct):
    files = write_ct_series(tiny_ct, tmp_path, gantry_tilt_deg=0.0)
    result = subprocess.run(["dciodvfy", str(files[0])], capture_output=True, text=True)
    report = result.stdout + result.stderr
    assert "CTImage" in report and "Error" not in report, report


def test_folder_with_two_series_reads_the_larger_and_says_which(tmp_path, tiny_ct):
    write_ct_series(tiny_ct, tmp_path, series_uid="1.2.3.100", series_description="bone")
    small = tiny_ct.with_array(tiny_ct.array)
    write_ct_series(small, tmp_path / "b", series_uid="1.2.3.200", drop_slices=range(10, 16))
    notes: list[str] = []
    back = read_ct(tmp_path, notes)
    assert back.same_grid(tiny_ct, tol=1e-6)
    assert len(notes) == 1
    assert "2 DICOM series; using 1.2.3.100 (16 slices, CT 'bone')" in notes[0]
    assert "--series UID" in notes[0] and "not used: 1.2.3.200 (10 slices" in notes[0]
    other = read_ct(tmp_path, series_uid="1.2.3.200")
    assert other.size_ijk == (24, 20, 10)
    with pytest.raises(CTInputError, match=r"no DICOM series 9\.9; the folder holds: 1\.2\.3\.100"):
        choose_series(tmp_path, "9.9")


# ---- series SimpleITK would put on a wrong grid are refused, each with its message -----


def test_a_missing_slice_is_named_with_its_position_and_neighbours(tmp_path):
    ct = axis_aligned_ct()  # k towards S, 2.5 mm apart from 101 mm
    write_ct_series(ct, tmp_path, drop_slices=(7,))
    with pytest.raises(CTInputError) as err:
        read_ct(tmp_path)
    message = str(err.value)
    assert "slices missing (1 between instance 7 at 116.00 mm and instance 9 at 121.00" in message
    assert "expected at 118.50 mm" in message and "the others are 2.5 mm apart" in message


def test_uneven_spacing_lists_the_gaps_seen(tmp_path):
    write_ct_series(axis_aligned_ct(), tmp_path, spacing_jitter={8: 0.7})
    with pytest.raises(CTInputError, match=r"uneven slice spacing \(gaps seen: 1.8 mm \(1x\), "):
        read_ct(tmp_path)


def test_slight_spacing_noise_is_read(tmp_path):
    ct = axis_aligned_ct()
    write_ct_series(ct, tmp_path, spacing_jitter={3: 0.05, 9: -0.1})
    assert read_ct(tmp_path).same_grid(ct, tol=1e-6)


def test_two_slices_at_one_position_are_refused(tmp_path):
    write_ct_series(axis_aligned_ct(), tmp_path, spacing_jitter={5: -2.5})
    with pytest.raises(CTInputError, match=r"slices (5 and 6|6 and 5) .* lie at the same position"):
        read_ct(tmp_path)


def test_a_tilted_gantry_is_refused_since_simpleitk_would_misplace_the_slices(tmp_path):
    ct = axis_aligned_ct()
    files = write_ct_series(ct, tmp_path, gantry_tilt_deg=15.0)
    # What SimpleITK does with it: the slices stacked along their normal, the last one
    # 10 mm from where its header puts it.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    last = np.array(reader.Execute().TransformIndexToPhysicalPoint((0, 0, len(files) - 1)))
    assert (
        np.linalg.norm(last - [float(v) for v in pydicom.dcmread(files[-1]).ImagePositionPatient])
        > 9
    )
    with pytest.raises(CTInputError, match=r"a tilted gantry \(gantry tilt 15 deg; .* sheared"):
        read_ct(tmp_path)


def test_mixed_orientations_are_refused(tmp_path):
    files = write_ct_series(axis_aligned_ct(), tmp_path)
    ds = pydicom.dcmread(files[4])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal slice among axial ones
    ds.save_as(files[4])
    with pytest.raises(CTInputError, match=r"different orientations \(15 slices at .*; 1 slices"):
        read_ct(tmp_path)


# ---- the command line: segment --series, info lists the series -------------------------


@pytest.fixture
def two_series_folder(tmp_path, monkeypatch):
    """A DICOM folder holding a lumbar CT (1.2.3.10) and a shorter copy of it (1.2.3.20)."""
    use_oracle_networks(monkeypatch)
    ct, _, _ = spine_ct("L3", "L5", above_mm=0.0)
    ct = ct.with_array(np.round(ct.array).astype(np.int16))
    folder = tmp_path / "study"
    write_ct_series(ct, folder, series_uid="1.2.3.10", series_description="spine")
    k = ct.array.shape[0]
    write_ct_series(ct, folder, series_uid="1.2.3.20", drop_slices=range(k - 10, k))
    return folder, ct


def test_segment_reads_the_largest_series_or_the_one_asked_for(two_series_folder, tmp_path):
    folder, ct = two_series_folder
    common = ["--formats", "nii.gz", "--progress", "none"]
    assert cli.main(["segment", str(folder), "-o", str(tmp_path / "a"), *common]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert "using 1.2.3.10 (" in report["reading_notes"][0]
    assert sitk.ReadImage(str(tmp_path / "a" / "labels.nii.gz")).GetSize() == ct.size_ijk
    args = ["segment", str(folder), "-o", str(tmp_path / "b"), "--series", "1.2.3.20", *common]
    assert cli.main(args) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert "using 1.2.3.20 (" in report["reading_notes"][0]
    labels = sitk.ReadImage(str(tmp_path / "b" / "labels.nii.gz"))
    assert labels.GetSize()[2] == ct.array.shape[0] - 10


def test_segment_with_an_unknown_series_lists_those_present(two_series_folder, tmp_path, capsys):
    folder, _ = two_series_folder
    out = tmp_path / "out"
    assert cli.main(["segment", str(folder), "-o", str(out), "--series", "7.7"]) == 2
    err = capsys.readouterr().err
    assert "no DICOM series 7.7; the folder holds: 1.2.3.10 (" in err and "1.2.3.20 (" in err
    assert not out.exists()


def test_a_folder_with_dicom_files_and_sub_folders_is_refused_not_half_read(
    two_series_folder, tmp_path, capsys
):
    """Batching the sub-folders would skip the series beside them without a word."""
    folder, ct = two_series_folder
    write_ct_series(ct, folder / "patient2", series_uid="1.2.3.30")
    out = tmp_path / "out"
    assert cli.main(["segment", str(folder), "-o", str(out), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert "DICOM file(s) beside 1 sub-folder(s) (patient2)" in err and "--series" in err
    assert not out.exists()
    args = ["segment", str(folder), "-o", str(out), "--series", "1.2.3.30", "--formats", "nii.gz"]
    assert cli.main([*args, "--progress", "none"]) == 0  # a series named: read as one input
    (folder / "DICOMDIR").write_bytes(b"x")
    for path in folder.iterdir():  # a DICOMDIR beside series folders is a batch
        if path.is_file() and path.name != "DICOMDIR":
            path.unlink()
    assert cli.main(["segment", str(folder), "-o", str(tmp_path / "b"), "--formats", "nii.gz"]) == 0
    assert (tmp_path / "b" / "patient2" / "labels.nii.gz").is_file()
