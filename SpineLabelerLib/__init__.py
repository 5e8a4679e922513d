"""SpineLabeler: find, segment and name every vertebra (C1-L6) in any CT.

The pure-Python library behind the SpineLabeler 3D Slicer extension. It never imports
``slicer``; the Slicer module is thin glue over it.
"""

__version__ = "0.1.0"
