"""SpineLabeler: one click to a segmented, centred and named spine (C1-L6) in 3D Slicer.

The module is glue: every decision (segmenting, naming, relabelling, merging, splitting,
centroids, file formats) lives in the pure-Python library ``SpineLabelerLib``; this file
converts between Slicer nodes and the library's ``Image`` (array ``(K, J, I)``, LPS mm)
and draws the panel. RAS <-> LPS crosses only through ``SpineLabelerLib.image``.

Why segmentation runs in a child process (``PythonSlicer -m SpineLabelerLib.cli segment
... --progress lines``) rather than inside Slicer's Python:
- the GUI stays alive: the panel polls the child's ``PROGRESS`` lines with a QTimer;
- Cancel is a clean stop: the child is terminated and nothing half-done enters the scene;
- a crash inside torch (out of memory, a driver fault) ends the child, not Slicer.
The logic can also run it synchronously (``SpineLabelerLogic().segment(volumeNode)``) from
the Python console and from the module test.
"""

import importlib.util
import json
import logging
import tempfile
import types
from pathlib import Path

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# Python packages the library needs beyond what Slicer ships (numpy, SimpleITK, VTK):
# import name -> pip requirement. torch comes from the PyTorch extension (SlicerPyTorch).
PIP_REQUIREMENTS = {
    "scipy": "scipy",
    "skimage": "scikit-image",
    "slicerio": "slicerio",
    "nrrd": "pynrrd",
    "PIL": "pillow",
    "highdicom": "highdicom",
}
DEVICES = ("auto", "cpu", "cuda")
OUTPUT_FORMATS = ("seg.nrrd", "nii.gz", "mrk.json", "stl", "png")

# Node attributes and references that tie a result together.
SOURCE_VOLUME_ATTRIBUTE = "SpineLabeler.SourceVolumeID"
VERTEBRAE_ATTRIBUTE = "SpineLabeler.Vertebrae"  # JSON {label: {"confidence": c, "partial": p}}
CENTROIDS_REFERENCE = "SpineLabelerCentroids"
TABLE_REFERENCE = "SpineLabelerTable"
# Segment tags Slicer's DICOM SEG exporter reads (a segment without them counts as MANUAL).
ALGORITHM_TYPE_TAG = "DICOM.SegmentAlgorithmType"
ALGORITHM_NAME_TAG = "DICOM.SegmentAlgorithmName"


#
# SpineLabeler
#


class SpineLabeler(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Spine Labeler"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineLabeler developers"]
        self.parent.helpText = (
            "Finds, segments and names every vertebra (C1-C7, T1-T12, L1-L6) in a CT with the "
            "cascaded fully convolutional networks of Masuzawa et al. (MICCAI 2020), then lets "
            "you correct names (relabel from here), merge or split vertebrae, update centroids "
            "and export labelmaps, surfaces and centroid lists."
            "<br><b>For research use only; not for clinical diagnosis.</b>"
        )
        self.parent.acknowledgementText = (
            "Method: Masuzawa N., Kitamura Y., Nakamura K., Iizuka S., Simo-Serra E., "
            "Automatic Segmentation, Localization, and Identification of Vertebrae in 3D CT "
            "Images Using Cascaded Convolutional Neural Networks, MICCAI 2020. "
            "For research use only; not for clinical diagnosis."
        )


#
# Parameter node
#


@parameterNodeWrapper
class SpineLabelerParameterNode:
    """Panel state saved with the scene.

    inputVolume - the CT to segment.
    segmentation - the result being corrected and exported.
    fast - coarser stage 1, fewer iterations per vertebra.
    realShapes - the outlines of the stage-2 net fine-tuned on real expert masks whole, rim
        included (nearer a real expert's; on the phantoms a little wider than their labels);
        without it that net only adds the thick parts the default net leaves out.
    boneEdges - each vertebra grown over the CT's bone up to 1.5 mm.
    makeSegmentation / makeMarkups / makeSurfaces - which outputs to show.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    fast: bool = False
    realShapes: bool = False
    boneEdges: bool = False
    makeSegmentation: bool = True
    makeMarkups: bool = True
    makeSurfaces: bool = True


#
# Library access
#


def _lib():
    """Import the library lazily: it needs scipy & co., installed on first use."""
    import SpineLabelerLib.anatomy as anatomy
    import SpineLabelerLib.childjob as childjob
    import SpineLabelerLib.image as image
    import SpineLabelerLib.relabel as relabel

    return anatomy, image, relabel, childjob


def volumeImage(volumeNode, array=None):
    """The library ``Image`` of a volume node (its array ``(K, J, I)``, geometry in LPS)."""
    _, image, _, _ = _lib()
    if volumeNode.GetParentTransformNode() is not None:
        raise ValueError(
            f"'{volumeNode.GetName()}' is under a transform; harden the transform first "
            "(Data module, right-click, Harden transform)."
        )
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    voxels = slicer.util.arrayFromVolume(volumeNode) if array is None else array
    return image.image_from_ijk_to_ras(voxels, slicer.util.arrayFromVTKMatrix(matrix))


#
# SpineLabelerLogic
#


class SegmentationRun:
    """One child process segmenting one volume, and the folder it writes into."""

    def __init__(self, volumeNode, job, workDir):
        self.volumeNode = volumeNode
        self.job = job
        self.workDir = workDir  # tempfile.TemporaryDirectory
        self.outDir = Path(workDir.name) / "out"

    def cleanup(self):
        if self.job.running:
            self.job.cancel()
        self.workDir.cleanup()


class SpineLabelerResult:
    """The nodes made for one result, and the vertebrae table rows (dicts)."""

    def __init__(self, segmentation=None, markups=None, table=None, vertebrae=(), message=""):
        self.segmentation = segmentation
        self.markups = markups
        self.table = table
        self.vertebrae = list(vertebrae)
        self.message = message


class SpineLabelerLogic(ScriptedLoadableModuleLogic):
    """All work the panel triggers; usable without the GUI from the Python console:

    >>> logic = SpineLabelerLogic()
    >>> result = logic.segment(slicer.util.getNode("CT"), device="cpu")
    >>> logic.relabelFromHere(result.segmentation, "T12", "L1")
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._undo = {}  # segmentation node ID -> list of (labels Image, vertebrae info)

    def getParameterNode(self):
        return SpineLabelerParameterNode(super().getParameterNode())

    # -- first use: dependencies ------------------------------------------------------

    @staticmethod
    def missingPackages():
        """pip requirements of the library that Slicer's Python lacks."""
        return [
            req for name, req in PIP_REQUIREMENTS.items() if importlib.util.find_spec(name) is None
        ]

    def ensureDependencies(self, askConfirmation=True):
        """Install torch (through the PyTorch extension when present) and the library's other
        needs. Returns False when the user declined."""
        testing = slicer.app.commandOptions().testingEnabled
        ask = askConfirmation and not testing
        try:
            import PyTorchUtils  # the SlicerPyTorch extension

            torchLogic = PyTorchUtils.PyTorchUtilsLogic()
            if not torchLogic.torchInstalled():
                if torchLogic.installTorch(askConfirmation=ask) is None:
                    return False
        except ImportError:
            if importlib.util.find_spec("torch") is None:
                if ask and not slicer.util.confirmOkCancelDisplay(
                    "SpineLabeler needs PyTorch. Install the PyTorch extension (recommended, picks "
                    "the right GPU build) or press OK to install the CPU/GPU build pip finds now."
                ):
                    return False
                slicer.util.pip_install("torch")
        missing = self.missingPackages()
        if missing:
            if ask and not slicer.util.confirmOkCancelDisplay(
                "SpineLabeler needs these Python packages: "
                + ", ".join(missing)
                + ". Install them now?"
            ):
                return False
            slicer.util.pip_install(" ".join(missing))
        return True

    @staticmethod
    def detectedGpu():
        """Name of the CUDA GPU torch sees, or "" - asked in a child process, so that Slicer
        itself never initializes CUDA (and holds no GPU memory the child needs)."""
        _, _, _, childjob = _lib()
        return childjob.detect_gpu(childjob.python_executable())

    # -- segmenting ------------------------------------------------------------------

    def startSegmentation(
        self, volumeNode, device="auto", fast=False, formats=None, realShapes=False, boneEdges=False
    ):
        """Write the volume to a temporary file and start ``spinelabeler segment`` on it.

        Returns a SegmentationRun whose ``job`` the caller polls (``job.poll()``) or waits for.
        """
        if volumeNode is None:
            raise ValueError("Select a CT volume first.")
        _, _, _, childjob = _lib()
        from SpineLabelerLib.io import write_scalar_image

        ct = volumeImage(volumeNode)
        workDir = tempfile.TemporaryDirectory(prefix="SpineLabeler-")
        ctPath = write_scalar_image(Path(workDir.name) / "ct.nrrd", ct)
        argv = childjob.segment_argv(
            childjob.python_executable(),
            ctPath,
            Path(workDir.name) / "out",
            device,
            fast,
            formats,
            real_shapes=realShapes,
            bone_edges=boneEdges,
        )
        logging.info("SpineLabeler: " + " ".join(argv))
        job = childjob.ChildJob(argv).start()
        return SegmentationRun(volumeNode, job, workDir)

    def segment(
        self,
        volumeNode,
        device="auto",
        fast=False,
        realShapes=False,
        boneEdges=False,
        makeSegmentation=True,
        makeMarkups=True,
        makeSurfaces=True,
        replace=None,
        progress=None,
        cancel=None,
        timeoutSeconds=None,
    ):
        """Segment synchronously (console, tests): start, wait, load the results.

        ``progress(stage, fraction, message)`` receives the child's reports; setting the
        ``cancel`` flag (SpineLabelerLib.progress.CancelFlag) stops the child.
        """
        run = self.startSegmentation(
            volumeNode, device, fast, realShapes=realShapes, boneEdges=boneEdges
        )
        try:
            code = run.job.wait(progress=progress, cancel=cancel, timeout_s=timeoutSeconds)
            if code != 0:
                raise RuntimeError(
                    f"Segmentation failed (exit code {code}):\n{run.job.error_message()}"
                )
            return self.loadResults(run, makeSegmentation, makeMarkups, makeSurfaces, replace)
        finally:
            run.cleanup()

    def loadResults(
        self, run, makeSegmentation=True, makeMarkups=True, makeSurfaces=True, replace=None
    ):
        """Turn the files the child wrote into nodes. ``replace``: an earlier segmentation node
        the user agreed to overwrite; otherwise a new node is made (edits are never lost)."""
        _, _, relabel, _ = _lib()
        from SpineLabelerLib.io.reader import read_labelmap

        report = json.loads((run.outDir / "report.json").read_text())
        vertebrae = report.get("vertebrae", [])
        if not vertebrae:
            notes = "; ".join(report.get("messages", []))
            return SpineLabelerResult(
                message="No spine found in this CT." + (f" ({notes})" if notes else "")
            )
        labels = read_labelmap(run.outDir / "labels.nii.gz", reference=volumeImage(run.volumeNode))
        info = {
            int(v["label"]): {"confidence": v.get("confidence"), "partial": v.get("partial")}
            for v in vertebrae
        }
        segmentation = replace or self._newSegmentationNode(run.volumeNode)
        segmentation.SetAttribute(SOURCE_VOLUME_ATTRIBUTE, run.volumeNode.GetID())
        self.setLabels(segmentation, labels, info, run.volumeNode, remember=False)
        display = segmentation.GetDisplayNode()
        display.SetVisibility(bool(makeSegmentation))
        if makeSurfaces:
            segmentation.CreateClosedSurfaceRepresentation()
        markups = segmentation.GetNodeReference(CENTROIDS_REFERENCE)
        if markups is not None:
            markups.GetDisplayNode().SetVisibility(bool(makeMarkups))
        message = f"{len(relabel.present_labels(labels))} vertebrae found."
        # what qualifies the result (thick voxels, levels missing where the spine was lost)
        message += "".join(f" Note: {note}." for note in report.get("messages", []))
        return SpineLabelerResult(
            segmentation,
            markups,
            segmentation.GetNodeReference(TABLE_REFERENCE),
            self.vertebraRows(segmentation),
            message,
        )

    def loadFolder(self, volumeNode, folder, **options):
        """Load what ``spinelabeler segment CT -o folder`` wrote (run outside Slicer) for the
        volume ``volumeNode`` loaded from that CT; options as for ``loadResults``."""
        run = types.SimpleNamespace(volumeNode=volumeNode, outDir=Path(folder))
        return self.loadResults(run, **options)

    @staticmethod
    def resultsForVolume(volumeNode):
        """Segmentation nodes an earlier run made for this volume."""
        return [
            n
            for n in slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
            if n.GetAttribute(SOURCE_VOLUME_ATTRIBUTE) == volumeNode.GetID()
        ]

    @staticmethod
    def _newSegmentationNode(volumeNode):
        name = slicer.mrmlScene.GenerateUniqueName(f"{volumeNode.GetName()} vertebrae")
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        return node

    # -- segmentation <-> labelmap -------------------------------------------------------

    @staticmethod
    def sourceVolume(segmentationNode):
        volumeId = segmentationNode.GetAttribute(SOURCE_VOLUME_ATTRIBUTE)
        volume = slicer.mrmlScene.GetNodeByID(volumeId) if volumeId else None
        if volume is None:
            raise ValueError(f"'{segmentationNode.GetName()}' has no source volume in the scene.")
        return volume

    def labelsFromSegmentation(self, segmentationNode, volumeNode=None):
        """The segmentation as a VerSe labelmap ``Image`` on the source volume's grid.
        Segments named C1..L6 are vertebrae; other segments are left out."""
        anatomy, _, _, _ = _lib()
        import numpy as np

        volumeNode = volumeNode or self.sourceVolume(segmentationNode)
        shape = slicer.util.arrayFromVolume(volumeNode).shape
        array = np.zeros(shape, np.uint8)
        for name, segmentId in self._vertebraSegmentIds(segmentationNode).items():
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(
                segmentationNode, segmentId, volumeNode
            )
            array[mask > 0] = anatomy.BY_NAME[name].label
        return volumeImage(volumeNode, array)

    @staticmethod
    def _vertebraSegmentIds(segmentationNode):
        """Segment ID of every segment named C1..L6 (whatever its ID), by name."""
        anatomy, _, _, _ = _lib()
        segmentation = segmentationNode.GetSegmentation()
        ids = {}
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            name = segmentation.GetSegment(segmentId).GetName()
            if name in anatomy.BY_NAME:
                ids[name] = segmentId
        return ids

    def setLabels(
        self, segmentationNode, labels, info=None, volumeNode=None, remember=True, previous=None
    ):
        """Make the segments, centroid markups and table match ``labels`` (VerSe values).

        One segment per vertebra, named, coloured and coded from the anatomy table (a new
        segment's ID is its name); vertebra segments no longer present are removed; other
        segments are kept. ``previous``: the labels before this change, for undo.
        """
        anatomy, _, relabel, _ = _lib()
        volumeNode = volumeNode or self.sourceVolume(segmentationNode)
        if remember:
            self._remember(segmentationNode, volumeNode, previous)
        present = relabel.present_labels(labels)
        segmentation = segmentationNode.GetSegmentation()
        wasModifying = segmentationNode.StartModify()
        try:
            ids = self._vertebraSegmentIds(segmentationNode)
            for name, segmentId in ids.items():
                if anatomy.BY_NAME[name].label not in present:
                    segmentation.RemoveSegment(segmentId)
            for label in present:
                vertebra = anatomy.vertebra(label)
                segmentId = ids.get(vertebra.name) or segmentation.AddEmptySegment(
                    vertebra.name, vertebra.name, list(vertebra.color_float)
                )
                segment = segmentation.GetSegment(segmentId)
                segment.SetColor(list(vertebra.color_float))
                segment.SetTag(segment.GetTerminologyEntryTagName(), vertebra.terminology_string())
                mask = (labels.array == label).astype("uint8")
                slicer.util.updateSegmentBinaryLabelmapFromArray(
                    mask, segmentationNode, segmentId, volumeNode
                )
        finally:
            segmentationNode.EndModify(wasModifying)
        if info is not None:
            segmentationNode.SetAttribute(
                VERTEBRAE_ATTRIBUTE, json.dumps({str(k): v for k, v in info.items()})
            )
        self.updateCentroids(segmentationNode, labels)

    def vertebraInfo(self, segmentationNode):
        """Per-vertebra values the pipeline reported (confidence, partial), by label."""
        text = segmentationNode.GetAttribute(VERTEBRAE_ATTRIBUTE)
        return {int(k): v for k, v in json.loads(text).items()} if text else {}

    # -- centroids and table -----------------------------------------------------------

    def updateCentroids(self, segmentationNode, labels=None):
        """Recompute the centroid markups and the table from the segmentation (after edits
        in Segment Editor)."""
        _, image, relabel, _ = _lib()
        labels = labels if labels is not None else self.labelsFromSegmentation(segmentationNode)
        rows = relabel.summarize(labels)
        markups = self._referencedNode(
            segmentationNode, CENTROIDS_REFERENCE, "vtkMRMLMarkupsFiducialNode", "centroids"
        )
        wasModifying = markups.StartModify()
        markups.RemoveAllControlPoints()
        for row in rows:
            r, a, s = image.lps_to_ras(row.centroid_lps)
            markups.AddControlPoint(vtk.vtkVector3d(r, a, s), row.name)
        markups.SetLocked(True)
        markups.EndModify(wasModifying)
        self._fillTable(segmentationNode, rows)
        return rows

    def vertebraRows(self, segmentationNode):
        """Table rows (dicts) of the vertebrae, cranial first."""
        _, _, relabel, _ = _lib()
        info = self.vertebraInfo(segmentationNode)
        rows = []
        for row in relabel.summarize(self.labelsFromSegmentation(segmentationNode)):
            extra = info.get(row.label, {})
            rows.append(
                {
                    "name": row.name,
                    "label": row.label,
                    "confidence": extra.get("confidence"),
                    "partial": extra.get("partial"),
                    "volume_ml": row.volume_ml,
                    "centroid_lps": row.centroid_lps,
                }
            )
        return rows

    def _fillTable(self, segmentationNode, rows):
        tableNode = self._referencedNode(
            segmentationNode, TABLE_REFERENCE, "vtkMRMLTableNode", "table"
        )
        info = self.vertebraInfo(segmentationNode)
        table = tableNode.GetTable()
        table.Initialize()
        columns = (
            ("Vertebra", vtk.vtkStringArray),
            ("Label", vtk.vtkIntArray),
            ("Confidence", vtk.vtkStringArray),
            ("Partial", vtk.vtkStringArray),
            ("Volume (ml)", vtk.vtkDoubleArray),
        )
        for title, arrayClass in columns:
            column = arrayClass()
            column.SetName(title)
            table.AddColumn(column)
        table.SetNumberOfRows(len(rows))
        for index, row in enumerate(rows):
            extra = info.get(row.label, {})
            confidence = extra.get("confidence")
            partial = extra.get("partial")
            values = (
                row.name,
                row.label,
                "" if confidence is None else f"{confidence:.2f}",
                "" if partial is None else ("yes" if partial else "no"),
                round(row.volume_ml, 2),
            )
            for columnIndex, value in enumerate(values):
                table.SetValue(index, columnIndex, vtk.vtkVariant(value))
        tableNode.Modified()

    @staticmethod
    def _referencedNode(segmentationNode, role, className, suffix):
        node = segmentationNode.GetNodeReference(role)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass(
                className, f"{segmentationNode.GetName()} {suffix}"
            )
            if hasattr(node, "CreateDefaultDisplayNodes"):
                node.CreateDefaultDisplayNodes()
            segmentationNode.SetNodeReferenceID(role, node.GetID())
        return node

    # -- corrections -------------------------------------------------------------------

    def relabelFromHere(self, segmentationNode, segmentName, trueName, keepGaps=True):
        """Segment ``segmentName`` is really ``trueName``: rename all vertebrae in order."""
        _, _, relabel, _ = _lib()
        labels = self.labelsFromSegmentation(segmentationNode)
        edit = relabel.relabel_from_here(labels, segmentName, trueName, keepGaps)
        self._applyEdit(segmentationNode, labels, edit)
        return edit.renamed

    def merge(self, segmentationNode, firstName, secondName, keep="cranial"):
        """Merge two neighbouring segments into one vertebra; names beyond follow."""
        _, _, relabel, _ = _lib()
        labels = self.labelsFromSegmentation(segmentationNode)
        self._applyEdit(
            segmentationNode, labels, relabel.merge(labels, firstName, secondName, keep)
        )

    def split(self, segmentationNode, segmentName, cut="thinnest", keep="cranial"):
        """Split one segment in two along the disc plane; names beyond follow."""
        _, _, relabel, _ = _lib()
        labels = self.labelsFromSegmentation(segmentationNode)
        self._applyEdit(segmentationNode, labels, relabel.split(labels, segmentName, cut, keep))

    def _applyEdit(self, segmentationNode, before, edit):
        _, _, relabel, _ = _lib()
        info = relabel.carry_over(self.vertebraInfo(segmentationNode), edit.renamed)
        self.setLabels(segmentationNode, edit.labels, info, previous=before)

    def _remember(self, segmentationNode, volumeNode, previous=None):
        if previous is None:
            previous = self.labelsFromSegmentation(segmentationNode, volumeNode)
        stack = self._undo.setdefault(segmentationNode.GetID(), [])
        stack.append((previous, self.vertebraInfo(segmentationNode)))
        del stack[:-10]  # keep the last ten corrections

    def canUndo(self, segmentationNode):
        return bool(segmentationNode and self._undo.get(segmentationNode.GetID()))

    def undo(self, segmentationNode):
        """Put back the segmentation as it was before the last correction made here."""
        stack = self._undo.get(segmentationNode.GetID())
        if not stack:
            raise ValueError("Nothing to undo.")
        labels, info = stack.pop()
        self.setLabels(segmentationNode, labels, info, remember=False)

    # -- export ------------------------------------------------------------------------

    def exportLabelmap(self, segmentationNode, path):
        """Labelmap with VerSe values on the CT's grid (.nrrd, .nii, .nii.gz)."""
        from SpineLabelerLib.io.labelmap import write_labelmap

        return write_labelmap(path, self.labelsFromSegmentation(segmentationNode), force=True)

    def exportSurfaces(self, segmentationNode, folder):
        """``folder/<name>.stl`` per vertebra, LPS mm (what the command line writes)."""
        from SpineLabelerLib.io.surfaces import write_vertebra_surfaces

        return write_vertebra_surfaces(
            folder, self.labelsFromSegmentation(segmentationNode), force=True
        )

    def exportCentroids(self, segmentationNode, mrkJsonPath, csvPath=None):
        """Centroids as a Slicer ``.mrk.json`` (LPS) and, if asked, a CSV table."""
        _, _, relabel, _ = _lib()
        from SpineLabelerLib.io.markups import write_centroids_mrk_json

        labels = self.labelsFromSegmentation(segmentationNode)
        written = [
            write_centroids_mrk_json(
                mrkJsonPath, relabel.vertebra_centroids_lps(labels), force=True
            )
        ]
        if csvPath:
            written.append(relabel.write_vertebrae_csv(csvPath, labels, force=True))
        return written

    def exportDicomSeg(self, segmentationNode, folder=None):
        """DICOM Segmentation through Slicer's own DICOM route (DICOMSegmentationPlugin):
        the segmentation moves under its CT's study in the subject hierarchy, the SEG is
        written into ``folder`` (a new folder in Slicer's temporary path if None) and added
        to Slicer's DICOM database, next to the CT. The CT must have been loaded from that
        database. Returns the SEG file's path."""
        try:
            import DICOMSegmentationPlugin
        except ImportError:
            raise ValueError(
                "This Slicer has no DICOM SEG exporter (DICOMSegmentationPlugin); install the "
                "QuantitativeReporting extension, which provides it, and restart Slicer."
            ) from None
        volumeNode = self.sourceVolume(segmentationNode)
        instanceUids = volumeNode.GetAttribute("DICOM.instanceUIDs")
        if not instanceUids:
            raise ValueError(
                f"'{volumeNode.GetName()}' was not loaded from Slicer's DICOM database; a DICOM "
                "SEG must reference the CT's images. Import the CT series in the DICOM module, "
                "load it from there and segment that volume."
            )
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        segmentationItem = shNode.GetItemByDataNode(segmentationNode)
        studyItem = shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode))
        shNode.SetItemParent(segmentationItem, studyItem)
        shNode.SetItemAttribute(
            segmentationItem,
            slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMReferencedInstanceUIDsAttributeName(),
            instanceUids,
        )
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        self._tagAlgorithm(segmentationNode)
        exporter = DICOMSegmentationPlugin.DICOMSegmentationPluginClass()
        exportables = exporter.examineForExport(segmentationItem)
        if not exportables:
            raise ValueError(
                f"Slicer's DICOM SEG exporter does not take '{segmentationNode.GetName()}': "
                "are the CT's files still in the DICOM database?"
            )
        folder = Path(
            folder or tempfile.mkdtemp(prefix="SpineLabeler-SEG-", dir=slicer.app.temporaryPath)
        )
        folder.mkdir(parents=True, exist_ok=True)
        before = set(folder.glob("*.dcm"))
        for exportable in exportables:
            exportable.directory = str(folder)
            exportable.setTag("SeriesDescription", f"{segmentationNode.GetName()} (SpineLabeler)")
        error = exporter.export(exportables)
        written = sorted(set(folder.glob("*.dcm")) - before)
        if error or not written:
            raise RuntimeError(f"DICOM SEG export failed: {error or 'no file written'}")
        return written[0]

    def _tagAlgorithm(self, segmentationNode):
        """Mark the vertebra segments as SpineLabeler's (AUTOMATIC) for the SEG's algorithm
        identification, unless a segment already names its algorithm."""
        segmentation = segmentationNode.GetSegmentation()
        for segmentId in self._vertebraSegmentIds(segmentationNode).values():
            segment = segmentation.GetSegment(segmentId)
            if not segment.GetTag(ALGORITHM_TYPE_TAG, vtk.mutable("")):
                segment.SetTag(ALGORITHM_TYPE_TAG, "AUTOMATIC")
                segment.SetTag(ALGORITHM_NAME_TAG, "SpineLabeler")


#
# SpineLabelerWidget
#


class SpineLabelerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs, Segment/Cancel with progress, results table, corrections, export."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._replace = None
        self._gpuProbed = False
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.timeout.connect(self.onPollSegmentation)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineLabeler.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineLabelerLogic()

        for device in DEVICES:
            self.ui.deviceComboBox.addItem(device, device)
        self.ui.cancelButton.enabled = False
        self.ui.progressBar.setRange(0, 100)
        self.ui.progressBar.value = 0

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)

        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.segmentationSelector.connect(
            "currentNodeChanged(vtkMRMLNode*)", self.onSegmentationChanged
        )
        self.ui.relabelButton.connect("clicked(bool)", self.onRelabel)
        self.ui.mergeButton.connect("clicked(bool)", self.onMerge)
        self.ui.splitButton.connect("clicked(bool)", self.onSplit)
        self.ui.segmentEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.ui.updateCentroidsButton.connect("clicked(bool)", self.onUpdateCentroids)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.exportLabelmapButton.connect("clicked(bool)", self.onExportLabelmap)
        self.ui.exportSurfacesButton.connect("clicked(bool)", self.onExportSurfaces)
        self.ui.exportCentroidsButton.connect("clicked(bool)", self.onExportCentroids)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)

        self.initializeParameterNode()

    def cleanup(self):
        self._timer.stop()
        if self._run is not None:
            self._run.cleanup()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons
            )

    def onSceneStartClose(self, caller, event):
        self.onCancel()
        self.setParameterNode(None)

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node):
        """A CT just loaded becomes the input (labelmaps and our own nodes are not CTs)."""
        if (
            self._parameterNode is not None
            and self._run is None
            and node.IsA("vtkMRMLScalarVolumeNode")
            and not node.IsA("vtkMRMLLabelMapVolumeNode")
        ):
            self._parameterNode.inputVolume = node

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            # The volume loaded last is the one the user most likely wants.
            volumes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if volumes:
                self._parameterNode.inputVolume = volumes[-1]

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons
            )
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets carry a "SlicerParameterName" dynamic property in the .ui file.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._updateButtons()

    def _updateButtons(self, caller=None, event=None):
        running = self._run is not None
        hasVolume = bool(self._parameterNode and self._parameterNode.inputVolume)
        self.ui.segmentButton.enabled = hasVolume and not running
        self.ui.segmentButton.toolTip = "Segment the spine" if hasVolume else "Select a CT volume"
        self.ui.cancelButton.enabled = running
        segmentation = self._parameterNode.segmentation if self._parameterNode else None
        for button in (
            self.ui.relabelButton,
            self.ui.mergeButton,
            self.ui.splitButton,
            self.ui.segmentEditorButton,
            self.ui.updateCentroidsButton,
            self.ui.exportLabelmapButton,
            self.ui.exportSurfacesButton,
            self.ui.exportCentroidsButton,
            self.ui.exportDicomButton,
        ):
            button.enabled = segmentation is not None and not running
        self.ui.undoButton.enabled = not running and self.logic.canUndo(segmentation)

    # -- segmenting ------------------------------------------------------------------

    def onSegment(self):
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            if not self.logic.ensureDependencies(askConfirmation=True):
                self.ui.statusLabel.text = "PyTorch and the other packages are needed to segment."
                return
            self._labelGpu()
            volume = self._parameterNode.inputVolume
            self._replace = self._askReplace(volume)
            device = self.ui.deviceComboBox.currentData
            node = self._parameterNode
            self._run = self.logic.startSegmentation(
                volume, device, node.fast, realShapes=node.realShapes, boneEdges=node.boneEdges
            )
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = f"Segmenting '{volume.GetName()}'..."
            self._timer.start()
        self._updateButtons()

    def _labelGpu(self):
        """Say which GPU "cuda" means (probed once, on the first Segment)."""
        if self._gpuProbed:
            return
        self._gpuProbed = True
        gpu = self.logic.detectedGpu()
        index = self.ui.deviceComboBox.findData("cuda")
        self.ui.deviceComboBox.setItemText(index, f"cuda ({gpu})" if gpu else "cuda (no GPU found)")

    def _askReplace(self, volume):
        """An earlier result for this volume is replaced only if the user says so."""
        earlier = self.logic.resultsForVolume(volume)
        if not earlier:
            return None
        node = earlier[-1]
        if slicer.util.confirmYesNoDisplay(
            f"Replace '{node.GetName()}' (and any corrections made to it)?\n"
            "No keeps it and makes a new segmentation."
        ):
            return node
        return None

    def onPollSegmentation(self):
        """Timer tick: move the progress bar; when the child ended, load or report."""
        run = self._run
        if run is None:
            self._timer.stop()
            return
        for line in run.job.poll():
            self.ui.progressBar.value = int(round(100 * line.fraction))
            self.ui.statusLabel.text = (
                f"{line.stage}: {line.message}" if line.message else line.stage
            )
        code = run.job.returncode
        if code is None:
            return
        self._timer.stop()
        self._run = None
        try:
            if run.job.cancelled:
                self.ui.statusLabel.text = "Cancelled."
            elif code != 0:
                # The command line's own message (e.g. "not a CT: ...") is its last line.
                last = run.job.error_message(1)
                self.ui.statusLabel.text = "Segmentation failed" + (f": {last}" if last else ".")
                slicer.util.errorDisplay(
                    "Segmentation failed.", detailedText=run.job.error_message(20)
                )
            else:
                with slicer.util.tryWithErrorDisplay(
                    "Could not load the results.", waitCursor=True
                ):
                    p = self._parameterNode
                    result = self.logic.loadResults(
                        run, p.makeSegmentation, p.makeMarkups, p.makeSurfaces, self._replace
                    )
                    self.ui.statusLabel.text = result.message
                    if result.segmentation is not None:
                        p.segmentation = result.segmentation
                        self._showResult(result)
        finally:
            run.cleanup()
            self._updateButtons()

    def onCancel(self):
        if self._run is not None:
            self.ui.statusLabel.text = "Cancelling..."
            self._run.job.cancel(grace_s=3.0)

    def _showResult(self, result):
        if result.table is not None:
            self.ui.resultsTableView.setMRMLTableNode(result.table)
        self.onSegmentationChanged(result.segmentation)

    # -- corrections -------------------------------------------------------------------

    def onSegmentationChanged(self, node=None):
        self.ui.segmentComboBox.clear()
        self.ui.otherSegmentComboBox.clear()
        if node is not None:
            try:
                anatomy, _, _, _ = _lib()
                names = [row["name"] for row in self.logic.vertebraRows(node)]
            except ImportError:
                self.ui.statusLabel.text = (
                    "Press Segment spine once to install the packages needed."
                )
                return self._updateButtons()
            except ValueError as error:  # e.g. not a SpineLabeler result
                self.ui.statusLabel.text = str(error)
                return self._updateButtons()
            self.ui.segmentComboBox.addItems(names)
            self.ui.otherSegmentComboBox.addItems(names)
            if self.ui.trueLevelComboBox.count == 0:
                self.ui.trueLevelComboBox.addItems([v.name for v in anatomy.VERTEBRAE])
            table = node.GetNodeReference(TABLE_REFERENCE)
            if table is not None:
                self.ui.resultsTableView.setMRMLTableNode(table)
        self._updateButtons()

    def _segmentation(self):
        node = self._parameterNode.segmentation
        if node is None:
            raise ValueError("Select a SpineLabeler segmentation first.")
        return node

    def _keepSide(self):
        return "cranial" if self.ui.keepSideComboBox.currentIndex == 0 else "caudal"

    def onRelabel(self):
        with slicer.util.tryWithErrorDisplay("Relabel failed.", waitCursor=True):
            node = self._segmentation()
            self.logic.relabelFromHere(
                node, self.ui.segmentComboBox.currentText, self.ui.trueLevelComboBox.currentText
            )
            self.onSegmentationChanged(node)

    def onMerge(self):
        with slicer.util.tryWithErrorDisplay("Merge failed.", waitCursor=True):
            node = self._segmentation()
            self.logic.merge(
                node,
                self.ui.segmentComboBox.currentText,
                self.ui.otherSegmentComboBox.currentText,
                self._keepSide(),
            )
            self.onSegmentationChanged(node)

    def onSplit(self):
        with slicer.util.tryWithErrorDisplay("Split failed.", waitCursor=True):
            node = self._segmentation()
            cut = "centroid" if self.ui.splitAtCentroidCheckBox.checked else "thinnest"
            self.logic.split(node, self.ui.segmentComboBox.currentText, cut, self._keepSide())
            self.onSegmentationChanged(node)

    def onOpenSegmentEditor(self):
        """Hand over to Segment Editor with the chosen segment selected."""
        with slicer.util.tryWithErrorDisplay("Could not open Segment Editor."):
            node = self._segmentation()
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(node)
            volume = self.logic.sourceVolume(node)
            if hasattr(editor, "setSourceVolumeNode"):
                editor.setSourceVolumeNode(volume)
            else:  # Slicer before 5.2
                editor.setMasterVolumeNode(volume)
            segmentId = node.GetSegmentation().GetSegmentIdBySegmentName(
                self.ui.segmentComboBox.currentText
            )
            if segmentId:
                editor.setCurrentSegmentID(segmentId)

    def onUpdateCentroids(self):
        with slicer.util.tryWithErrorDisplay("Could not update the centroids.", waitCursor=True):
            node = self._segmentation()
            self.logic.updateCentroids(node)
            self.onSegmentationChanged(node)

    def onUndo(self):
        with slicer.util.tryWithErrorDisplay("Undo failed.", waitCursor=True):
            node = self._segmentation()
            self.logic.undo(node)
            self.onSegmentationChanged(node)

    # -- export ------------------------------------------------------------------------

    def onExportLabelmap(self):
        path = qt.QFileDialog.getSaveFileName(
            None, "Export labelmap (VerSe values)", "vertebrae.nii.gz", "Labelmap (*.nii.gz *.nrrd)"
        )
        if path:
            with slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
                self.ui.statusLabel.text = (
                    f"Wrote {self.logic.exportLabelmap(self._segmentation(), path)}"
                )

    def onExportSurfaces(self):
        folder = qt.QFileDialog.getExistingDirectory(None, "Folder for one STL per vertebra")
        if folder:
            with slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
                written = self.logic.exportSurfaces(self._segmentation(), folder)
                self.ui.statusLabel.text = f"Wrote {len(written)} STL files to {folder}"

    def onExportCentroids(self):
        path = qt.QFileDialog.getSaveFileName(
            None, "Export centroids", "centroids.mrk.json", "Slicer markups (*.mrk.json)"
        )
        if path:
            with slicer.util.tryWithErrorDisplay("Export failed.", waitCursor=True):
                csvPath = (
                    path[: -len(".mrk.json")] + ".csv"
                    if path.endswith(".mrk.json")
                    else path + ".csv"
                )
                written = self.logic.exportCentroids(self._segmentation(), path, csvPath)
                self.ui.statusLabel.text = "Wrote " + ", ".join(str(p) for p in written)

    def onExportDicom(self):
        with slicer.util.tryWithErrorDisplay("DICOM export failed.", waitCursor=True):
            path = self.logic.exportDicomSeg(self._segmentation())
            self.ui.statusLabel.text = f"DICOM SEG added to the DICOM database ({path})"


#
# SpineLabelerTest
#


class SpineLabelerTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (see docs/SLICER.md): a phantom CT through the whole module."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_corrections_on_a_known_labelmap()
        self.setUp()
        self.test_segment_phantom_and_export()
        self.setUp()
        self.test_export_dicom_seg_into_the_database()

    def _phantomVolume(self, folder):
        """A small phantom CT (library generator) loaded as a volume node."""
        from SpineLabelerLib import phantom
        from SpineLabelerLib.io import write_scalar_image

        case = phantom.generate_case(3, "lumbar", spacing_mm=(1.5, 1.5, 2.0))
        path = write_scalar_image(Path(folder) / "phantom_ct.nrrd", case.ct)
        return slicer.util.loadVolume(str(path)), case

    def _checkSegments(self, segmentationNode, labels):
        anatomy, image, relabel, _ = _lib()
        segmentation = segmentationNode.GetSegmentation()
        names = sorted(
            segmentation.GetSegment(segmentation.GetNthSegmentID(i)).GetName()
            for i in range(segmentation.GetNumberOfSegments())
        )
        self.assertEqual(
            names, sorted(anatomy.vertebra(v).name for v in relabel.present_labels(labels))
        )
        for name in names:
            segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
            self.assertEqual(
                [round(c, 4) for c in segment.GetColor()],
                [round(c, 4) for c in anatomy.BY_NAME[name].color_float],
            )
            tag = vtk.mutable("")
            segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
            self.assertIn(anatomy.BY_NAME[name].snomed_code, str(tag))
        markups = segmentationNode.GetNodeReference(CENTROIDS_REFERENCE)
        self.assertTrue(markups.GetLocked())
        expected = {
            anatomy.vertebra(k).name: image.lps_to_ras(c)
            for k, c in relabel.vertebra_centroids_lps(labels).items()
        }
        self.assertEqual(markups.GetNumberOfControlPoints(), len(expected))
        for index in range(markups.GetNumberOfControlPoints()):
            position = [0.0, 0.0, 0.0]
            markups.GetNthControlPointPosition(index, position)
            label = markups.GetNthControlPointLabel(index)
            for got, want in zip(position, expected[label]):
                self.assertAlmostEqual(got, float(want), places=3)

    def test_corrections_on_a_known_labelmap(self):
        """Relabel, merge, split and undo on stacked boxes with an oblique geometry."""
        import numpy as np

        logic = SpineLabelerLogic()
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))
        anatomy, image, relabel, _ = _lib()
        array = np.zeros((40, 16, 16), np.int16)
        labels = np.zeros((40, 16, 16), np.uint8)
        for position, name in enumerate(["T11", "T12", "L1", "L2"]):
            top = 38 - position * 9
            labels[top - 7 : top, 3:13, 3:13] = anatomy.BY_NAME[name].label
        array[labels > 0] = 400
        ijkToRas = np.array(
            [[-0.8, 0.1, 0.0, 12.0], [0.1, 0.8, 0.0, -30.0], [0.0, 0.0, 2.0, 40.0], [0, 0, 0, 1]]
        )
        volume = slicer.util.addVolumeFromArray(array, ijkToRas, "boxes")
        segmentationNode = SpineLabelerLogic._newSegmentationNode(volume)
        segmentationNode.SetAttribute(SOURCE_VOLUME_ATTRIBUTE, volume.GetID())
        truth = volumeImage(volume, labels)
        logic.setLabels(
            segmentationNode, truth, {19: {"confidence": 0.9, "partial": False}}, remember=False
        )
        self._checkSegments(segmentationNode, truth)
        self.assertTrue(
            np.array_equal(logic.labelsFromSegmentation(segmentationNode).array, labels)
        )

        logic.relabelFromHere(segmentationNode, "T12", "L1")
        shifted = relabel.apply_mapping(truth, {18: 19, 19: 20, 20: 21, 21: 22})
        self._checkSegments(segmentationNode, shifted)
        self.assertEqual(
            logic.vertebraInfo(segmentationNode), {20: {"confidence": 0.9, "partial": False}}
        )
        logic.merge(segmentationNode, "L1", "L2")
        self.assertEqual(len(logic.vertebraRows(segmentationNode)), 3)
        logic.split(segmentationNode, "L1")
        self.assertEqual(
            [r["name"] for r in logic.vertebraRows(segmentationNode)], ["T12", "L1", "L2", "L3"]
        )
        for _ in range(3):
            logic.undo(segmentationNode)
        self._checkSegments(segmentationNode, truth)

    def test_segment_phantom_and_export(self):
        """The pipeline through the child process, then relabel-from-here and export."""
        import numpy as np

        logic = SpineLabelerLogic()
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))
        anatomy, image, relabel, _ = _lib()
        from SpineLabelerLib.io.markups import read_centroids_mrk_json
        from SpineLabelerLib.io.reader import read_labelmap

        with tempfile.TemporaryDirectory() as folder:
            volume, case = self._phantomVolume(folder)
            # Slicer's reader and the library's RAS<->LPS conversion agree on the geometry.
            self.assertTrue(volumeImage(volume).same_grid(case.ct))
            result = logic.segment(volume, device="cpu", fast=True, timeoutSeconds=600)
            self.assertIsNotNone(result.segmentation, result.message)
            self.assertIn(volume.GetName(), result.segmentation.GetName())
            labels = logic.labelsFromSegmentation(result.segmentation)
            self._checkSegments(result.segmentation, labels)
            self.assertGreaterEqual(len(relabel.present_labels(labels)), 2)
            # Most found vertebrae carry the name of the phantom vertebra they mostly cover
            # (not the label at their centroid: a ring-shaped vertebra's centroid is in the canal).
            self.assertTrue(labels.same_grid(case.labels))
            rows = relabel.summarize(labels)
            named_right = 0
            for row in rows:
                covered = case.labels.array[labels.array == row.label]
                covered = covered[covered > 0]
                named_right += int(covered.size > 0 and np.bincount(covered).argmax() == row.label)
            self.assertGreaterEqual(
                named_right, len(rows) / 2, f"{named_right} of {len(rows)} named right"
            )

            # A second run never overwrites the first (it was not asked to).
            second = logic.segment(volume, device="cpu", fast=True, timeoutSeconds=600)
            self.assertNotEqual(second.segmentation.GetID(), result.segmentation.GetID())

            first = relabel.summarize(labels)[0]
            target = anatomy.vertebra(first.label + 1).name
            logic.relabelFromHere(result.segmentation, first.name, target)
            shifted = logic.labelsFromSegmentation(result.segmentation)
            self.assertEqual(
                relabel.present_labels(shifted), [v + 1 for v in relabel.present_labels(labels)]
            )
            self._checkSegments(result.segmentation, shifted)

            out = Path(folder) / "export"
            out.mkdir()
            logic.exportLabelmap(result.segmentation, out / "labels.nii.gz")
            exported = read_labelmap(out / "labels.nii.gz", reference=volumeImage(volume))
            self.assertTrue(np.array_equal(exported.array, shifted.array))
            logic.exportCentroids(
                result.segmentation, out / "centroids.mrk.json", out / "centroids.csv"
            )
            centroids = read_centroids_mrk_json(out / "centroids.mrk.json")
            for label, point in relabel.vertebra_centroids_lps(shifted).items():
                self.assertTrue(np.allclose(centroids[label], point, atol=1e-3))
            surfaces = logic.exportSurfaces(result.segmentation, out / "surfaces")
            self.assertEqual(sorted(surfaces), relabel.present_labels(shifted))
            self.assertTrue(all(p.stat().st_size > 0 for p in surfaces.values()))

    def test_export_dicom_seg_into_the_database(self):
        """A phantom series in a temporary DICOM database (written by Slicer's own volume
        exporter); its vertebrae exported through Slicer's DICOM SEG route land in that
        database, in the CT's study, referencing its series, named and coded."""
        import DICOMScalarVolumePlugin
        import highdicom as hd
        import numpy as np
        from DICOMLib import DICOMUtils

        logic = SpineLabelerLogic()
        self.assertTrue(logic.ensureDependencies(askConfirmation=False))
        anatomy, _, _, _ = _lib()
        names = ["T12", "L1", "L2"]
        hu = np.full((30, 24, 24), -1000, np.int16)
        for position, name in enumerate(names):  # each vertebra's HU encodes its label
            top = 28 - position * 9
            hu[top - 7 : top, 6:18, 6:18] = 200 + 30 * anatomy.BY_NAME[name].label
        ijkToRas = np.array(
            [[0.9, 0.0, 0.0, 10.0], [0.0, 0.9, 0.0, 20.0], [0.0, 0.0, 2.0, 30.0], [0, 0, 0, 1]]
        )
        phantom = slicer.util.addVolumeFromArray(hu, ijkToRas, "phantom")
        with tempfile.TemporaryDirectory() as folder, DICOMUtils.TemporaryDICOMDatabase() as db:
            shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
            patient = shNode.CreateSubjectItem(shNode.GetSceneItemID(), "Phantom")
            study = shNode.CreateStudyItem(patient, "Spine")
            shNode.SetItemParent(shNode.GetItemByDataNode(phantom), study)
            exporter = DICOMScalarVolumePlugin.DICOMScalarVolumePluginClass()
            exportables = exporter.examineForExport(shNode.GetItemByDataNode(phantom))
            for exportable in exportables:
                exportable.directory = str(Path(folder) / "ct")
            Path(folder, "ct").mkdir()
            self.assertFalse(exporter.export(exportables))
            slicer.mrmlScene.Clear()
            DICOMUtils.importDicom(str(Path(folder) / "ct"), db)
            (studyUid,) = db.studiesForPatient(db.patients()[0])
            (seriesUid,) = db.seriesForStudy(studyUid)
            loaded = [
                slicer.mrmlScene.GetNodeByID(i) for i in DICOMUtils.loadSeriesByUID([seriesUid])
            ]
            volume = next(n for n in loaded if n.IsA("vtkMRMLScalarVolumeNode"))
            read = slicer.util.arrayFromVolume(volume)
            labels = volumeImage(
                volume, np.where(read >= 200, np.round((read - 200) / 30.0), 0).astype(np.uint8)
            )
            segmentation = SpineLabelerLogic._newSegmentationNode(volume)
            segmentation.SetAttribute(SOURCE_VOLUME_ATTRIBUTE, volume.GetID())
            logic.setLabels(segmentation, labels, remember=False)

            path = logic.exportDicomSeg(segmentation, Path(folder) / "seg")
            self.assertTrue(path.is_file())
            segSeries = [uid for uid in db.seriesForStudy(studyUid) if uid != seriesUid]
            self.assertEqual(len(segSeries), 1)
            segFile = db.filesForSeries(segSeries[0])[0]
            self.assertEqual(db.fileValue(segFile, "0008,0060"), "SEG")
            seg = hd.seg.segread(segFile)
            self.assertEqual(seg.StudyInstanceUID, studyUid)
            self.assertEqual(seg.ReferencedSeriesSequence[0].SeriesInstanceUID, seriesUid)
            sources = volume.GetAttribute("DICOM.instanceUIDs").split()
            for number in seg.segment_numbers:
                description = seg.get_segment_description(number)
                vertebra = anatomy.BY_NAME[description.segment_label]
                self.assertEqual(description.segmented_property_type.value, vertebra.snomed_code)
                frames = seg.get_pixels_by_source_instance(
                    sources, segment_numbers=[number], assert_missing_frames_are_empty=True
                )
                self.assertEqual(int(frames.sum()), int((labels.array == vertebra.label).sum()))
            self.assertEqual(
                sorted(seg.get_segment_description(n).segment_label for n in seg.segment_numbers),
                sorted(names),
            )
