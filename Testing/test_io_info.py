"""``spinelabeler info``: the summary of a usable CT (exit 0) and refusals (exit 2, stderr)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SpineLabelerLib.cli import build_parser, main
from SpineLabelerLib.image import to_sitk
from SpineLabelerLib.io.summary import ct_summary, obliquity_deg


def test_info_is_listed_in_help():
    assert "info" in build_parser().format_help()


def test_info_prints_the_summary_of_a_usable_ct(tmp_path, tiny_ct, capsys):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(to_sitk(tiny_ct), str(path))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "size:          24 x 20 x 16 voxels" in out
    assert "spacing:       0.8 x 1.1 x 2.5 mm" in out
    assert "HU range:      -1000 .. 700 (int16)" in out
    assert "field of view: 19.2 x 22 x 40 mm along i, j, k" in out
    assert "oblique, up to 22.27 deg" in out  # column j: arccos(cos 20 deg * cos 10 deg)


def test_info_json_and_obliquity(tmp_path, tiny_ct, capsys):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(to_sitk(tiny_ct), str(path))
    assert main(["info", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == ct_summary(tiny_ct.with_array(tiny_ct.array), []) | {
        "origin_lps_mm": summary["origin_lps_mm"]
    }
    assert summary["size_ijk"] == [24, 20, 16] and summary["hu_min"] == -1000.0
    np.testing.assert_allclose(summary["origin_lps_mm"], tiny_ct.origin_lps, atol=1e-3)
    # Column i of the fixture is 20 deg off L; column j is arccos(cos 20 * cos 10) off P.
    expected = np.degrees(np.arccos(np.cos(np.radians(20)) * np.cos(np.radians(10))))
    assert obliquity_deg(tiny_ct) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(22.27, abs=0.01)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((20, 24), np.int16), "a 2D image"),
        (
            np.arange(16 * 20 * 24, dtype=np.uint16).reshape(16, 20, 24),
            "values 0 .. 7679, nothing below -50",
        ),
    ],
)
def test_info_refusal_goes_to_stderr_with_exit_code_2(tmp_path, capsys, array, message):
    path = tmp_path / "bad.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("spinelabeler info: refused: ") and message in captured.err


def test_info_on_a_missing_file(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none.nii.gz")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_info_on_a_dicom_folder_names_the_series_used(tmp_path, tiny_ct, capsys):
    from _dicom_series import write_ct_series

    write_ct_series(tiny_ct, tmp_path / "dcm", series_uid="1.2.826.0.1.3680043.2.1125.7")
    write_ct_series(
        tiny_ct,
        tmp_path / "dcm" / "b",
        series_uid="1.2.826.0.1.3680043.2.1125.8",
        drop_slices=range(10, 16),
    )
    assert main(["info", str(tmp_path / "dcm")]) == 0
    out = capsys.readouterr().out
    assert "size:          24 x 20 x 16 voxels" in out
    assert "note:" in out and "using 1.2.826.0.1.3680043.2.1125.7 (16 slices" in out


def test_info_lists_the_series_of_a_dicom_folder_and_marks_the_one_read(tmp_path, capsys):
    from _dicom_series import write_ct_series
    from conftest import make_tiny_ct

    ct = make_tiny_ct()
    write_ct_series(ct, tmp_path, series_uid="1.2.3.1", series_description="bone")
    write_ct_series(ct, tmp_path, series_uid="1.2.3.2", drop_slices=range(12, 16))
    assert main(["info", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "DICOM series:  2 (* = read)",
        "  * 1.2.3.1  16 slices  CT  'bone'",
        "    1.2.3.2  12 slices  CT  'CT'",
    ]
    assert main(["info", "--json", "--series", "1.2.3.2", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["size_ijk"] == [24, 20, 12]
    assert [(s["uid"], s["used"]) for s in summary["dicom_series"]] == [
        ("1.2.3.1", False),
        ("1.2.3.2", True),
    ]


def test_info_lists_the_series_of_a_folder_it_refuses(tmp_path, capsys):
    from _dicom_series import write_ct_series
    from conftest import make_tiny_ct

    write_ct_series(make_tiny_ct(), tmp_path, series_uid="1.2.3.1", drop_slices=(5,))
    assert main(["info", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "* 1.2.3.1  15 slices" in captured.out and "slices missing (1 between" in captured.err
