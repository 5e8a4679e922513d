"""benchmarks/short_views.py: the views' levels and the summary's counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "short_views.py"
_SPEC = importlib.util.spec_from_file_location("short_views_benchmark", _PATH)
short_views = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = short_views
_SPEC.loader.exec_module(short_views)


def named(name: str, confidence: float, right: bool) -> dict:
    return {"name": name, "confidence": confidence, "right": right}


def test_each_view_holds_its_three_levels():
    assert short_views.view_levels("C3", "C5") == [3, 4, 5]
    assert short_views.view_levels("T11", "L1") == [18, 19, 20]
    assert short_views.view_levels("L2", "L3") == [21, 22]


def test_the_summary_counts_sure_names_that_are_wrong_per_view():
    records = [
        {
            "view": "C3-C5",
            "anchors": [],
            "named": [named("C1", 0.25, False), named("C2", 0.25, False)],
        },
        {"view": "C3-C5", "anchors": ["rib ends"], "named": [named("C6", 0.75, False)]},
        {"view": "T11-L1", "anchors": ["rib ends"], "named": [named("T12", 0.9, True)]},
    ]
    cervical, _, ribs, _ = short_views.summary_lines(records)
    assert cervical.startswith("C3-C5   views  2, anchored  1; named right   0 of   3;")
    assert "given >= 0.7:   1, wrong 1;" in cervical and cervical.endswith("wrong name 0.75")
    assert "named right   1 of   1" in ribs and "wrong 0;" in ribs and ribs.endswith("0.00")


def test_the_count_check_is_right_where_its_shift_names_every_drawn_find():
    def view(shift, covers):
        finds = [dict(named(n, 0.3, False), covers=c) for n, c in zip(("L2", "L3"), covers)]
        check = {"shift_levels": shift} if shift else None
        return {"view": "L2-L3", "anchors": [], "named": finds, "count_check": check}

    one_higher = view(-1, ("L1", "L2"))
    assert short_views.check_reads_right(one_higher) is True
    assert short_views.check_reads_right(view(1, ("L1", "L2"))) is False
    assert short_views.check_reads_right(view(0, ("L1", "L2"))) is None
    assert short_views.check_reads_right(view(-1, ("L1", None))) is True  # an undrawn find
    _, checks = short_views.summary_lines([one_higher, view(1, ("L1", "L2")), view(0, ("L2",))])
    assert checks.endswith("the count check spoke on  2: its placement right on  1")
