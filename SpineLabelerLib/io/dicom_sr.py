"""Write the vertebra centroids as a DICOM Comprehensive 3D SR beside their source CT series.

The report is a TID 1500 Measurement Report (highdicom's ``MeasurementReport``) holding
one TID 1410 group per vertebra: its region is a single SCOORD3D POINT (LPS mm in the
CT's frame of reference), its geometric purpose "Center", its finding "Anatomical
Structure" / the vertebra's SNOMED CT code (the codes of the SEG and .seg.nrrd), and its
tracking identifier the vertebra's name ("L1"). TID 1500 rather than free content items
because it is the template viewers and archives index (OHIF and Slicer's
QuantitativeReporting list its groups by tracking identifier and finding), and because a
POINT region needs no image reference: it stays valid whatever slice a viewer shows.
TID 1410 is the group that takes a 3D region; TID 1411 (volumetric) would need the SEG
as its region instead of the point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from SpineLabelerLib import __version__, anatomy
from SpineLabelerLib.io._files import atomic_path
from SpineLabelerLib.io.dicom_seg import (
    MANUFACTURER,
    SOFTWARE,
    property_category,
    property_type,
)

SR_SERIES_NUMBER = 9002


def _centroid_group(
    vertebra: anatomy.Vertebra, point_lps: np.ndarray, frame_of_reference_uid: str
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=vertebra.name),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=np.asarray(point_lps, float).reshape(1, 3),
            frame_of_reference_uid=frame_of_reference_uid,
        ),
        finding_type=property_type(vertebra),
        finding_category=property_category(),
        geometric_purpose=codes.DCM.Center,
        algorithm_id=hd.sr.AlgorithmIdentification(name=SOFTWARE, version=__version__),
    )


def build_centroid_sr(
    centroids_lps: Mapping[int, np.ndarray], source: Sequence[Dataset]
) -> hd.sr.Comprehensive3DSR:
    """A Comprehensive 3D SR with one named POINT per vertebra (VerSe label -> ``(3,)``
    LPS mm), in the frame of reference of ``source`` (the CT series' headers)."""
    if not centroids_lps:
        raise ValueError("no centroid to report; a centroid SR needs at least one vertebra")
    frame_of_reference_uid = source[0].FrameOfReferenceUID
    groups = [
        _centroid_group(anatomy.vertebra(int(label)), centroids_lps[label], frame_of_reference_uid)
        for label in sorted(centroids_lps)
    ]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=SOFTWARE, manufacturer_name=MANUFACTURER, model_name=SOFTWARE
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=source,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description="SpineLabeler vertebra centroids",
        is_complete=True,
    )


def write_centroid_sr(
    path: str | os.PathLike,
    centroids_lps: Mapping[int, np.ndarray],
    source: Sequence[Dataset],
    force: bool = False,
) -> Path:
    """Write the centroids (VerSe label -> LPS mm) as a Comprehensive 3D SR over the
    source series (its headers, :func:`~SpineLabelerLib.io.dicom_seg.read_source_headers`)."""
    sr = build_centroid_sr(centroids_lps, source)
    with atomic_path(path, force) as tmp:
        sr.save_as(tmp)
    return Path(path)


def read_centroid_sr(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """The centroids of a SR written by :func:`write_centroid_sr`: VerSe label -> ``(3,)``
    LPS mm, each vertebra found by its tracking identifier ("L1")."""
    sr = hd.sr.srread(str(path))
    report = hd.sr.MeasurementReport.from_sequence([sr])
    points = {}
    for group in report.get_planar_roi_measurement_groups(
        graphic_type=hd.sr.GraphicTypeValues3D.POINT
    ):
        vertebra = anatomy.vertebra(group.tracking_identifier)
        points[vertebra.label] = np.asarray(group.roi.value, float).reshape(3)
    return points
