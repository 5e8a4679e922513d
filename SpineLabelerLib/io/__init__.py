"""Reading and checking CTs and labelmaps; writing every result a user or 3D Slicer opens.

Readers live in :mod:`.reader` (checks in :mod:`.checks`), data-set iterators in
:mod:`.verse` and :mod:`.csi`, writers in one module per format; VTK is imported only
when a surface is written.
"""

from SpineLabelerLib.io.checks import CTInputError, check_ct
from SpineLabelerLib.io.reader import read_ct, read_labelmap

__all__ = ["CTInputError", "check_ct", "read_ct", "read_labelmap"]
