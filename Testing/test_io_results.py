"""write_result_files: the standard result folder, nothing half-written, no silent overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import slicerio

from SpineLabelerLib.io import read_labelmap
from SpineLabelerLib.io.centroids import read_verse_centroids
from SpineLabelerLib.io.results import ALL_FORMATS, write_result_files


def test_writes_the_standard_layout(tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps):
    extra = {
        "device": "cpu",
        "timings_s": {"total": 1.5},
        "vertebrae": [{"label": 20, "partial": False, "confidence": 0.9}],
        "messages": ["3.0 mm voxels along one axis"],
    }
    out = tmp_path / "result"
    paths = write_result_files(out, tiny_ct, tiny_labels, tiny_centroids_lps, extra_report=extra)
    assert set(paths) == set(ALL_FORMATS)
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == sorted(
        [
            "labels.nii.gz",
            "labels.nrrd",
            "segmentation.seg.nrrd",
            "centroids.mrk.json",
            "centroids.json",
            "overview.png",
            "report.json",
            "surfaces/C7.stl",
            "surfaces/T12.stl",
            "surfaces/L1.stl",
            "surfaces/L2.stl",
        ]
    )
    assert not [p for p in tmp_path.iterdir() if p.name != "result"]  # staging folder gone
    np.testing.assert_array_equal(read_labelmap(paths["nifti"], tiny_ct).array, tiny_labels.array)
    assert [s["name"] for s in slicerio.read_segmentation(str(paths["seg"]))["segments"]] == [
        "C7",
        "T12",
        "L1",
        "L2",
    ]
    np.testing.assert_allclose(
        read_verse_centroids(paths["centroids"])[21], tiny_centroids_lps[21], atol=1e-4
    )
    report = json.loads(paths["report"].read_text())
    assert report["device"] == "cpu" and report["timings_s"] == {"total": 1.5}
    l1 = next(v for v in report["vertebrae"] if v["name"] == "L1")
    assert l1["label"] == 20 and l1["confidence"] == 0.9 and l1["partial"] is False
    assert l1["volume_ml"] == pytest.approx(8 * 8 * 4 * 0.8 * 1.1 * 2.5 / 1000, abs=1e-3)
    np.testing.assert_allclose(l1["centroid_lps"], tiny_centroids_lps[20], atol=1e-3)
    # the report's messages are written under the overview's views too
    from PIL import Image as PILImage

    from SpineLabelerLib.io.overview import NOTE_COLOUR, render_overview

    plain, _ = render_overview(tiny_ct, tiny_labels, tiny_centroids_lps)
    picture = np.asarray(PILImage.open(paths["overview"]).convert("RGB"))
    assert picture.shape[0] > plain.size[1]
    assert (picture[plain.size[1] :] == NOTE_COLOUR).all(axis=-1).any()


def test_refuses_existing_files_before_writing_anything(
    tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps
):
    out = tmp_path / "result"
    out.mkdir()
    (out / "overview.png").write_text("old")
    with pytest.raises(FileExistsError, match="overview.png already exists"):
        write_result_files(out, tiny_ct, tiny_labels, tiny_centroids_lps)
    assert sorted(p.name for p in out.iterdir()) == ["overview.png"]
    paths = write_result_files(
        out, tiny_ct, tiny_labels, tiny_centroids_lps, formats=["overview", "nifti"], force=True
    )
    assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz", "overview.png"]
    assert paths["overview"].read_bytes()[:4] == b"\x89PNG"


def test_an_error_leaves_nothing_half_written(tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps):
    bad_centroids = dict(tiny_centroids_lps)
    bad_centroids[20] = np.array([np.nan, 0.0, 0.0])  # the markups writer refuses this
    out = tmp_path / "result"
    with pytest.raises(ValueError, match="centroid of L1 is not finite"):
        write_result_files(out, tiny_ct, tiny_labels, bad_centroids)
    assert list(out.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_refuses_unknown_formats_and_labels_off_the_ct_grid(
    tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps
):
    with pytest.raises(ValueError, match="unknown result formats \\['obj'\\]"):
        write_result_files(
            tmp_path / "r", tiny_ct, tiny_labels, tiny_centroids_lps, formats=["obj"]
        )
    moved = tiny_labels.__class__(
        tiny_labels.array, tiny_labels.spacing_mm, (0.0, 0.0, 0.0), tiny_labels.direction
    )
    with pytest.raises(ValueError, match="labels must lie on the CT's grid"):
        write_result_files(tmp_path / "r", tiny_ct, moved, tiny_centroids_lps)


def test_no_vertebra_found_still_gives_valid_files(tmp_path, tiny_ct):
    """A leg CT: empty labelmap, no centroids; every file is written and readable."""
    import jsonschema

    empty = tiny_ct.with_array(np.zeros(tiny_ct.array.shape, np.uint8))
    paths = write_result_files(tmp_path / "r", tiny_ct, empty, {})
    assert slicerio.read_segmentation(str(paths["seg"]))["segments"] == []
    schema = json.loads(open("/work/shared/slicer/markups-schema-v1.0.3.json").read())
    document = json.loads(paths["markups"].read_text())
    jsonschema.validate(document, schema)
    assert document["markups"][0]["controlPoints"] == []
    assert read_verse_centroids(paths["centroids"]) == {}
    assert paths["surfaces"].is_dir() and list(paths["surfaces"].iterdir()) == []
    assert json.loads(paths["report"].read_text())["vertebrae"] == []
