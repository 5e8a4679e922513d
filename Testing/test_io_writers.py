"""Writers: labelmaps, Slicer segmentation, markups, VerSe centroid JSON, STL, PNG.

Every round trip runs on the oblique, flipped tiny grid of conftest, and measures that
the marked voxel and the centroids stay at the same place in the patient (LPS mm)."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from conftest import BLOCKS_K, MARKED_LABEL, MARKED_VOXEL_IJK

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, index_to_lps, lps_to_index
from SpineLabelerLib.io import read_labelmap
from SpineLabelerLib.io.centroids import read_verse_centroids, write_verse_centroids
from SpineLabelerLib.io.labelmap import write_labelmap, write_scalar_image
from SpineLabelerLib.io.markups import read_centroids_mrk_json, write_centroids_mrk_json
from SpineLabelerLib.io.overview import NOTE_COLOUR, render_overview, wrap_notes, write_overview_png
from SpineLabelerLib.io.segnrrd import write_seg_nrrd
from SpineLabelerLib.io.surfaces import label_surface, write_vertebra_surfaces

SCHEMA = "/work/shared/slicer/markups-schema-v1.0.3.json"


def marked_lps(labels: Image) -> np.ndarray:
    kji = np.argwhere(labels.array == MARKED_LABEL)
    assert len(kji) == 1
    return index_to_lps(labels, kji[0][::-1].astype(float))[0]


def open_or_non_manifold_edges(mesh) -> int:
    """Edges of a VTK surface that bound a hole or are shared by more than two triangles."""
    import vtk

    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(mesh)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


@pytest.mark.parametrize("name", ["labels.nii.gz", "labels.nii", "labels.nrrd"])
def test_labelmap_round_trip_keeps_values_and_geometry(tmp_path, tiny_labels, name):
    path = write_labelmap(tmp_path / name, tiny_labels)
    back = read_labelmap(path)
    assert back.same_grid(tiny_labels, tol=1e-5)
    np.testing.assert_array_equal(back.array, tiny_labels.array)
    np.testing.assert_allclose(marked_lps(back), marked_lps(tiny_labels), atol=1e-4)
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt8


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nrrd"])
def test_scalar_image_round_trip_keeps_dtype_values_and_geometry(tmp_path, tiny_ct, name, dtype):
    ct = tiny_ct.with_array(tiny_ct.array.astype(dtype) - 1000)  # negative HU survive
    path = write_scalar_image(tmp_path / name, ct)
    back = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), ct.array)
    assert sitk.GetArrayFromImage(back).dtype == dtype
    np.testing.assert_allclose(back.GetOrigin(), ct.origin_lps, atol=1e-4)
    np.testing.assert_allclose(np.reshape(back.GetDirection(), (3, 3)), ct.direction, atol=1e-5)
    np.testing.assert_allclose(back.GetSpacing(), ct.spacing_mm, atol=1e-6)


def test_scalar_image_writer_refuses_bad_input(tmp_path, tiny_ct):
    with pytest.raises(ValueError, match="must end with one of"):
        write_scalar_image(tmp_path / "ct.png", tiny_ct)
    with pytest.raises(ValueError, match="integers or floats"):
        write_scalar_image(tmp_path / "ct.nii.gz", tiny_ct.with_array(tiny_ct.array > 0))
    assert not list(tmp_path.iterdir())


def test_every_writer_refuses_to_overwrite_unless_forced(
    tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps
):
    writers = {
        "l.nii.gz": lambda p, f: write_labelmap(p, tiny_labels, force=f),
        "ct.nii.gz": lambda p, f: write_scalar_image(p, tiny_ct, force=f),
        "s.seg.nrrd": lambda p, f: write_seg_nrrd(p, tiny_labels, force=f),
        "c.mrk.json": lambda p, f: write_centroids_mrk_json(p, tiny_centroids_lps, force=f),
        "c.json": lambda p, f: write_verse_centroids(p, tiny_centroids_lps, force=f),
        "o.png": lambda p, f: write_overview_png(p, tiny_ct, tiny_labels, force=f),
    }
    for name, write in writers.items():
        path = tmp_path / name
        path.write_text("keep me")
        with pytest.raises(FileExistsError, match="already exists; use force=True"):
            write(path, False)
        assert path.read_text() == "keep me"
        write(path, True)
        assert path.stat().st_size > 0 and path.read_bytes() != b"keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial")]
    (tmp_path / "surf").mkdir()
    (tmp_path / "surf" / "L1.stl").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_vertebra_surfaces(tmp_path / "surf", tiny_labels)
    assert sorted(p.name for p in (tmp_path / "surf").iterdir()) == [
        "L1.stl"
    ]  # refused before any work


def test_seg_nrrd_reads_back_with_slicerio(tmp_path, tiny_labels):
    path = write_seg_nrrd(tmp_path / "segmentation.seg.nrrd", tiny_labels)
    seg = slicerio.read_segmentation(str(path))
    names = [s["name"] for s in seg["segments"]]
    assert names == ["C7", "T12", "L1", "L2"]
    for segment in seg["segments"]:
        v = anatomy.vertebra(segment["name"])
        assert segment["labelValue"] == v.label
        np.testing.assert_allclose(segment["color"], v.color_float, atol=1e-5)
        assert segment["terminology"]["category"] == ["SCT", "123037004", "Anatomical Structure"]
        assert segment["terminology"]["type"] == ["SCT", v.snomed_code, v.snomed_meaning]
    # Voxels come back in NRRD (I, J, K) order with the CT's ijk-to-LPS matrix.
    voxels_kji = seg["voxels"].transpose(2, 1, 0)
    np.testing.assert_array_equal(voxels_kji, tiny_labels.array)
    ijk = np.append(np.array(MARKED_VOXEL_IJK, float), 1.0)
    np.testing.assert_allclose((seg["ijkToLPS"] @ ijk)[:3], marked_lps(tiny_labels), atol=1e-5)
    l1 = slicerio.segment_from_name(seg, "L1")
    k0, k1 = BLOCKS_K[20]
    assert l1["extent"] == [8, 15, 6, 13, k0, k1 - 1]


def test_seg_nrrd_refuses_labels_outside_the_table(tmp_path, tiny_labels):
    bad = tiny_labels.array.copy()
    bad[0, 0, 0] = 28
    with pytest.raises(ValueError, match=r"label values \[28\] are not vertebrae"):
        write_seg_nrrd(tmp_path / "x.seg.nrrd", tiny_labels.with_array(bad))


def test_markups_validate_against_slicer_schema_and_round_trip(tmp_path, tiny_centroids_lps):
    path = write_centroids_mrk_json(tmp_path / "centroids.mrk.json", tiny_centroids_lps)
    document = json.loads(path.read_text())
    schema = json.loads(open(SCHEMA).read())
    jsonschema.validate(document, schema)
    (markup,) = document["markups"]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == "LPS"
    assert [p["label"] for p in markup["controlPoints"]] == ["C7", "T12", "L1", "L2"]
    assert all(p["locked"] for p in markup["controlPoints"])
    back = read_centroids_mrk_json(path)
    assert sorted(back) == sorted(tiny_centroids_lps)
    for label, lps in tiny_centroids_lps.items():
        np.testing.assert_allclose(back[label], lps, atol=1e-4)
    # A list saved by Slicer in RAS reads back in LPS.
    markup["coordinateSystem"] = "RAS"
    for p in markup["controlPoints"]:
        p["position"] = [-p["position"][0], -p["position"][1], p["position"][2]]
    (tmp_path / "ras.mrk.json").write_text(json.dumps(document))
    np.testing.assert_allclose(
        read_centroids_mrk_json(tmp_path / "ras.mrk.json")[20], tiny_centroids_lps[20], atol=1e-4
    )
    # An invalid document is caught by the same schema (the test can fail).
    markup["coordinateSystem"] = "XYZ"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_verse_centroid_json_is_lps_mm_and_round_trips(tmp_path, tiny_centroids_lps):
    path = write_verse_centroids(tmp_path / "centroids.json", tiny_centroids_lps)
    entries = json.loads(path.read_text())
    assert entries[0] == {"direction": ["L", "P", "S"], "coordinates": "LPS mm"}
    assert entries[1]["label"] == 7 and entries[1]["X"] == pytest.approx(
        tiny_centroids_lps[7][0], abs=1e-4
    )
    back = read_verse_centroids(path)
    for label, lps in tiny_centroids_lps.items():
        np.testing.assert_allclose(back[label], lps, atol=1e-4)


def test_real_verse_ctd_voxel_coordinates_are_mapped_through_the_image(tmp_path, tiny_labels):
    """A VerSe ctd file lists voxel coordinates along its own axis letters (here P, I, R)."""
    from SpineLabelerLib.image import orientation_code

    code = orientation_code(tiny_labels)
    opposite = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}
    size = tiny_labels.size_ijk
    target = np.array(MARKED_VOXEL_IJK, float)
    direction, coords = [], []
    for c in (1, 2, 0):  # permute the axes and reverse every one of them
        direction.append(opposite[code[c]])
        coords.append(size[c] - 1 - target[c])
    ctd = [
        {"direction": direction},
        {"label": 7, "X": coords[0], "Y": coords[1], "Z": coords[2]},
        {"label": 8, "X": "nan", "Y": "nan", "Z": "nan"},
    ]
    (tmp_path / "sub-x_ctd.json").write_text(json.dumps(ctd))
    with pytest.raises(ValueError, match="pass the image they belong to"):
        read_verse_centroids(tmp_path / "sub-x_ctd.json")
    back = read_verse_centroids(tmp_path / "sub-x_ctd.json", reference=tiny_labels)
    assert sorted(back) == [7]
    np.testing.assert_allclose(back[7], marked_lps(tiny_labels), atol=1e-6)


def test_stl_surface_overlays_the_label_on_an_oblique_flipped_grid(tmp_path, tiny_labels):
    import vtk

    paths = write_vertebra_surfaces(tmp_path / "surfaces", tiny_labels)
    assert sorted(p.name for p in paths.values()) == ["C7.stl", "L1.stl", "L2.stl", "T12.stl"]
    reader = vtk.vtkSTLReader()
    reader.SetFileName(str(paths[20]))
    reader.Update()
    mesh = reader.GetOutput()
    points = np.array([mesh.GetPoint(n) for n in range(mesh.GetNumberOfPoints())])
    # Physical bounds of the L1 voxels (their outer faces) on the oblique grid.
    k0, k1 = BLOCKS_K[20]
    corners = np.array(
        [[i, j, k] for i in (7.5, 15.5) for j in (5.5, 13.5) for k in (k0 - 0.5, k1 - 0.5)]
    )
    box_lps = index_to_lps(tiny_labels, corners)
    np.testing.assert_allclose(
        np.array(mesh.GetBounds()).reshape(3, 2)[:, 1], box_lps.max(axis=0), atol=2.6
    )
    np.testing.assert_allclose(
        np.array(mesh.GetBounds()).reshape(3, 2)[:, 0], box_lps.min(axis=0), atol=2.6
    )
    # Every point lies within the label's voxel faces in index space (no flip or rotation error).
    ijk = lps_to_index(tiny_labels, points)
    assert ijk[:, 0].min() >= 7.5 - 1e-3 and ijk[:, 0].max() <= 15.5 + 1e-3
    assert ijk[:, 1].min() >= 5.5 - 1e-3 and ijk[:, 1].max() <= 13.5 + 1e-3
    assert ijk[:, 2].min() >= k0 - 0.5 - 1e-3 and ijk[:, 2].max() <= k1 - 0.5 + 1e-3
    # Closed surface with outward normals: positive volume close to the voxels' volume.
    assert open_or_non_manifold_edges(mesh) == 0
    mass = vtk.vtkMassProperties()
    mass.SetInputData(label_surface(tiny_labels, 20, smoothing_iterations=0))
    mass.Update()
    voxels_mm3 = np.count_nonzero(tiny_labels.array == 20) * np.prod(tiny_labels.spacing_mm)
    assert mass.GetVolume() == pytest.approx(voxels_mm3, rel=1e-6)


def test_overview_shows_anterior_left_and_superior_up_whatever_the_axes(tiny_ct):
    """A bright block placed anterior-superior and one on the patient's right must land
    top-left in the sagittal view and on the left of the coronal view."""
    kji = np.argwhere(np.ones(tiny_ct.array.shape, bool))
    lps = index_to_lps(tiny_ct, kji[:, ::-1].astype(float)).reshape(tiny_ct.array.shape + (3,))
    centre = lps.reshape(-1, 3).mean(axis=0)
    hu = np.full(tiny_ct.array.shape, 40, np.int16)
    marker_sag = (lps[..., 1] < centre[1] - 4) & (lps[..., 2] > centre[2] + 8)  # anterior, superior
    hu[marker_sag] = 2000
    picture, layout = render_overview(tiny_ct.with_array(hu))
    rgb = np.asarray(picture).astype(int)

    def bright_centre(box):
        x0, y0, x1, y1 = box
        panel = rgb[y0:y1, x0:x1, 0]
        rows, cols = np.nonzero(panel == 255)
        return cols.mean() / panel.shape[1], rows.mean() / panel.shape[0]

    x, y = bright_centre(layout.sagittal_box)
    assert x < 0.4 and y < 0.35, (x, y)
    hu = np.full(tiny_ct.array.shape, 40, np.int16)
    hu[lps[..., 0] < centre[0] - 4] = 2000  # patient's right
    picture, layout = render_overview(tiny_ct.with_array(hu))
    rgb = np.asarray(picture).astype(int)
    x, _ = bright_centre(layout.coronal_box)
    assert x < 0.4, x
    # Square pixels: the panel's height/width ratio is the physical S / (A-P) extent ratio.
    corners = index_to_lps(
        tiny_ct,
        np.array([[a, b, c] for a in (-0.5, 23.5) for b in (-0.5, 19.5) for c in (-0.5, 15.5)]),
    )
    extent = np.ptp(corners, axis=0)
    x0, y0, x1, y1 = layout.sagittal_box
    assert (y1 - y0) / (x1 - x0) == pytest.approx(extent[2] / extent[1], rel=0.02)


def test_overview_blends_label_colours_and_writes_png(
    tmp_path, tiny_ct, tiny_labels, tiny_centroids_lps
):
    picture, layout = render_overview(tiny_ct, tiny_labels, tiny_centroids_lps)
    rgb = np.asarray(picture).astype(float)
    x0, y0, x1, y1 = layout.sagittal_box
    # L1's centroid pixel carries L1's colour blended over bone grey.
    from SpineLabelerLib.io.overview import _to_view_px, _view_grid

    grid = _view_grid(tiny_ct, "sagittal", np.array(layout.centre_lps), layout.mm_per_px)
    col, row = _to_view_px(grid, tiny_centroids_lps[20])
    pixel = rgb[y0 + int(round(row)), x0 + int(round(col))]
    grey = np.clip((700 - (300 - 750)) / 1500, 0, 1) * 255
    expected = 0.55 * grey + 0.45 * np.array(anatomy.vertebra("L1").color_rgb)
    np.testing.assert_allclose(pixel, expected, atol=1.0)
    path = write_overview_png(tmp_path / "overview.png", tiny_ct, tiny_labels, tiny_centroids_lps)
    from PIL import Image as PILImage

    assert PILImage.open(path).size == picture.size


def test_overview_writes_notes_under_the_views(tiny_ct, tiny_labels, tiny_centroids_lps):
    """A note that qualifies the result (thick voxels) is in the picture, below the views,
    wrapped to its width; the views themselves are the same as without it."""
    plain, layout = render_overview(tiny_ct, tiny_labels, tiny_centroids_lps)
    note = "3.0 mm voxels along one axis: outlines are less exact than on thin slices " * 3
    noted, noted_layout = render_overview(tiny_ct, tiny_labels, tiny_centroids_lps, [note])
    assert noted_layout == layout and noted.size[0] == plain.size[0]
    assert noted.size[1] > plain.size[1]
    np.testing.assert_array_equal(np.asarray(noted)[: plain.size[1]], np.asarray(plain))
    footer = np.asarray(noted)[plain.size[1] :]
    assert (footer == NOTE_COLOUR).all(axis=-1).any()


def test_wrap_notes_keeps_words_whole_and_lines_narrow():
    from PIL import ImageFont

    font = ImageFont.load_default(size=13)
    note = "outlines are less exact than on thin slices, the networks work at 1 mm " * 4
    lines = wrap_notes([note, "GPU out of memory"], 200, font)
    assert lines[0].startswith("- ") and lines[-1] == "- GPU out of memory"
    assert all(font.getlength(line) <= 200 for line in lines)
    assert " ".join(line[2:] for line in lines[:-1]).split() == note.split()


def test_stl_of_a_vertebra_cut_by_the_field_of_view_is_closed(tiny_labels):
    """A label touching the array's faces (common at the FOV edge) still gives a closed mesh."""
    cut = np.zeros_like(tiny_labels.array)
    cut[:5, :, -6:] = 19  # touches k = 0, j = 0 and J - 1, i = I - 1
    mesh = label_surface(tiny_labels.with_array(cut), 19, smoothing_iterations=0)
    assert open_or_non_manifold_edges(mesh) == 0
    ijk = lps_to_index(
        tiny_labels, np.array([mesh.GetPoint(n) for n in range(mesh.GetNumberOfPoints())])
    )
    np.testing.assert_allclose(ijk.min(axis=0), [18 - 0.5, -0.5, -0.5], atol=1e-6)
    np.testing.assert_allclose(ijk.max(axis=0), [23 + 0.5, 19 + 0.5, 4 + 0.5], atol=1e-6)


def curved_spine(
    count: int, height_mm: float, sideways_mm: float, forward_mm: float, pad_mm: int = 20
):
    """A hand-built spine on a 1 mm grid (identity direction): ``count`` boxes 16 x 14 mm
    (x, y) and ``height_mm`` tall from L5 upwards, HU 700 in 40 HU tissue, their centres
    bent sideways (LPS x, scoliosis) by up to ``sideways_mm`` and forwards (y, kyphosis)
    by up to ``forward_mm`` along half a sine wave; ``pad_mm`` of tissue above and below."""
    k_size = int(count * height_mm) + 2 * pad_mm
    ct = np.full((k_size, 90, 120), 40, np.int16)
    labels = np.zeros(ct.shape, np.uint8)
    names = [v.label for v in anatomy.VERTEBRAE if v.name != "L6"]  # C1 .. L5
    names = names[len(names) - count :]
    for n, label in enumerate(reversed(names)):  # L5 at the bottom
        k0 = pad_mm + int(round(n * height_mm))
        k1 = pad_mm + int(round((n + 1) * height_mm)) - 1  # a 1 mm disc between vertebrae
        bend = np.sin(np.pi * (n + 0.5) / count)
        x, y = 60 + sideways_mm * bend, 45 - forward_mm * bend
        box = (slice(k0, k1), slice(int(y - 7), int(y + 7)), slice(int(x - 8), int(x + 8)))
        ct[box], labels[box] = 700, label
    ct_img = Image(ct, (1.0, 1.0, 1.0), (-60.0, -45.0, 0.0), np.eye(3))
    return ct_img, ct_img.with_array(labels)


def panel_label_pixels(picture, box) -> dict[int, int]:
    """Pixels of each vertebra's blended colour (over HU 700 bone grey) in one panel."""
    x0, y0, x1, y1 = box
    panel = np.asarray(picture).astype(float)[y0:y1, x0:x1]
    grey = (700 - (300 - 750)) / 1500 * 255
    out = {}
    for v in anatomy.VERTEBRAE:
        expected = np.round(0.55 * grey + 0.45 * np.array(v.color_rgb))
        out[v.label] = int(np.all(np.abs(panel - expected) <= 1, axis=2).sum())
    return out


def test_curved_views_show_every_vertebra_of_a_scoliotic_kyphotic_spine():
    ct, labels = curved_spine(count=12, height_mm=14.0, sideways_mm=35.0, forward_mm=25.0)
    present = sorted(int(v) for v in np.unique(labels.array) if v)
    # a flat mid-sagittal / mid-coronal plane misses most vertebrae of this spine
    x_mid, y_mid = 60, 45
    assert sum(not (labels.array[:, :, x_mid] == v).any() for v in present) >= 6
    assert sum(not (labels.array[:, y_mid, :] == v).any() for v in present) >= 4
    picture, layout = render_overview(ct, labels)
    for box in (layout.sagittal_box, layout.coronal_box):
        shown = panel_label_pixels(picture, box)
        area_px = 14 * 12 / layout.mm_per_px**2  # a vertebra's smallest cut, 14 x 12 mm
        assert all(shown[v] > 0.5 * area_px for v in present), {v: shown[v] for v in present}
        assert all(n == 0 for v, n in shown.items() if v not in present)
    assert set(layout.name_boxes["coronal"]) == set(present) == set(layout.name_boxes["sagittal"])
    assert list(layout.labels_shown["sagittal"]) == present == list(layout.labels_shown["coronal"])


def test_centre_line_follows_the_centroids_and_holds_beyond_the_ends():
    from SpineLabelerLib.io.overview import _view_grid, centre_line_offsets

    ct, _ = curved_spine(count=3, height_mm=10.0, sideways_mm=0.0, forward_mm=0.0)
    grid = _view_grid(ct, "sagittal", np.array([0.0, 0.0, 20.0]), 1.0)  # plane x = 0
    rows_z = grid.origin_lps[2] - np.arange(grid.array.shape[1])  # S -> I, 1 mm rows
    centroids = {20: np.array([10.0, 0, 20.0]), 21: np.array([-6.0, 0, 30.0])}
    offsets = centre_line_offsets(grid, centroids)
    np.testing.assert_allclose(offsets[rows_z >= 30], -6.0)
    np.testing.assert_allclose(offsets[rows_z <= 20], 10.0)
    mid = np.argmin(np.abs(rows_z - 25.0))
    assert offsets[mid] == pytest.approx(2.0 - 1.6 * (rows_z[mid] - 25.0), abs=1e-9)
    assert not centre_line_offsets(grid, None).any()


def test_close_names_are_spread_apart_without_overlap():
    from SpineLabelerLib.io.overview import spread_positions

    # 24 vertebrae 5 mm tall in a 320 mm field: 8 px apart, less than the text height
    ct, labels = curved_spine(
        count=24, height_mm=5.0, sideways_mm=20.0, forward_mm=10.0, pad_mm=100
    )
    picture, layout = render_overview(ct, labels)
    assert 5.0 / layout.mm_per_px < 10
    for view in ("sagittal", "coronal"):
        boxes = layout.name_boxes[view]
        assert len(boxes) == 24
        x0, y0, x1, y1 = getattr(layout, f"{view}_box")
        items = sorted(boxes.values(), key=lambda b: b[1])
        for a, b in zip(items, items[1:]):
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_x <= 0 or overlap_y <= 0, (view, a, b)
        assert all(x0 <= b[0] and b[2] <= x1 + 2 and y0 <= b[1] and b[3] <= y1 for b in items)
        # no name is written over a vertebra
        for label, (bx0, by0, bx1, by1) in boxes.items():
            covered = panel_label_pixels(picture, (bx0, by0, bx1, by1))
            assert sum(covered.values()) == 0, (view, label, covered)
        # names stay in anatomical order, top to bottom (C1 first)
        order = [label for label, _ in sorted(boxes.items(), key=lambda kv: kv[1][1])]
        assert order == sorted(order)
    # the spreading itself: groups centred on their wanted mean, order kept, bounds respected
    assert spread_positions([10.0, 11.0, 50.0], 10.0, 0.0, 100.0) == [5.5, 15.5, 50.0]
    assert spread_positions([3.0, 2.0], 10.0, 0.0, 100.0) == [10.0, 0.0]
    assert spread_positions([99.0, 98.0, 97.0], 10.0, 0.0, 100.0) == [100.0, 90.0, 80.0]
