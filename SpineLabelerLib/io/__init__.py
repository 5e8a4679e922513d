"""Reading and checking CTs and labelmaps; writing every result a user or 3D Slicer opens.

Readers live in :mod:`.reader` (checks in :mod:`.checks`), data-set iterators in
:mod:`.verse` and :mod:`.csi`, writers in one module per format (:mod:`.labelmap`,
:mod:`.segnrrd`, :mod:`.markups`, :mod:`.centroids`, :mod:`.surfaces`, :mod:`.overview`)
and the standard result folder in :mod:`.results`. VTK is imported only when a surface
is written.
"""

from SpineLabelerLib.io.centroids import read_verse_centroids, write_verse_centroids
from SpineLabelerLib.io.checks import CTInputError, check_ct
from SpineLabelerLib.io.labelmap import write_labelmap, write_scalar_image
from SpineLabelerLib.io.markups import read_centroids_mrk_json, write_centroids_mrk_json
from SpineLabelerLib.io.overview import write_overview_png
from SpineLabelerLib.io.reader import read_ct, read_labelmap
from SpineLabelerLib.io.results import ALL_FORMATS, RESULT_FILES, write_result_files
from SpineLabelerLib.io.segnrrd import write_seg_nrrd
from SpineLabelerLib.io.surfaces import write_vertebra_surfaces

__all__ = [
    "ALL_FORMATS",
    "RESULT_FILES",
    "CTInputError",
    "check_ct",
    "read_centroids_mrk_json",
    "read_ct",
    "read_labelmap",
    "read_verse_centroids",
    "write_centroids_mrk_json",
    "write_labelmap",
    "write_overview_png",
    "write_result_files",
    "write_scalar_image",
    "write_seg_nrrd",
    "write_verse_centroids",
    "write_vertebra_surfaces",
]
