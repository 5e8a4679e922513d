"""benchmarks/metal.py: the case line and the summary's counts, on hand-made records."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "metal.py"
_SPEC = importlib.util.spec_from_file_location("metal_benchmark", _PATH)
metal_benchmark = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = metal_benchmark
_SPEC.loader.exec_module(metal_benchmark)


def record(screwed, with_metal, without, named, twin_named=()) -> dict:
    return {
        "case": "dev000",
        "fov": "lumbar",
        "screwed": list(screwed),
        "dice_screwed": list(with_metal),
        "dice_twin": list(without),
        "dice_others": 0.95,
        "dice_others_twin": 0.96,
        "beside_metal": list(named),
        "twin_beside_metal": list(twin_named),
    }


def test_only_screwed_levels_in_view_count():
    measured = {"metal": ["L3", "L4", "L5"], "dice": {"L2": 0.9, "L3": 0.8, "L4": 0.0}}
    assert metal_benchmark.in_view(measured) == ["L3", "L4"]


def test_the_summary_counts_missed_vertebrae_named_ones_and_false_notes():
    records = [
        record(["L4", "L5"], [0.0, 0.0], [0.9, 0.9], []),  # both missed: no note, nothing found
        record(["L2", "L3"], [0.8, 0.6], [0.9, 0.9], ["L3"], twin_named=["L2"]),
    ]
    dice, note = metal_benchmark.summary_lines(records)
    assert dice.startswith("screwed vertebrae in view: 4 in 2 cases; mean Dice 35.0 %")
    assert "90.0 % for the same vertebrae" in dice and dice.endswith("found 2 of 4")
    assert note.startswith("metal note: given on 1 of 2 cases, naming 1 of the 2 screwed")
    assert note.endswith("given on 1 of 2 twins without metal")
    assert metal_benchmark.case_line(records[1]).startswith(
        "dev000    lumbar      screwed (Dice % with/without): L2 80/90 L3 60/90; others 95.0/96.0"
    )
