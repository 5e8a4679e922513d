"""Damaged files: every format read is refused when it holds less than its header says,
before anything is written; whole files, also unusual ones, pass."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from _dicom_series import write_ct_series
from test_pipeline import spine_ct, use_oracle_networks

from SpineLabelerLib import cli
from SpineLabelerLib.image import Image, to_sitk
from SpineLabelerLib.io import CTInputError, read_ct, read_labelmap
from SpineLabelerLib.io.integrity import check_complete


def noisy_ct() -> Image:
    """int16 HU that compress poorly, so that a cut keeps a fraction of the voxels."""
    array = np.random.default_rng(3).integers(-1000, 1500, (40, 64, 64)).astype(np.int16)
    return Image(array, (0.8, 0.8, 2.0))


def cut(path: Path, fraction: float = 0.5) -> Path:
    """``path`` cut to ``fraction`` of its bytes, as a broken copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def written(tmp_path: Path, name: str, compress: bool) -> Path:
    path = tmp_path / name
    sitk.WriteImage(to_sitk(noisy_ct()), str(path), compress)
    return path


@pytest.mark.parametrize(
    "name, compress, message",
    [
        ("ct.nii.gz", True, r"gzip stream cut short after \d+ kB; the header describes "),
        ("ct.nii", False, r"the file ends early \(\d+ kB; the header describes 64x64x40 int16"),
        ("ct.nrrd", True, r"gzip stream cut short .* 64x64x40 short = 328 kB\)"),
        ("ct.nrrd", False, r"the file ends early \(\d+ kB; the header describes 64x64x40 short"),
        ("ct.mha", False, r"ends early \(\d+ kB; the header describes 64x64x40 MET_SHORT"),
        ("ct.mha", True, r"64x64x40 MET_SHORT, compressed to \d+ kB\): a truncated copy"),
    ],
)
def test_a_file_cut_short_is_refused_by_name(tmp_path, name, compress, message):
    path = written(tmp_path, name, compress)
    assert read_ct(path).size_ijk == (64, 64, 40)  # whole, it reads
    cut(path)
    with pytest.raises(CTInputError, match=rf"^{tmp_path}/{name}: .*{message}"):
        read_ct(path)
    with pytest.raises(CTInputError, match="ends early"):
        read_labelmap(path)


def test_nifti_gz_cut_to_its_first_100_kb_is_refused_though_simpleitk_reads_it(tmp_path):
    path = written(tmp_path, "sub-x_ct.nii.gz", True)
    path.write_bytes(path.read_bytes()[:100_000])
    assert sitk.ReadImage(str(path)).GetSize() == (64, 64, 40)  # what a user got before
    with pytest.raises(CTInputError, match=r"gzip stream cut short after 100 kB.*int16 = 328 kB"):
        read_ct(path)


def test_a_cut_header_and_a_gzip_holding_too_few_voxels_are_refused(tmp_path):
    path = cut(written(tmp_path, "ct.nii.gz", True), 0.0005)
    with pytest.raises(CTInputError, match="ends early"):
        check_complete(path)
    # A cut .nii compressed afterwards: the gzip stream is whole, the voxels are not.
    short = cut(written(tmp_path, "short.nii", False), 0.7).read_bytes()
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(short))
    with pytest.raises(CTInputError, match=r"gzip data complete but \d+ kB of the 328 kB needed"):
        check_complete(tmp_path / "short.nii.gz")


def test_whole_files_the_trailer_check_cannot_vouch_for_are_decompressed_and_pass(tmp_path):
    # Two gzip members (bgzip writes such files): the last member's recorded size is its own.
    data = gzip.decompress(written(tmp_path, "ct.nii.gz", True).read_bytes())
    half = len(data) // 2
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]))
    np.testing.assert_array_equal(read_ct(two).array, noisy_ct().array)
    cut(two, 0.8)
    with pytest.raises(CTInputError, match="gzip stream cut short"):
        read_ct(two)


def test_nrrd_with_bzip2_and_detached_payloads(tmp_path):
    array = noisy_ct().array
    header = {"space": "left-posterior-superior", "space directions": np.eye(3)}
    header["space origin"] = np.zeros(3)
    nrrd.write(str(tmp_path / "bz.nrrd"), array.T, header | {"encoding": "bzip2"})
    nrrd.write(
        str(tmp_path / "gz.nhdr"), array.T, header | {"encoding": "gzip"}, detached_header=True
    )
    np.testing.assert_array_equal(read_ct(tmp_path / "gz.nhdr").array, array)
    check_complete(tmp_path / "bz.nrrd")  # whole (SimpleITK cannot decode bzip2 NRRD at all)
    cut(tmp_path / "bz.nrrd")
    with pytest.raises(CTInputError, match=r"bz\.nrrd: the file ends early \(bzip2 stream cut"):
        read_ct(tmp_path / "bz.nrrd")
    cut(tmp_path / "gz.raw.gz")
    with pytest.raises(CTInputError, match=r"gz\.nhdr: the file ends early \(gzip stream cut"):
        read_ct(tmp_path / "gz.nhdr")
    (tmp_path / "gz.raw.gz").unlink()
    with pytest.raises(CTInputError, match=r"gz\.nhdr: its data file gz\.raw\.gz is not there"):
        read_ct(tmp_path / "gz.nhdr")


def test_mhd_with_its_raw_file_cut(tmp_path):
    path = written(tmp_path, "ct.mhd", False)
    cut(tmp_path / "ct.raw")
    with pytest.raises(CTInputError, match=r"ct\.mhd: the file ends early \(164 kB; .*328 kB"):
        read_ct(path)


def test_a_dicom_slice_cut_short_is_refused_by_name(tmp_path):
    ct = Image(np.clip(noisy_ct().array, -1000, 3000), (0.8, 0.8, 2.0))
    files = write_ct_series(ct, tmp_path)
    cut(files[7], 0.9)
    with pytest.raises(CTInputError, match=rf"{files[7].name}: the file ends early \(pixel data"):
        read_ct(tmp_path)
    files[3].write_bytes(files[3].read_bytes()[:1000])  # cut in its header
    with pytest.raises(
        CTInputError,
        match=rf"{files[3].name}: the file ends early \(after 1 kB, before its pixel data",
    ):
        read_ct(tmp_path)
    files[3].write_bytes(files[3].read_bytes()[:400])  # cut before the series UID
    with pytest.raises(CTInputError, match=rf"{files[3].name}: a damaged DICOM file"):
        read_ct(tmp_path)


def test_a_damaged_header_in_another_series_is_passed_over_only_for_a_named_series(tmp_path):
    ct = Image(np.clip(noisy_ct().array, -1000, 3000), (0.8, 0.8, 2.0))
    wanted = write_ct_series(ct, tmp_path, series_uid="1.2.3.1", series_number=1)
    other = write_ct_series(ct, tmp_path, series_uid="1.2.3.2", series_number=2)
    other[3].write_bytes(other[3].read_bytes()[:400])  # its series UID is lost
    with pytest.raises(CTInputError, match=r"cannot be told.*1\.2\.3\.1.*--series UID"):
        read_ct(tmp_path)  # the largest CT series might be the one it belonged to
    notes: list[str] = []
    image = read_ct(tmp_path, notes=notes, series_uid="1.2.3.1")
    np.testing.assert_array_equal(image.array, ct.array)
    assert any("1 damaged DICOM file(s) passed over" in n and other[3].name in n for n in notes)
    wanted[5].write_bytes(wanted[5].read_bytes()[:400])  # now a slice inside the named series
    with pytest.raises(CTInputError, match=r"slice"):
        read_ct(tmp_path, series_uid="1.2.3.1")


# ---- through the command line: refused before anything is written ----------------


@pytest.fixture
def oracle_networks(monkeypatch):
    use_oracle_networks(monkeypatch)


def test_segment_refuses_a_truncated_nifti_and_writes_nothing(tmp_path, capsys):
    path = cut(written(tmp_path, "ct.nii.gz", True))
    out = tmp_path / "out"
    assert cli.main(["segment", str(path), "-o", str(out), "--progress", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinelabeler segment: refused: ") and "ends early" in err
    assert not out.exists()


def test_a_batch_lists_a_truncated_case_as_failed_and_goes_on(oracle_networks, tmp_path):
    ct, _, names = spine_ct("L3", "L5", above_mm=0.0)
    batch = tmp_path / "batch"
    batch.mkdir()
    sitk.WriteImage(to_sitk(ct), str(batch / "a.nii.gz"))
    (batch / "b.nii.gz").write_bytes((batch / "a.nii.gz").read_bytes())
    cut(batch / "b.nii.gz", 0.3)
    out = tmp_path / "out"
    args = ["segment", str(batch), "-o", str(out), "--formats", "json", "--progress", "none"]
    assert cli.main(args) == 1
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["case"], r["status"]) for r in rows] == [("a", "ok"), ("b", "failed")]
    assert "ends early" in rows[1]["message"] and not (out / "b").exists()
    assert rows[0]["vertebrae"] == " ".join(names)
