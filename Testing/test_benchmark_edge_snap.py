"""benchmarks/edge_snap.py: the snap judged at each contrast, and the table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from SpineLabelerLib.image import Image

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "edge_snap.py"
_SPEC = importlib.util.spec_from_file_location("edge_snap_benchmark", _PATH)
edge_snap = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = edge_snap
_SPEC.loader.exec_module(edge_snap)


def test_a_rim_half_way_up_is_taken_at_half_the_contrast_only():
    """The expert's mask holds the partial-volume rim (370 HU, half-way from 40 to 700); the
    net stopped inside it."""
    net = np.zeros((16, 16, 16), np.int32)
    net[4:12, 4:12, 4:12] = 1
    hu = np.full(net.shape, 40, np.int16)
    hu[3:13, 3:13, 3:13] = 370
    hu[net > 0] = 700
    ct = Image(hu)
    expert = ct.with_array((hu > 100).astype(np.uint8))
    dice = edge_snap.dice_by_contrast(net, ct, expert, [0.5, 0.8])
    assert dice["0.50"] == 1.0
    assert dice["0.80"] == dice["none"] == 2 * 512 / (512 + 1000)


def test_the_table_gives_each_group_its_mean():
    records = [
        {
            "group": "phantoms",
            "case": "a",
            "spacing_mm": [1, 1, 3],
            "dice": {"none": 0.9, "0.50": 0.8},
        },
        {
            "group": "phantoms",
            "case": "b",
            "spacing_mm": [1, 1, 1],
            "dice": {"none": 0.7, "0.50": 0.8},
        },
        {"group": "real", "case": "r", "spacing_mm": [1, 1, 1], "dice": {"none": 0.5, "0.50": 0.6}},
    ]
    lines = edge_snap.table_lines(records, ["none", "0.50"])
    assert lines[1].startswith("a ") and "1x1x3" in lines[1] and lines[1].endswith("90.0   80.0")
    assert lines[3].startswith("mean, phantoms") and lines[3].endswith("80.00  80.00")
    assert lines[5].startswith("mean, real") and lines[5].endswith("50.00  60.00")
