"""Screwed spines: what the metal costs the nets, and whether the pipeline says where it is.

    .venv/bin/python benchmarks/metal.py [--limit N] [--save]

Every phantom of the benchmark and development sets whose subject has pedicle screws at a
level in view (8 % of subjects draw them: screws through both pedicles of two or three
lumbar or lower thoracic levels, rods behind the laminae) is segmented twice: as drawn, and
as its twin drawn without metal (the same subject, anatomy and scan, the noise drawn anew:
``generate_case(..., screws=False)``). Printed per case: the screwed levels in view,
the Dice of each with and without the screws (0 where not found), the mean Dice of the
case's other vertebrae, and the vertebrae the metal note names (``metal.py``; the twin
should get none). Then the summary: the screwed vertebrae's mean Dice with and without,
how many were found, how many the note named, and the notes given to twins.

``--save`` writes benchmarks/results/metal.txt and the records as metal.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MIN_ML = 5.0  # vertebrae with less in view are left out of the Dice means (slivers)


def screwed_specs(limit: int | None):
    """(set name, spec) of every non-leg phantom whose subject draws screws, in set order."""
    import numpy as np

    from SpineLabelerLib import phantom
    from SpineLabelerLib.phantom.subject import METAL_PROBABILITY, draw_subject

    found = []
    for name, development in (("benchmark", False), ("development", True)):
        for spec in phantom.benchmark_set_specs(development):
            if spec.fov == "leg":
                continue
            anatomy_rng = np.random.default_rng(spec.seed).spawn(3)[0]
            if draw_subject(anatomy_rng, spec.variant, METAL_PROBABILITY).metal_levels:
                found.append((name, spec))
    return found[:limit] if limit else found


def measure(spec, screws: bool) -> dict:
    """Segment the case (``screws`` False: its twin without metal) and score it."""
    from SpineLabelerLib import anatomy, phantom
    from SpineLabelerLib.evaluation import evaluate
    from SpineLabelerLib.pipeline import SegmentSettings, segment_spine

    case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm, screws=screws)
    result = segment_spine(case.ct, SegmentSettings())
    rows = evaluate(result.labels, case.labels, None, case.centroids_lps).rows
    return {
        "metal": [anatomy.vertebra(v).name for v in case.meta["metal_labels"]],
        "found": [v.name for v in result.vertebrae],
        "dice": {r.name: float(r.dice or 0.0) for r in rows if r.reference_ml >= MIN_ML},
        "beside_metal": list(result.work.get("beside_metal", [])),
        "notes": list(result.messages),
        "segment_s": round(result.timings_s.get("total", float("nan")), 1),
    }


def in_view(measured: dict) -> list[str]:
    """The screwed levels with at least MIN_ML in view."""
    return [n for n in measured["metal"] if n in measured["dice"]]


def case_record(set_name: str, spec, screwed: dict, twin: dict) -> dict:
    """One case's record: the screwed levels in view beside the twin's same levels."""
    levels = in_view(screwed)
    return {
        "case": spec.case_id,
        "set": set_name,
        "fov": spec.fov,
        "screwed": levels,
        "dice_screwed": [screwed["dice"][n] for n in levels],
        "dice_twin": [twin["dice"].get(n, 0.0) for n in levels],
        "dice_others": _mean([d for n, d in screwed["dice"].items() if n not in levels]),
        "dice_others_twin": _mean([d for n, d in twin["dice"].items() if n not in levels]),
        "beside_metal": screwed["beside_metal"],
        "twin_beside_metal": twin["beside_metal"],
        "found": screwed["found"],
        "notes": screwed["notes"],
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def case_line(rec: dict) -> str:
    pairs = " ".join(
        f"{n} {100 * a:.0f}/{100 * b:.0f}"
        for n, a, b in zip(rec["screwed"], rec["dice_screwed"], rec["dice_twin"])
    )
    return (
        f"{rec['case']:9s} {rec['fov']:11s} screwed (Dice % with/without): {pairs}; others "
        f"{100 * rec['dice_others']:.1f}/{100 * rec['dice_others_twin']:.1f}; note names: "
        f"{' '.join(rec['beside_metal']) or 'none'}; twin: {' '.join(rec['twin_beside_metal']) or 'none'}"
    )


def summary_lines(records: list[dict]) -> list[str]:
    """The screwed vertebrae's Dice with and without the screws; the note's hits and false
    notes (a screwed vertebra found but not named; any name on a twin)."""
    with_metal = [d for r in records for d in r["dice_screwed"]]
    without = [d for r in records for d in r["dice_twin"]]
    found = [(r, n) for r in records for n, d in zip(r["screwed"], r["dice_screwed"]) if d > 0]
    named = sum(n in r["beside_metal"] for r, n in found)
    noted = sum(bool(r["beside_metal"]) for r in records)
    false_twins = sum(bool(r["twin_beside_metal"]) for r in records)
    return [
        f"screwed vertebrae in view: {len(with_metal)} in {len(records)} cases; mean Dice "
        f"{100 * _mean(with_metal):.1f} % with the screws, {100 * _mean(without):.1f} % for the "
        f"same vertebrae of the twins without; found {len(found)} of {len(with_metal)}",
        f"metal note: given on {noted} of {len(records)} cases, naming {named} of the "
        f"{len(found)} screwed vertebrae found; given on {false_twins} of {len(records)} twins "
        "without metal",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="at most this many screwed phantoms")
    p.add_argument("--save", action="store_true", help="write benchmarks/results/metal.*")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say("benchmarks/metal.py" + (" --save" if args.save else ""))
    say(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; default settings; 2 CPU threads")
    say("PHANTOMS (synthetic CT, not patients) with pedicle screws, each beside its twin without")
    records = []
    for set_name, spec in screwed_specs(args.limit):
        screwed = measure(spec, screws=True)
        if not in_view(screwed):
            continue
        rec = case_record(set_name, spec, screwed, measure(spec, screws=False))
        records.append(rec)
        say(case_line(rec))
    say()
    for line in summary_lines(records):
        say(line)
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "metal.txt").write_text("\n".join(lines) + "\n")
        (RESULTS / "metal.json").write_text(json.dumps({"cases": records}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
