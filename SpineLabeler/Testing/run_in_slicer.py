"""Run SpineLabelerTest inside 3D Slicer and exit with its result (see docs/SLICER.md).

    Slicer --no-main-window --testing --additional-module-paths <qt-scripted-modules> \
        --python-script SpineLabeler/Testing/run_in_slicer.py
"""

import traceback

import slicer

try:
    import SpineLabeler

    SpineLabeler.SpineLabelerTest().runTest()
except Exception:
    traceback.print_exc()
    print("SpineLabelerTest FAILED")
    slicer.util.exit(slicer.util.EXIT_FAILURE)
else:
    print("SpineLabelerTest passed")
    slicer.util.exit(slicer.util.EXIT_SUCCESS)
