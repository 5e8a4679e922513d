"""``spinelabeler segment``: outputs, batch mode, refusals and progress lines.

The networks are replaced by the oracle runners of test_pipeline (the weight files are
exercised there and in the slow end-to-end tests), so this runs in seconds.
"""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_pipeline import oracle_runners, spine_ct, use_oracle_networks

from SpineLabelerLib import cli, pipeline
from SpineLabelerLib.commands import segment
from SpineLabelerLib.image import to_sitk
from SpineLabelerLib.io import read_labelmap


@pytest.fixture(autouse=True)
def oracle_networks(monkeypatch):
    use_oracle_networks(monkeypatch)


@pytest.fixture(scope="module")
def lumbar(tmp_path_factory):
    ct, truth, names = spine_ct("L2", "L5", above_mm=0.0)
    path = tmp_path_factory.mktemp("ct") / "lumbar.nii.gz"
    sitk.WriteImage(to_sitk(ct), str(path))
    return path, truth, names


def test_registered_in_the_cli():
    assert "segment" in cli.COMMAND_MODULES
    with pytest.raises(SystemExit) as exc:
        cli.main(["segment", "--help"])
    assert exc.value.code == 0


def test_one_ct_writes_every_output_on_the_input_grid(lumbar, tmp_path, capsys):
    path, truth, names = lumbar
    out = tmp_path / "result"
    assert cli.main(["segment", str(path), "-o", str(out), "--progress", "lines"]) == 0
    stdout = capsys.readouterr().out
    fractions = [
        float(line.split()[1]) for line in stdout.splitlines() if line.startswith("PROGRESS ")
    ]
    assert fractions and fractions[-1] == 1.0
    for name in (
        "labels.nii.gz",
        "labels.nrrd",
        "segmentation.seg.nrrd",
        "centroids.mrk.json",
        "centroids.json",
        "overview.png",
        "report.json",
    ):
        assert (out / name).is_file(), name
    assert sorted(p.stem for p in (out / "surfaces").glob("*.stl")) == sorted(names)
    labels = read_labelmap(out / "labels.nii.gz")
    assert labels.same_grid(truth)
    report = json.loads((out / "report.json").read_text())
    assert [v["name"] for v in report["vertebrae"]] == names
    assert report["no_spine_found"] is False and report["device"] == "oracle"
    assert {"partial", "confidence", "volume_ml", "centroid_lps"} <= set(report["vertebrae"][0])
    assert report["timings_s"]["total"] > 0


def test_existing_results_are_refused_without_force(lumbar, tmp_path, capsys):
    path, _, _ = lumbar
    out = tmp_path / "r"
    assert (
        cli.main(
            ["segment", str(path), "-o", str(out), "--formats", "nii.gz", "--progress", "none"]
        )
        == 0
    )
    before = (out / "labels.nii.gz").stat().st_mtime_ns
    assert (
        cli.main(
            ["segment", str(path), "-o", str(out), "--formats", "nii.gz", "--progress", "none"]
        )
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    assert (out / "labels.nii.gz").stat().st_mtime_ns == before
    assert (
        cli.main(
            [
                "segment",
                str(path),
                "-o",
                str(out),
                "--formats",
                "nii.gz",
                "--force",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz", "report.json"]


def test_no_spine_writes_only_a_report_saying_so(tmp_path, capsys):
    ct, _, _ = spine_ct("L3", "L5", above_mm=0.0)
    leg = ct.with_array(np.where(ct.array > 150, 160.0, ct.array).astype(np.float32))
    path = tmp_path / "leg.nrrd"
    sitk.WriteImage(to_sitk(leg), str(path))
    out = tmp_path / "leg_out"
    assert cli.main(["segment", str(path), "-o", str(out), "--progress", "none"]) == 0
    assert "no spine found" in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ["report.json"]
    assert json.loads((out / "report.json").read_text())["no_spine_found"] is True


@pytest.mark.parametrize("kind", ["corrupt", "not_ct", "missing"])
def test_bad_input_is_refused_clearly_and_nothing_is_written(kind, tmp_path, capsys):
    path = tmp_path / "in.nii.gz"
    if kind == "corrupt":
        path.write_bytes(b"\x1f\x8b this is no nifti")
    elif kind == "not_ct":  # an MR-like volume: no air, no bone
        sitk.WriteImage(
            sitk.GetImageFromArray(
                np.full((20, 20, 20), 300, np.int16) + np.arange(20, dtype=np.int16)
            ),
            str(path),
        )
    out = tmp_path / "out"
    code = cli.main(["segment", str(path), "-o", str(out), "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("spinelabeler segment: refused:")
    assert {"corrupt": str(path), "not_ct": "not a CT", "missing": "does not exist"}[kind] in err
    assert not out.exists()


def test_batch_goes_on_after_a_failure_and_writes_a_summary(lumbar, tmp_path, capsys):
    path, _, names = lumbar
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a_good.nii.gz").write_bytes(path.read_bytes())
    (batch / "b_broken.nii.gz").write_bytes(b"broken")
    (batch / "c_good.nii.gz").write_bytes(path.read_bytes())
    (batch / "notes.txt").write_text("not a case")
    out = tmp_path / "out"
    assert (
        cli.main(["segment", str(batch), "-o", str(out), "--formats", "json", "--progress", "none"])
        == 1
    )
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["case"], r["status"]) for r in rows] == [
        ("a_good", "ok"),
        ("b_broken", "failed"),
        ("c_good", "ok"),
    ]
    assert rows[0]["vertebrae"] == " ".join(names) and rows[1]["message"]
    assert rows[0]["review"] == ""  # named without doubt: nothing to look at first
    assert (out / "c_good" / "centroids.json").is_file() and not (out / "b_broken").exists()


def test_format_names():
    assert segment.parse_formats("seg.nrrd,nii.gz,mrk.json,stl,png") == [
        "seg",
        "nifti",
        "markups",
        "surfaces",
        "overview",
        "report",
    ]
    assert "report" in segment.parse_formats("all")
    with pytest.raises(ValueError, match="unknown format 'jpg'"):
        segment.parse_formats("png,jpg")


REAL_CT = Path("/work/shared/realdata/verse008/sub-verse008_ct.nii.gz")  # VerSe'19, CC BY-SA 4.0


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CT.is_file(), reason=f"real VerSe case not at {REAL_CT}")
@pytest.mark.skipif(
    not (pipeline.DEFAULT_WEIGHTS_DIR / "stage2.pt").is_file(), reason="shipped weights absent"
)
def test_real_verse_case_runs_and_writes_on_its_own_grid(tmp_path, monkeypatch):
    """Issue 7: the real, oblique, 1 x 1 x 2 mm PIR case completes; outputs lie on its grid
    (its accuracy is a benchmark figure, not a test)."""
    from SpineLabelerLib.io import read_ct

    monkeypatch.undo()  # the shipped networks, not the oracle
    out = tmp_path / "verse008"
    code = cli.main(["segment", str(REAL_CT), "-o", str(out), "--progress", "none"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    if report["no_spine_found"]:
        assert [p.name for p in out.iterdir()] == ["report.json"]
    else:
        assert read_labelmap(out / "labels.nii.gz").same_grid(read_ct(REAL_CT))
        assert (out / "overview.png").is_file()


def test_review_column_names_what_a_person_should_check():
    from SpineLabelerLib.image import Image
    from SpineLabelerLib.pipeline import SpineResult, VertebraRecord

    column = [
        VertebraRecord(n, name, False, 0.9, 40.0, (0.0, 0.0, 0.0))
        for n, name in ((20, "L1"), (21, "L2"))
    ]
    quiet = SpineResult(
        Image(np.zeros((2, 2, 2), np.uint8)), column, False, {}, "cpu", [], ("spine", "fov")
    )
    assert segment.review_reasons(quiet) == []
    check = {"shift_levels": -1, "nats": 0.8, "named": "L1-L2", "head_prefers": "T12-L1"}
    flagged = SpineResult(quiet.labels, column, False, {}, "cpu", [], ("fov", "lost"), {}, check)
    assert segment.review_reasons(flagged) == [
        "count: named L1-L2, the level head prefers T12-L1",
        "spine lost below L2",
    ]
    to_l6 = [replace(v, name=n) for v, n in zip(column, ("L5", "L6"))]
    past_the_sacrum = SpineResult(quiet.labels, to_l6, False, {}, "cpu", [], ("fov", "lost"))
    assert segment.review_reasons(past_the_sacrum) == []  # only the sacrum lies below L6


def test_edge_snap_and_bone_edges_grow_the_outlines_and_keep_the_names(lumbar, tmp_path):
    from scipy import ndimage

    source, truth, _names = lumbar
    ct = sitk.ReadImage(str(source))
    hu = sitk.GetArrayFromImage(ct)
    vertebrae = truth.array > 0
    rim = ndimage.binary_dilation(vertebrae, iterations=2) & ~vertebrae
    hu[rim] = np.percentile(hu[vertebrae], 90)  # bone the networks' outline stops short of
    rimmed = sitk.GetImageFromArray(hu)
    rimmed.CopyInformation(ct)
    path = tmp_path / "rimmed.nii.gz"
    sitk.WriteImage(rimmed, str(path))
    voxels, names = {}, {}
    runs = {"plain": ["--no-edge-snap"], "snapped": [], "grown": ["--no-edge-snap", "--bone-edges"]}
    for run, flags in runs.items():
        out = tmp_path / run
        args = ["segment", str(path), "-o", str(out), "--formats", "nii.gz", "--progress", "none"]
        assert cli.main(args + flags) == 0
        report = json.loads((out / "report.json").read_text())
        names[run] = [v["name"] for v in report["vertebrae"]]
        voxels[run] = np.count_nonzero(read_labelmap(out / "labels.nii.gz").array)
    assert voxels["grown"] > voxels["plain"] and voxels["snapped"] > voxels["plain"]
    assert names["plain"] == names["snapped"] == names["grown"] != []


def test_the_real_shape_net_adds_by_default_replaces_with_real_shapes_and_can_be_left_out(
    lumbar, tmp_path, monkeypatch
):
    path, _truth, names = lumbar
    walked, outlined = [], []

    def runners(settings):
        walked.append(Path(settings.weights_dir))
        return (*oracle_runners(), [])

    def outline_runner(settings):
        outlined.append(Path(settings.outline_weights_dir))
        return oracle_runners()[1]

    monkeypatch.setattr(pipeline, "load_runners", runners)
    monkeypatch.setattr(pipeline, "load_outline_runner", outline_runner)
    args = ["segment", str(path), "--formats", "json", "--progress", "none"]

    def report(out: Path) -> dict:
        return json.loads((out / "report.json").read_text())

    assert cli.main([*args, "-o", str(tmp_path / "default")]) == 0
    assert walked == [pipeline.DEFAULT_WEIGHTS_DIR]
    assert outlined == [pipeline.REAL_SHAPES_WEIGHTS_DIR]
    work = report(tmp_path / "default")["work"]
    # the oracle outlines what the oracle walked: nothing thick is left to add
    assert work["outline_patches"] == len(names) and work["outlined_again"] == 0

    assert cli.main([*args, "-o", str(tmp_path / "real"), "--real-shapes"]) == 0
    assert [v["name"] for v in report(tmp_path / "real")["vertebrae"]] == names
    assert report(tmp_path / "real")["work"]["outlined_again"] == len(names)  # replaced
    for name in ("stage2.pt", "provenance.json", "README.md"):
        assert (pipeline.REAL_SHAPES_WEIGHTS_DIR / name).is_file(), name

    assert cli.main([*args, "-o", str(tmp_path / "net"), "--no-outline-pass"]) == 0
    assert len(outlined) == 2 and "outline_patches" not in report(tmp_path / "net")["work"]
    both = [*args, "-o", str(tmp_path / "both"), "--real-shapes", "--no-outline-pass"]
    assert cli.main(both) == 2 and not (tmp_path / "both").exists()

    # with --weights too: that folder walks, the real-shape net outlines
    assert (
        cli.main([*args, "-o", str(tmp_path / "w"), "--real-shapes", "--weights", str(tmp_path)])
        == 0
    )
    assert walked[-1] == tmp_path and outlined[-1] == pipeline.REAL_SHAPES_WEIGHTS_DIR
