"""Data-set readers: VerSe (both layouts) and CSI 2014 naming.

The VerSe test reads /work/shared/realdata/verse008: one case of the public VerSe data set
(VerSe'19, subject verse008; Löffler M. et al., Radiology: Artificial Intelligence 2020;
Sekuboyina A. et al., Medical Image Analysis 2021), licensed CC BY-SA 4.0.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SpineLabelerLib.image import lps_to_index, orientation_code, to_sitk
from SpineLabelerLib.io.csi import find_csi_cases, iter_csi2014
from SpineLabelerLib.io.datasets import mask_centroids_lps
from SpineLabelerLib.io.verse import find_verse_cases, iter_verse

VERSE008 = Path("/work/shared/realdata/verse008")


@pytest.mark.skipif(not VERSE008.is_dir(), reason="real VerSe case not present")
def test_verse_flat_folder_reads_the_real_case():
    """verse008 (VerSe'19, CC BY-SA 4.0): float32 HU, PIR, 2 mm left-right, T12-L5."""
    (case,) = list(iter_verse(VERSE008))
    case_id, ct, labels, centroids = case
    assert case_id == "sub-verse008" and centroids is None
    assert ct.size_ijk == (95, 221, 51) and ct.array.dtype == np.float32
    assert orientation_code(ct) == "PIR"
    np.testing.assert_allclose(ct.spacing_mm, (1.0, 1.0, 1.9965), atol=1e-4)
    assert float(ct.array.min()) == pytest.approx(-1037.5, abs=0.1)
    assert float(ct.array.max()) == pytest.approx(1549.2, abs=0.1)
    assert labels.same_grid(ct, tol=0)
    assert sorted(np.unique(labels.array)) == [0, 19, 20, 21, 22, 23, 24]
    # T12 lies above L1 lies above L5 (S is +z in LPS).
    c = mask_centroids_lps(labels)
    assert c[19][2] > c[20][2] > c[24][2]


def write_bids_case(root: Path, subject: str, ct, labels, with_mask=True, ctd=None) -> None:
    raw = root / "rawdata" / subject
    der = root / "derivatives" / subject
    raw.mkdir(parents=True)
    der.mkdir(parents=True)
    sitk.WriteImage(to_sitk(ct), str(raw / f"{subject}_ct.nii.gz"))
    if with_mask:
        sitk.WriteImage(to_sitk(labels), str(der / f"{subject}_seg-vert_msk.nii.gz"))
    if ctd is not None:
        (der / f"{subject}_seg-subreg_ctd.json").write_text(json.dumps(ctd))


def test_verse_bids_layout_with_centroid_files(
    tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps, caplog
):
    # A VerSe ctd lists voxel coordinates along the image's axis letters.
    code = list(orientation_code(tiny_ct))
    ctd = [{"direction": code}]
    for label, lps in tiny_centroids_lps.items():
        x, y, z = lps_to_index(tiny_ct, lps)[0]
        ctd.append({"label": label, "X": x, "Y": y, "Z": z})
    write_bids_case(tmp_path, "sub-a", tiny_ct, tiny_labels, ctd=ctd)
    write_bids_case(tmp_path, "sub-b", tiny_ct, tiny_labels, with_mask=False)
    with caplog.at_level(logging.WARNING):
        files = find_verse_cases(tmp_path)
    assert [f.case_id for f in files] == ["sub-a"]
    assert "sub-b_seg-vert_msk.nii.gz; case skipped" in caplog.text
    (case,) = list(iter_verse(tmp_path))
    assert case.case_id == "sub-a"
    np.testing.assert_array_equal(case.labels.array, tiny_labels.array)
    assert sorted(case.centroids_lps) == [7, 19, 20, 21]
    for label, lps in tiny_centroids_lps.items():
        np.testing.assert_allclose(case.centroids_lps[label], lps, atol=1e-4)


def test_csi_naming_pattern(tmp_path, tiny_ct, tiny_labels, caplog):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    sitk.WriteImage(to_sitk(tiny_ct), str(tmp_path / "images" / "case1.mhd"))
    sitk.WriteImage(to_sitk(tiny_labels), str(tmp_path / "labels" / "case1_label.nii.gz"))
    sitk.WriteImage(to_sitk(tiny_ct), str(tmp_path / "case2.nii.gz"))
    sitk.WriteImage(to_sitk(tiny_labels), str(tmp_path / "case2_label.nii.gz"))
    sitk.WriteImage(to_sitk(tiny_ct), str(tmp_path / "case3.nrrd"))
    with caplog.at_level(logging.WARNING):
        found = find_csi_cases(tmp_path)
    assert [(c, i.name, m.name) for c, i, m in found] == [
        ("case1", "case1.mhd", "case1_label.nii.gz"),
        ("case2", "case2.nii.gz", "case2_label.nii.gz"),
    ]
    assert "case3: no case3_label.* mask" in caplog.text
    cases = list(iter_csi2014(tmp_path, value_map={19: 18, 20: 19}))
    assert [c.case_id for c in cases] == ["case1", "case2"]
    assert cases[0].centroids_lps is None
    assert cases[0].ct.same_grid(tiny_ct, tol=1e-4)
    assert sorted(np.unique(cases[0].labels.array)) == [0, 7, 18, 19, 21]
    assert np.count_nonzero(cases[0].labels.array == 19) == np.count_nonzero(
        tiny_labels.array == 20
    )


def test_dataset_roots_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_verse_cases(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_csi_cases(tmp_path / "missing")


def test_lazy_case_records_read_on_demand(tmp_path, tiny_ct, tiny_labels):
    from SpineLabelerLib.io import csi, verse

    write_bids_case(tmp_path / "v", "sub-a", tiny_ct, tiny_labels)
    (record,) = list(verse.iter_cases(tmp_path / "v"))
    assert record.name == "sub-a" and record.ct.name == "sub-a_ct.nii.gz"
    ct, labels = record.load()
    assert labels.same_grid(ct, tol=0) and np.array_equal(labels.array, tiny_labels.array)
    (tmp_path / "c").mkdir()
    sitk.WriteImage(to_sitk(tiny_ct), str(tmp_path / "c" / "case9.mha"))
    sitk.WriteImage(to_sitk(tiny_labels), str(tmp_path / "c" / "case9_label.mha"))
    (record,) = list(csi.iter_cases(tmp_path / "c", value_map={7: 1}))
    assert record.name == "case9"
    _, labels = record.load()
    assert sorted(np.unique(labels.array)) == [0, 1, 19, 20, 21]
