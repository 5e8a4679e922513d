"""SpineLabelerLogic (the Slicer module's glue) run against a small stand-in for Slicer.

Slicer cannot be installed here, so this test replaces the few Slicer calls the logic
makes (segmentation / markups / table nodes, ``slicer.util`` array helpers) with plain
Python objects that follow Slicer's documented behaviour, and uses the real VTK for
matrices, vectors and tables. It catches mistakes in the glue (wrong names, wrong flow,
wrong geometry hand-over) and runs the module's own in-Slicer correction test; it does
not replace running ``SpineLabelerTest`` inside Slicer (docs/SLICER.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import vtk

from SpineLabelerLib import anatomy
from SpineLabelerLib.image import Image, ijk_to_ras_matrix, lps_to_ras
from SpineLabelerLib.relabel import vertebra_centroids_lps

ROOT = Path(__file__).resolve().parent.parent


# -- the stand-in -----------------------------------------------------------------------


class Node:
    def __init__(self, scene: Scene, class_name: str, name: str) -> None:
        self.scene, self.class_name, self.name = scene, class_name, name
        self.id = f"{class_name}{len(scene.nodes) + 1}"
        self.attributes: dict[str, str] = {}
        self.references: dict[str, str] = {}
        self.display = None

    def GetID(self):
        return self.id

    def GetName(self):
        return self.name

    def IsA(self, class_name):
        return class_name == self.class_name

    def SetAttribute(self, key, value):
        self.attributes[key] = value

    def GetAttribute(self, key):
        return self.attributes.get(key)

    def SetNodeReferenceID(self, role, node_id):
        self.references[role] = node_id

    def GetNodeReference(self, role):
        return self.scene.GetNodeByID(self.references.get(role))

    def StartModify(self):
        return 0

    def EndModify(self, was_modifying):
        pass

    def Modified(self):
        pass

    def CreateDefaultDisplayNodes(self):
        self.display = types.SimpleNamespace(visible=True)
        self.display.SetVisibility = lambda v: setattr(self.display, "visible", bool(v))

    def GetDisplayNode(self):
        return self.display


class VolumeNode(Node):
    def __init__(self, scene, name, array, ijk_to_ras):
        super().__init__(scene, "vtkMRMLScalarVolumeNode", name)
        self.array, self.ijk_to_ras = array, np.asarray(ijk_to_ras, float)

    def GetParentTransformNode(self):
        return None

    def GetIJKToRASMatrix(self, matrix):
        for r in range(4):
            for c in range(4):
                matrix.SetElement(r, c, self.ijk_to_ras[r, c])


class Segment:
    def __init__(self, name, color):
        self.name, self.color, self.tags, self.mask = name, tuple(color), {}, None

    def GetName(self):
        return self.name

    def SetColor(self, color):
        self.color = tuple(float(c) for c in color)

    def GetColor(self):
        return self.color

    @staticmethod
    def GetTerminologyEntryTagName():
        return "TerminologyEntry"

    def SetTag(self, key, value):
        self.tags[key] = value

    def GetTag(self, key, out):
        out.set(self.tags.get(key, ""))
        return key in self.tags


class Segmentation:
    def __init__(self):
        self.segments: dict[str, Segment] = {}

    def GetNumberOfSegments(self):
        return len(self.segments)

    def GetNthSegmentID(self, n):
        return list(self.segments)[n]

    def GetSegment(self, segment_id):
        return self.segments.get(segment_id)

    def AddEmptySegment(self, segment_id="", name="", color=None):
        segment_id = segment_id or f"Segment_{len(self.segments) + 1}"
        while segment_id in self.segments:  # Slicer makes the ID unique
            segment_id += "_1"
        self.segments[segment_id] = Segment(name or segment_id, color or (0.5, 0.5, 0.5))
        return segment_id

    def RemoveSegment(self, segment_id):
        del self.segments[segment_id]

    def GetSegmentIdBySegmentName(self, name):
        return next((i for i, s in self.segments.items() if s.name == name), "")


class SegmentationNode(Node):
    def __init__(self, scene, name):
        super().__init__(scene, "vtkMRMLSegmentationNode", name)
        self.segmentation = Segmentation()
        self.reference_volume = None
        self.closed_surface = False

    def GetSegmentation(self):
        return self.segmentation

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volume):
        self.reference_volume = volume

    def CreateClosedSurfaceRepresentation(self):
        self.closed_surface = True


class MarkupsNode(Node):
    def __init__(self, scene, name):
        super().__init__(scene, "vtkMRMLMarkupsFiducialNode", name)
        self.points: list[tuple[list[float], str]] = []
        self.locked = False

    def RemoveAllControlPoints(self):
        self.points = []

    def AddControlPoint(self, position, label=""):
        assert isinstance(position, vtk.vtkVector3d)
        self.points.append(([position[0], position[1], position[2]], label))
        return len(self.points) - 1

    def SetLocked(self, locked):
        self.locked = bool(locked)

    def GetLocked(self):
        return self.locked

    def GetNumberOfControlPoints(self):
        return len(self.points)

    def GetNthControlPointPosition(self, n, out):
        out[:] = self.points[n][0]

    def GetNthControlPointLabel(self, n):
        return self.points[n][1]


class TableNode(Node):
    def __init__(self, scene, name):
        super().__init__(scene, "vtkMRMLTableNode", name)
        self.table = vtk.vtkTable()

    def GetTable(self):
        return self.table


class Scene:
    classes = {
        "vtkMRMLSegmentationNode": SegmentationNode,
        "vtkMRMLMarkupsFiducialNode": MarkupsNode,
        "vtkMRMLTableNode": TableNode,
    }

    def __init__(self):
        self.nodes: dict[str, Node] = {}

    def add(self, node):
        self.nodes[node.id] = node
        return node

    def AddNewNodeByClass(self, class_name, name=""):
        return self.add(self.classes[class_name](self, name or class_name))

    def GetNodeByID(self, node_id):
        return self.nodes.get(node_id)

    def GenerateUniqueName(self, name):
        names = {n.name for n in self.nodes.values()}
        candidate, n = name, 1
        while candidate in names:
            candidate, n = f"{name}_{n}", n + 1
        return candidate

    def Clear(self, *args):
        self.nodes.clear()


def _util(scene: Scene) -> types.ModuleType:
    util = types.ModuleType("slicer.util")
    util.VTKObservationMixin = type("VTKObservationMixin", (), {"__init__": lambda self: None})
    util.EXIT_SUCCESS, util.EXIT_FAILURE = 0, 1

    def array_from_vtk_matrix(matrix):
        return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

    def add_volume_from_array(array, ijk_to_ras=None, name=None, node_class=None):
        return scene.add(
            VolumeNode(
                scene, name or "Volume", array, np.eye(4) if ijk_to_ras is None else ijk_to_ras
            )
        )

    def check_reference(segmentation_node, volume):
        # The logic always hands over the source volume as the reference geometry.
        assert volume is not None and volume.IsA("vtkMRMLScalarVolumeNode")

    def array_from_segment(segmentation_node, segment_id, volume=None):
        check_reference(segmentation_node, volume)
        return segmentation_node.segmentation.segments[segment_id].mask.copy()

    def update_segment(mask, segmentation_node, segment_id, volume=None):
        check_reference(segmentation_node, volume)
        assert mask.shape == volume.array.shape, (mask.shape, volume.array.shape)
        segmentation_node.segmentation.segments[segment_id].mask = (np.asarray(mask) > 0).astype(
            np.uint8
        )

    def nodes_by_class(class_name):
        return [n for n in scene.nodes.values() if n.IsA(class_name)]

    def refuse(*args, **kwargs):
        raise AssertionError("the logic asked the user or installed a package in testing mode")

    def load_volume(path):
        from SpineLabelerLib.io.reader import read_ct

        image = read_ct(path)
        return scene.add(
            VolumeNode(scene, Path(path).name.split(".")[0], image.array, ijk_to_ras_matrix(image))
        )

    util.loadVolume = load_volume
    util.arrayFromVTKMatrix = array_from_vtk_matrix
    util.arrayFromVolume = lambda node: node.array
    util.addVolumeFromArray = add_volume_from_array
    util.arrayFromSegmentBinaryLabelmap = array_from_segment
    util.updateSegmentBinaryLabelmapFromArray = update_segment
    util.getNodesByClass = nodes_by_class
    util.pip_install = util.confirmOkCancelDisplay = util.confirmYesNoDisplay = refuse
    return util


@pytest.fixture()
def module(monkeypatch):
    """SpineLabeler/SpineLabeler.py imported against the stand-in; yields (module, scene)."""
    scene = Scene()
    slicer = types.ModuleType("slicer")
    slicer.mrmlScene = scene
    slicer.util = _util(scene)
    slicer.app = types.SimpleNamespace(
        commandOptions=lambda: types.SimpleNamespace(testingEnabled=True)
    )
    slicer.vtkMRMLScalarVolumeNode = type("vtkMRMLScalarVolumeNode", (), {})
    slicer.vtkMRMLSegmentationNode = type("vtkMRMLSegmentationNode", (), {})
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")

    class Base:
        def __init__(self, *args, **kwargs):
            pass

    import unittest

    scripted.ScriptedLoadableModule = scripted.ScriptedLoadableModuleWidget = Base
    scripted.ScriptedLoadableModuleLogic = Base
    scripted.ScriptedLoadableModuleTest = type(
        "ScriptedLoadableModuleTest", (unittest.TestCase,), {}
    )
    for name, value in {
        "slicer": slicer,
        "slicer.util": slicer.util,
        "slicer.parameterNodeWrapper": wrapper,
        "slicer.ScriptedLoadableModule": scripted,
        "qt": types.ModuleType("qt"),
    }.items():
        monkeypatch.setitem(sys.modules, name, value)
    spec = importlib.util.spec_from_file_location(
        "SpineLabeler", ROOT / "SpineLabeler" / "SpineLabeler.py"
    )
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    yield loaded, scene


# -- the tests ----------------------------------------------------------------------------


def _oblique_boxes(names=("T11", "T12", "L1", "L2")) -> Image:
    """Boxes stacked along k on an oblique 0.8 x 0.8 x 2 mm grid (LPS); first name on top."""
    labels = np.zeros((40, 16, 16), np.uint8)
    for position, name in enumerate(names):
        top = 38 - position * 9
        labels[top - 7 : top, 3:13, 3:13] = anatomy.BY_NAME[name].label
    a = np.radians(25.0)
    direction = np.array(
        [[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]]
    )
    return Image(labels, (0.8, 0.8, 2.0), (-12.0, 30.0, 40.0), direction)


def _volume(scene, module, labels: Image):
    ct = np.where(labels.array > 0, 400, -1000).astype(np.int16)
    return module.slicer.util.addVolumeFromArray(ct, ijk_to_ras_matrix(labels), "CT")


def test_volume_geometry_reaches_the_library_as_lps(module):
    mod, scene = module
    labels = _oblique_boxes()
    volume = _volume(scene, mod, labels)
    image = mod.volumeImage(volume)
    assert image.same_grid(labels)
    np.testing.assert_array_equal(mod.volumeImage(volume, labels.array).array, labels.array)


def test_set_labels_makes_named_coloured_coded_segments_markups_and_table(module):
    mod, scene = module
    logic = mod.SpineLabelerLogic()
    labels = _oblique_boxes()
    volume = _volume(scene, mod, labels)
    node = logic._newSegmentationNode(volume)
    assert node.GetName() == "CT vertebrae" and node.reference_volume is volume
    node.SetAttribute(mod.SOURCE_VOLUME_ATTRIBUTE, volume.GetID())
    node.segmentation.AddEmptySegment("", "liver", (1, 0, 0))  # a user's own segment stays
    logic.setLabels(node, labels, {19: {"confidence": 0.87, "partial": True}}, remember=False)

    names = [s.name for s in node.segmentation.segments.values()]
    assert names == ["liver", "T11", "T12", "L1", "L2"]
    for name in ("T11", "L2"):
        segment = node.segmentation.segments[node.segmentation.GetSegmentIdBySegmentName(name)]
        assert segment.color == anatomy.BY_NAME[name].color_float
        assert anatomy.BY_NAME[name].snomed_code in segment.tags["TerminologyEntry"]
    np.testing.assert_array_equal(logic.labelsFromSegmentation(node).array, labels.array)

    markups = node.GetNodeReference(mod.CENTROIDS_REFERENCE)
    assert markups.GetLocked() and markups.GetName() == "CT vertebrae centroids"
    expected = {
        anatomy.vertebra(k).name: lps_to_ras(c) for k, c in vertebra_centroids_lps(labels).items()
    }
    assert [label for _, label in markups.points] == ["T11", "T12", "L1", "L2"]
    for position, label in markups.points:
        np.testing.assert_allclose(position, expected[label], atol=1e-9)

    table = node.GetNodeReference(mod.TABLE_REFERENCE).GetTable()
    assert table.GetNumberOfRows() == 4 and table.GetColumnName(0) == "Vertebra"
    assert [table.GetValue(r, 0).ToString() for r in range(4)] == ["T11", "T12", "L1", "L2"]
    assert table.GetValue(1, 2).ToString() == "0.87" and table.GetValue(1, 3).ToString() == "yes"
    assert table.GetValue(0, 2).ToString() == ""  # no confidence known for T11
    assert table.GetValue(0, 4).ToDouble() == pytest.approx(
        10 * 10 * 7 * 0.8 * 0.8 * 2.0 / 1000, abs=0.01
    )


def test_the_modules_own_correction_test_passes(module):
    mod, _ = module
    case = mod.SpineLabelerTest()
    case.setUp()
    case.test_corrections_on_a_known_labelmap()


def test_relabel_then_undo_and_exports_equal_the_library_writers(module, tmp_path):
    mod, scene = module
    logic = mod.SpineLabelerLogic()
    labels = _oblique_boxes()
    volume = _volume(scene, mod, labels)
    node = logic._newSegmentationNode(volume)
    node.SetAttribute(mod.SOURCE_VOLUME_ATTRIBUTE, volume.GetID())
    logic.setLabels(node, labels, {}, remember=False)
    assert not logic.canUndo(node)
    assert logic.relabelFromHere(node, "L2", "L3") == {18: 19, 19: 20, 20: 21, 21: 22}
    assert [r["name"] for r in logic.vertebraRows(node)] == ["T12", "L1", "L2", "L3"]
    assert logic.canUndo(node)

    from SpineLabelerLib.io.markups import read_centroids_mrk_json
    from SpineLabelerLib.io.reader import read_labelmap

    shifted = logic.labelsFromSegmentation(node)
    logic.exportLabelmap(node, tmp_path / "labels.nrrd")
    assert read_labelmap(tmp_path / "labels.nrrd").same_grid(labels)
    np.testing.assert_array_equal(read_labelmap(tmp_path / "labels.nrrd").array, shifted.array)
    mrk, csv = logic.exportCentroids(node, tmp_path / "c.mrk.json", tmp_path / "c.csv")
    points = read_centroids_mrk_json(mrk)
    assert sorted(points) == [19, 20, 21, 22]
    assert csv.read_text().splitlines()[1].startswith("T12,19,")

    logic.undo(node)
    np.testing.assert_array_equal(logic.labelsFromSegmentation(node).array, labels.array)
    with pytest.raises(ValueError, match="Nothing to undo"):
        logic.undo(node)


def test_load_results_from_the_command_lines_files(module, tmp_path):
    """The files a `segment` run writes become a new node; a second load never reuses it."""
    mod, scene = module
    from SpineLabelerLib.io.labelmap import write_labelmap

    logic = mod.SpineLabelerLogic()
    labels = _oblique_boxes(("L3", "L4", "L5"))
    volume = _volume(scene, mod, labels)
    out = tmp_path / "out"
    out.mkdir()
    write_labelmap(out / "labels.nii.gz", labels)
    vertebrae = [
        {"label": v, "name": anatomy.vertebra(v).name, "partial": v == 22, "confidence": 0.5}
        for v in (22, 23, 24)
    ]
    (out / "report.json").write_text(json.dumps({"no_spine_found": False, "vertebrae": vertebrae}))
    first = logic.loadFolder(volume, out, makeMarkups=False)
    assert first.message == "3 vertebrae found."
    assert [r["name"] for r in first.vertebrae] == ["L3", "L4", "L5"]
    assert first.vertebrae[0]["partial"] is True and first.vertebrae[1]["confidence"] == 0.5
    assert first.segmentation.closed_surface and not first.markups.display.visible
    assert logic.resultsForVolume(volume) == [first.segmentation]
    second = logic.loadFolder(volume, out)
    assert second.segmentation is not first.segmentation
    assert second.segmentation.GetName() == "CT vertebrae_1"
    replaced = logic.loadFolder(volume, out, replace=first.segmentation)
    assert replaced.segmentation is first.segmentation
    noted = {"vertebrae": vertebrae, "messages": ["3.0 mm voxels along one axis"]}
    (out / "report.json").write_text(json.dumps(noted))
    assert logic.loadFolder(volume, out).message == (
        "3 vertebrae found. Note: 3.0 mm voxels along one axis."
    )

    (out / "report.json").write_text(
        json.dumps({"no_spine_found": True, "vertebrae": [], "messages": ["no vertebra region"]})
    )
    empty = logic.loadFolder(volume, out)
    assert (
        empty.segmentation is None
        and empty.message == "No spine found in this CT. (no vertebra region)"
    )


def test_a_volume_under_a_transform_is_refused(module):
    mod, scene = module
    volume = _volume(scene, mod, _oblique_boxes())
    volume.GetParentTransformNode = lambda: object()
    with pytest.raises(ValueError, match="harden the transform"):
        mod.volumeImage(volume)


@pytest.mark.slow
def test_the_modules_phantom_test_passes_with_the_shipped_weights(module):
    """The module's end-to-end test (child process, real `segment`) once weights exist."""
    if not (ROOT / "Resources" / "Models" / "stage1.pt").is_file():
        pytest.skip("no shipped weights in Resources/Models yet")
    mod, _ = module
    case = mod.SpineLabelerTest()
    case.setUp()
    case.test_segment_phantom_and_export()


def test_exports_equal_what_the_command_line_writes(module, tmp_path):
    """Files written by the CLI's writer (io.results) and the module's export of the loaded
    result are the same: labelmap voxels and grid, centroid markups and STL files, byte for byte."""
    mod, scene = module
    from SpineLabelerLib.io.reader import read_labelmap
    from SpineLabelerLib.io.results import write_result_files

    logic = mod.SpineLabelerLogic()
    labels = _oblique_boxes(("T12", "L1", "L2"))
    volume = _volume(scene, mod, labels)
    ct = mod.volumeImage(volume)
    cli = tmp_path / "cli"
    report = {
        "vertebrae": [{"label": v, "partial": False, "confidence": 0.9} for v in (19, 20, 21)]
    }
    write_result_files(cli, ct, labels, vertebra_centroids_lps(labels), extra_report=report)
    result = logic.loadFolder(volume, cli)

    export = tmp_path / "export"
    logic.exportLabelmap(result.segmentation, export / "labels.nii.gz")
    mine, theirs = read_labelmap(export / "labels.nii.gz"), read_labelmap(cli / "labels.nii.gz")
    assert mine.same_grid(theirs)
    np.testing.assert_array_equal(mine.array, theirs.array)
    logic.exportCentroids(result.segmentation, export / "centroids.mrk.json")
    assert (export / "centroids.mrk.json").read_bytes() == (cli / "centroids.mrk.json").read_bytes()
    written = logic.exportSurfaces(result.segmentation, export / "surfaces")
    assert sorted(p.name for p in written.values()) == ["L1.stl", "L2.stl", "T12.stl"]
    for path in written.values():
        assert path.read_bytes() == (cli / "surfaces" / path.name).read_bytes()


def test_start_segmentation_hands_the_volume_to_a_child_and_cancel_stops_it(module):
    """The CT the child reads is the volume (voxels and LPS grid); Cancel ends the child and
    the temporary folder goes."""
    mod, scene = module
    from SpineLabelerLib.io.reader import read_ct

    logic = mod.SpineLabelerLogic()
    labels = _oblique_boxes()
    volume = _volume(scene, mod, labels)
    run = logic.startSegmentation(volume, device="cpu", fast=True)
    folder = Path(run.workDir.name)
    try:
        argv = run.job.argv
        assert argv[1:4] == ["-m", "SpineLabelerLib.cli", "segment"]
        assert argv[argv.index("--progress") + 1] == "lines" and "--fast" in argv
        assert "--real-shapes" not in argv and "--bone-edges" not in argv
        written = read_ct(folder / "ct.nrrd")
        assert written.same_grid(labels)
        np.testing.assert_array_equal(written.array, volume.array)
        run.job.cancel(grace_s=10.0)
        assert run.job.cancelled and run.job._process.poll() is not None
    finally:
        run.cleanup()
    assert not folder.exists()


def test_the_real_ct_options_reach_the_child(module):
    """The panel's real-shape net and bone-edge boxes become the child's flags."""
    mod, scene = module
    logic = mod.SpineLabelerLogic()
    volume = _volume(scene, mod, _oblique_boxes())
    run = logic.startSegmentation(volume, device="cpu", realShapes=True, boneEdges=True)
    try:
        assert {"--real-shapes", "--bone-edges"} <= set(run.job.argv)
        run.job.cancel(grace_s=10.0)
    finally:
        run.cleanup()
    assert {"realShapes", "boneEdges"} <= set(mod.SpineLabelerParameterNode.__annotations__)


# -- DICOM SEG export through Slicer's route ----------------------------------------------


class SubjectHierarchy:
    """Slicer's subject hierarchy node, as far as the export uses it (items are node IDs)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.parents: dict[str, str] = {}
        self.attributes: dict[tuple[str, str], str] = {}

    def GetItemByDataNode(self, node):
        return node.GetID()

    def GetItemDataNode(self, item):
        return self.scene.GetNodeByID(item)

    def GetItemParent(self, item):
        return self.parents.get(item, "scene")

    def SetItemParent(self, item, parent):
        self.parents[item] = parent

    def SetItemAttribute(self, item, key, value):
        self.attributes[(item, key)] = value


class SegmentationExporter:
    """DICOMSegmentationPlugin.DICOMSegmentationPluginClass as Slicer documents it: an
    exportable for a segmentation item; export() writes a SEG into the exportable's folder,
    adds it to the DICOM database and returns "" (else an error message)."""

    error = ""
    exported: list = []

    def __init__(self):
        self.sh = sys.modules["slicer"].mrmlScene.GetSubjectHierarchyNode()

    def examineForExport(self, item):
        node = self.sh.GetItemDataNode(item)
        if node is None or not node.IsA("vtkMRMLSegmentationNode"):
            return []
        exportable = types.SimpleNamespace(subjectHierarchyItemID=item, directory="", tags={})
        exportable.setTag = lambda key, value: exportable.tags.__setitem__(key, value)
        return [exportable]

    def export(self, exportables):
        if self.error:
            return self.error
        for exportable in exportables:
            path = Path(exportable.directory) / "subject_hierarchy_export.SEG20260101.dcm"
            path.write_bytes(b"DICM")
            SegmentationExporter.exported.append((exportable, path))
        return ""


@pytest.fixture()
def dicom_route(module, monkeypatch, tmp_path):
    """The module with Slicer's subject hierarchy and DICOM SEG exporter stood in for."""
    mod, scene = module
    sh = SubjectHierarchy(scene)
    scene.GetSubjectHierarchyNode = lambda: sh
    mod.slicer.vtkMRMLSubjectHierarchyConstants = types.SimpleNamespace(
        GetDICOMReferencedInstanceUIDsAttributeName=lambda: "DICOM.ReferencedInstanceUIDs"
    )
    mod.slicer.app.temporaryPath = str(tmp_path)
    plugin = types.ModuleType("DICOMSegmentationPlugin")
    plugin.DICOMSegmentationPluginClass = SegmentationExporter
    monkeypatch.setitem(sys.modules, "DICOMSegmentationPlugin", plugin)
    monkeypatch.setattr(SegmentationExporter, "exported", [])
    monkeypatch.setattr(SegmentationExporter, "error", "")
    logic = mod.SpineLabelerLogic()
    labels = _oblique_boxes(("T12", "L1", "L2"))
    volume = _volume(scene, mod, labels)
    node = logic._newSegmentationNode(volume)
    node.SetAttribute(mod.SOURCE_VOLUME_ATTRIBUTE, volume.GetID())
    logic.setLabels(node, labels, remember=False)
    return mod, logic, volume, node, sh


def test_dicom_export_goes_through_slicers_seg_exporter_under_the_cts_study(dicom_route, tmp_path):
    mod, logic, volume, node, sh = dicom_route
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3.1 1.2.3.2")
    sh.SetItemParent(volume.GetID(), "study-of-the-ct")
    l1 = node.segmentation.GetSegment(node.segmentation.GetSegmentIdBySegmentName("L1"))
    l1.SetTag(mod.ALGORITHM_TYPE_TAG, "SEMIAUTOMATIC")  # a segment that names its own algorithm

    path = logic.exportDicomSeg(node, tmp_path / "seg")
    (exportable, written) = SegmentationExporter.exported[0]
    assert path == written and path.parent == tmp_path / "seg"
    assert exportable.subjectHierarchyItemID == node.GetID()
    assert exportable.tags["SeriesDescription"] == "CT vertebrae (SpineLabeler)"
    assert sh.GetItemParent(node.GetID()) == "study-of-the-ct"
    assert sh.attributes[(node.GetID(), "DICOM.ReferencedInstanceUIDs")] == "1.2.3.1 1.2.3.2"
    assert node.reference_volume is volume
    tags = {s.name: s.tags for s in node.segmentation.segments.values()}
    assert tags["T12"][mod.ALGORITHM_TYPE_TAG] == "AUTOMATIC"
    assert tags["T12"][mod.ALGORITHM_NAME_TAG] == "SpineLabeler"
    assert tags["L1"][mod.ALGORITHM_TYPE_TAG] == "SEMIAUTOMATIC"
    assert mod.ALGORITHM_NAME_TAG not in tags["L1"]


def test_dicom_export_of_a_ct_not_from_the_dicom_database_is_refused(dicom_route):
    _, logic, _, node, _ = dicom_route
    with pytest.raises(ValueError, match="not loaded from Slicer's DICOM database"):
        logic.exportDicomSeg(node)
    assert SegmentationExporter.exported == []


def test_dicom_export_says_what_slicers_exporter_said(dicom_route, monkeypatch):
    _, logic, volume, node, _ = dicom_route
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3.1")
    monkeypatch.setattr(SegmentationExporter, "error", "No non empty segments found.")
    with pytest.raises(RuntimeError, match="No non empty segments found"):
        logic.exportDicomSeg(node)


def test_dicom_export_without_slicers_seg_exporter_says_where_to_get_it(dicom_route, monkeypatch):
    _, logic, volume, node, _ = dicom_route
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3.1")
    monkeypatch.setitem(sys.modules, "DICOMSegmentationPlugin", None)  # import fails
    with pytest.raises(ValueError, match="QuantitativeReporting"):
        logic.exportDicomSeg(node)
