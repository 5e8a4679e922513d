"""DICOM out: ``segment DICOM_FOLDER --formats dcm`` writes a SEG and a centroid SR that lie
over the CT series they came from (io.dicom_seg, io.dicom_sr, io.results, commands.segment).

A phantom CT is written as a DICOM series (plain, flipped, oblique), segmented through
the CLI with the oracle networks of test_pipeline (seconds), and the SEG and SR are read
back with highdicom and compared with labels.nrrd, centroids.json and the series' own
UIDs and geometry. dciodvfy (Debian's dicom3tools) validates both objects.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from _dicom_series import write_ct_series
from test_pipeline import spine_ct, use_oracle_networks

from SpineLabelerLib import anatomy, cli, pipeline
from SpineLabelerLib.commands import segment
from SpineLabelerLib.image import Image, lps_to_index, to_sitk
from SpineLabelerLib.io import read_ct, read_labelmap, read_verse_centroids
from SpineLabelerLib.io.dicom_seg import build_segmentation, read_source_headers, slices_along_k
from SpineLabelerLib.io.dicom_sr import read_centroid_sr
from SpineLabelerLib.io.results import write_result_files

FLIPPED = np.diag([-1.0, 1.0, -1.0])  # rows run to the patient's right, slices downwards
DESCENDING = np.diag([1.0, 1.0, -1.0])  # slices run against the slice normal (left-handed)


def _oblique() -> np.ndarray:
    a, b = np.deg2rad(12.0), np.deg2rad(8.0)
    about_s = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_l = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return about_s @ about_l


GRIDS = {"axial": None, "flipped": FLIPPED, "descending": DESCENDING, "oblique": _oblique()}


@pytest.fixture(autouse=True)
def oracle_networks(monkeypatch):
    use_oracle_networks(monkeypatch)


def _segment(args: list[str]) -> int:
    return cli.main(["segment", *args, "--progress", "none"])


@pytest.fixture(scope="module", params=list(GRIDS))
def segmented(request, tmp_path_factory):
    """(series folder, its files, result folder) of one phantom series segmented with dcm."""
    ct, _, _ = spine_ct("L2", "L5", above_mm=0.0, direction=GRIDS[request.param])
    root = tmp_path_factory.mktemp(request.param)
    files = write_ct_series(ct.with_array(np.round(ct.array)), root / "series")
    out = root / "out"
    mp = pytest.MonkeyPatch()  # module-scoped: the autouse fixture is per test
    use_oracle_networks(mp)
    try:
        assert _segment([str(root / "series"), "-o", str(out), "--formats", "dcm,nrrd,json"]) == 0
    finally:
        mp.undo()
    return root / "series", files, out


def _k_of(labels: Image, header: pydicom.Dataset) -> int:
    """The labels' slice index at a source image's position (and nowhere off its plane)."""
    ijk = lps_to_index(labels, np.asarray(header.ImagePositionPatient, float))[0]
    assert np.allclose(ijk, [0.0, 0.0, round(ijk[2])], atol=1e-3)
    return int(round(ijk[2]))


def _assert_seg_is_labels(path: Path, headers: list[pydicom.Dataset], labels: Image) -> None:
    """Every source image's SEG frames (segments mapped back to VerSe values by name) equal
    the labels' slice at that image's position."""
    seg = hd.seg.segread(path)
    names = [seg.get_segment_description(n).segment_label for n in seg.segment_numbers]
    assert names == [v.name for v in anatomy.VERTEBRAE if np.any(labels.array == v.label)]
    to_label = np.zeros(len(names) + 1, np.uint8)
    for n, name in zip(seg.segment_numbers, names):
        to_label[n] = anatomy.vertebra(name).label
    uids = [h.SOPInstanceUID for h in headers]
    frames = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    for header, frame in zip(headers, frames):
        k = _k_of(labels, header)
        assert np.array_equal(to_label[frame], labels.array[k]), (header.InstanceNumber, k)


def test_seg_is_labels_nrrd_voxel_by_voxel_on_the_source_images(segmented):
    folder, files, out = segmented
    labels = read_labelmap(out / "labels.nrrd")
    assert labels.same_grid(read_ct(folder))
    _assert_seg_is_labels(out / "segmentation.dcm", read_source_headers(files), labels)


def test_frames_follow_slice_positions_not_the_order_headers_come_in(segmented, tmp_path):
    _, files, out = segmented
    labels = read_labelmap(out / "labels.nrrd")
    headers = read_source_headers(files)
    shuffled = [headers[n] for n in np.random.default_rng(0).permutation(len(headers))]
    build_segmentation(labels, shuffled).save_as(tmp_path / "seg.dcm")
    _assert_seg_is_labels(tmp_path / "seg.dcm", headers, labels)


def test_seg_references_the_series_and_lies_on_its_geometry(segmented):
    _, files, out = segmented
    headers = read_source_headers(files)
    first = headers[0]
    seg = pydicom.dcmread(out / "segmentation.dcm")
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.PatientID == first.PatientID and seg.SeriesInstanceUID != first.SeriesInstanceUID
    (series,) = seg.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence} <= {
        h.SOPInstanceUID for h in headers
    }
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    assert np.allclose(orientation, first.ImageOrientationPatient, atol=1e-6)
    measures = shared.PixelMeasuresSequence[0]
    assert np.allclose(measures.PixelSpacing, first.PixelSpacing)
    position_of = {h.SOPInstanceUID: np.asarray(h.ImagePositionPatient, float) for h in headers}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (derivation,) = frame.DerivationImageSequence
        (source,) = derivation.SourceImageSequence
        position = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        assert np.allclose(position, position_of[source.ReferencedSOPInstanceUID], atol=1e-4)
        assert source.SpatialLocationsPreserved == "YES"


def test_seg_segments_carry_the_anatomy_tables_codes_colours_and_algorithm(segmented):
    _, _, out = segmented
    seg = hd.seg.segread(out / "segmentation.dcm")
    for n in seg.segment_numbers:
        description = seg.get_segment_description(n)
        vertebra = anatomy.vertebra(description.segment_label)
        assert description.segmented_property_type.value == vertebra.snomed_code
        assert description.segmented_property_type.scheme_designator == "SCT"
        assert description.segmented_property_category.value == anatomy.TERMINOLOGY_CATEGORY[0]
        lab = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue)
        rgb = lab.to_rgb()
        assert np.abs(np.subtract(rgb, vertebra.color_rgb)).max() <= 1
        (algorithm,) = description.SegmentationAlgorithmIdentificationSequence
        assert algorithm.AlgorithmName == "SpineLabeler"
        assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"


def test_sr_points_are_centroids_json_named_in_the_series_frame(segmented):
    _, files, out = segmented
    expected = read_verse_centroids(out / "centroids.json")
    points = read_centroid_sr(out / "centroids.sr.dcm")
    assert sorted(points) == sorted(expected)
    for label, point in points.items():
        assert np.allclose(point, expected[label], atol=1e-3), anatomy.vertebra(label).name
    first = read_source_headers(files[:1])[0]
    sr = hd.sr.srread(out / "centroids.sr.dcm")
    assert sr.StudyInstanceUID == first.StudyInstanceUID
    evidence = {uids[2] for uids in sr.get_evidence()}  # (study, series, class, instance)
    assert evidence == {h.SOPInstanceUID for h in read_source_headers(files)}
    report = hd.sr.MeasurementReport.from_sequence([sr])
    for group in report.get_planar_roi_measurement_groups():
        vertebra = anatomy.vertebra(group.tracking_identifier)
        assert group.finding_type.value == vertebra.snomed_code
        assert group.roi.frame_of_reference_uid == first.FrameOfReferenceUID


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip(
            "dciodvfy is not on PATH (Debian package dicom3tools; scripts/test installs it)"
        )
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("name", ["segmentation.dcm", "centroids.sr.dcm"])
def test_dciodvfy_finds_no_error(segmented, name):
    _, _, out = segmented
    assert _dciodvfy_errors(out / name) == []


def test_a_volume_file_with_dcm_is_refused_before_anything_is_computed(
    tmp_path, capsys, monkeypatch
):
    ct, _, _ = spine_ct("L3", "L4", above_mm=0.0)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(to_sitk(ct), str(path))
    out = tmp_path / "out"
    calls = []
    monkeypatch.setattr(pipeline, "segment_spine", lambda *a, **k: calls.append(a))
    assert _segment([str(path), "-o", str(out), "--formats", "dcm,nrrd"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "not a DICOM series" in err and str(path) in err
    assert not out.exists() and calls == []


def test_all_on_a_volume_file_writes_no_dicom(tmp_path):
    ct, _, _ = spine_ct("L3", "L4", above_mm=0.0)
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(to_sitk(ct), str(path))
    assert _segment([str(path), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "labels.nrrd").is_file()
    assert not list((tmp_path / "out").glob("*.dcm"))


def test_batch_writes_one_seg_per_series_and_refuses_dcm_for_a_volume_case(tmp_path, capsys):
    ct, _, _ = spine_ct("L3", "L4", above_mm=0.0)
    batch = tmp_path / "batch"
    series_uids = {}
    for case in ("a", "b"):
        files = write_ct_series(ct, batch / case)
        series_uids[case] = read_source_headers(files[:1])[0].SeriesInstanceUID
    out = tmp_path / "out"
    assert _segment([str(batch), "-o", str(out), "--formats", "dcm"]) == 0
    for case, uid in series_uids.items():
        seg = pydicom.dcmread(out / case / "segmentation.dcm")
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
        assert (out / case / "centroids.sr.dcm").is_file()
    sitk.WriteImage(to_sitk(ct), str(batch / "c.nii.gz"))
    assert _segment([str(batch), "-o", str(tmp_path / "out2"), "--formats", "dcm"]) == 2
    assert "c.nii.gz" in capsys.readouterr().err and not (tmp_path / "out2").exists()


def test_an_existing_seg_is_not_overwritten_without_force(segmented, capsys):
    folder, _, out = segmented
    before = (out / "segmentation.dcm").read_bytes()
    assert _segment([str(folder), "-o", str(out), "--formats", "dcm"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "segmentation.dcm").read_bytes() == before


def test_dcm_format_names():
    assert segment.parse_formats("dcm") == ["dicom_seg", "dicom_sr", "report"]
    assert segment.parse_formats("dicom_sr,nrrd") == ["dicom_sr", "nrrd", "report"]
    assert {"dicom_seg", "dicom_sr"} <= set(segment.parse_formats("all"))


def test_labels_off_the_series_grid_are_refused(segmented):
    folder, files, _ = segmented
    ct = read_ct(folder)
    headers = read_source_headers(files)
    labels = ct.with_array(np.zeros(ct.array.shape, np.uint8))
    labels.array[3, 10:20, 10:20] = 20
    assert len(slices_along_k(labels, headers[::-1])) == len(headers)
    moved = Image(labels.array, labels.spacing_mm, np.add(labels.origin_lps, 0.5), ct.direction)
    with pytest.raises(ValueError, match="positions"):
        build_segmentation(moved, headers)
    with pytest.raises(ValueError, match="slices"):
        build_segmentation(labels, headers[1:])


def test_dicom_outputs_need_the_source_series(segmented):
    folder, _, out = segmented
    ct = read_ct(folder)
    labels = read_labelmap(out / "labels.nrrd")
    with pytest.raises(ValueError, match="source series: pass its headers"):
        write_result_files(out / "again", ct, labels, {}, ["dicom_seg"])
    assert not (out / "again").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    not (pipeline.DEFAULT_WEIGHTS_DIR / "stage2.pt").is_file(), reason="shipped weights absent"
)
def test_real_networks_on_a_phantom_series_write_every_output_with_dicom(tmp_path, monkeypatch):
    """End to end with the shipped networks: 'all' on a DICOM series includes the SEG and
    SR, and they agree with labels.nrrd and centroids.json."""
    from SpineLabelerLib.phantom.generator import generate_case

    monkeypatch.undo()  # the shipped networks, not the oracle
    case = generate_case(11, "lumbar", spacing_mm=(1.5, 1.5, 2.0))
    files = write_ct_series(case.ct, tmp_path / "series")
    out = tmp_path / "out"
    assert _segment([str(tmp_path / "series"), "-o", str(out)]) == 0
    assert (out / "overview.png").is_file() and (out / "segmentation.seg.nrrd").is_file()
    labels = read_labelmap(out / "labels.nrrd")
    _assert_seg_is_labels(out / "segmentation.dcm", read_source_headers(files), labels)
    expected = read_verse_centroids(out / "centroids.json")
    points = read_centroid_sr(out / "centroids.sr.dcm")
    assert sorted(points) == sorted(expected) and len(points) >= 3
    for label, point in points.items():
        assert np.allclose(point, expected[label], atol=1e-3)
    if shutil.which("dciodvfy"):
        assert _dciodvfy_errors(out / "segmentation.dcm") == []


def test_a_series_no_seg_can_reference_is_refused_before_anything_is_computed(
    tmp_path, capsys, monkeypatch
):
    from SpineLabelerLib.io import dicom_seg

    ct, _, _ = spine_ct("L3", "L4", above_mm=0.0)
    write_ct_series(ct, tmp_path / "series")

    def multi_frame(labels, source):
        raise ValueError(f"labels have {labels.array.shape[0]} slices, the source series 1 image")

    calls = []
    monkeypatch.setattr(dicom_seg, "slices_along_k", multi_frame)
    monkeypatch.setattr(pipeline, "segment_spine", lambda *a, **k: calls.append(a))
    out = tmp_path / "out"
    assert _segment([str(tmp_path / "series"), "-o", str(out), "--formats", "dcm"]) == 2
    err = capsys.readouterr().err
    assert "no DICOM SEG or SR can reference this series" in err and "1 image" in err
    assert calls == [] and not out.exists()


def test_slight_spacing_noise_is_written_with_each_slices_own_position(tmp_path):
    """The reader takes a slice a little off its place; its frames are that slice's."""
    ct, truth, _ = spine_ct("L3", "L4", above_mm=0.0)  # 2 mm slices
    bone = np.flatnonzero(truth.array.any(axis=(1, 2)))
    moved = (int(bone[2]), int(bone[-3]))  # two slices through vertebrae
    jitter = {moved[0]: 0.15, moved[1]: -0.1}
    files = write_ct_series(ct, tmp_path / "series", spacing_jitter=jitter)
    out = tmp_path / "out"
    assert _segment([str(tmp_path / "series"), "-o", str(out), "--formats", "dcm"]) == 0
    position_of = {
        h.SOPInstanceUID: np.asarray(h.ImagePositionPatient, float)
        for h in read_source_headers(files)
    }
    seg = pydicom.dcmread(out / "segmentation.dcm")
    sources = set()
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        assert np.allclose(position, position_of[uid], atol=1e-4)
        sources.add(uid)
    assert {read_source_headers([files[k]])[0].SOPInstanceUID for k in moved} <= sources


def test_one_dicom_file_as_input_references_its_series(tmp_path):
    ct, _, _ = spine_ct("L3", "L4", above_mm=0.0)
    files = write_ct_series(ct, tmp_path / "series")
    longer, _, _ = spine_ct("L2", "L5", above_mm=0.0)  # what the folder alone would give
    write_ct_series(longer, tmp_path / "series", series_description="another series")
    out = tmp_path / "out"
    assert _segment([str(files[5]), "-o", str(out), "--formats", "dcm"]) == 0
    seg = pydicom.dcmread(out / "segmentation.dcm")
    series_uid = read_source_headers(files[:1])[0].SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
