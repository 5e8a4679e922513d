"""benchmarks/sacrum_evidence.py: what each bottom mask is, and the ranges per kind."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "sacrum_evidence.py"
_SPEC = importlib.util.spec_from_file_location("sacrum_evidence_benchmark", _PATH)
sacrum_evidence = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = sacrum_evidence
_SPEC.loader.exec_module(sacrum_evidence)
Reading = sacrum_evidence.Reading


def test_the_summary_keeps_sacra_cut_pieces_and_vertebrae_apart_real_or_phantom():
    readings = [
        Reading("sub-verse005@3mm", "sacrum", 0.72, 1.77, 0.41, True),
        Reading("dev004", "sacrum", 0.12, 3.36, 0.18, True),
        Reading("dev000@L2-L3", "L4", 1.02, 2.07, 1.06, False),
        Reading("bench005@L2-L3", "L4", 0.79, 1.91, 1.04, False),
        Reading("sub-verse008@3mm-L3-L4", "L5", 0.05, 1.29, 0.68, False),
        Reading("dev009", "L5", 0.98, 2.52, 0.20, False),
    ]
    lines = sacrum_evidence.summary_lines(readings)
    assert lines[1:] == [
        "  a vertebra (whole case): 1; 0.98-0.98 / 2.52-2.52 / 0.20-0.20; 0",
        "  cut piece of a short view, phantom: 2; 0.79-1.02 / 1.91-2.07 / 1.04-1.06; 0",
        "  cut piece of a short view, real: 1; 0.05-0.05 / 1.29-1.29 / 0.68-0.68; 0",
        "  sacrum's top, phantom: 1; 0.12-0.12 / 3.36-3.36 / 0.18-0.18; 1",
        "  sacrum's top, real: 1; 0.72-0.72 / 1.77-1.77 / 0.41-0.41; 1",
    ]


def test_a_step_nothing_could_be_read_for_prints_as_such():
    line = sacrum_evidence.reading_line(Reading("dev011", "sacrum", 0.14, 3.08, None, True))
    assert "step      -" in line and line.endswith("recognised")
    lines = sacrum_evidence.summary_lines([Reading("dev011", "sacrum", 0.14, 3.08, None, True)])
    assert lines[1] == "  sacrum's top, phantom: 1; 0.14-0.14 / 3.08-3.08 / -; 1"
