"""Names on short views: does the count know when it cannot know?

    .venv/bin/python benchmarks/short_views.py [--development] [--limit N] [--save] [--tag T]

A patient's CT often shows a few vertebrae and none of what fixes their count (C1 under the
skull, the sacrum, the end of the ribs). Each whole-spine phantom of the benchmark set
(``--development``: of the development set) is cut along the spine to three vertebrae and
4 mm round them (``evaluation/degrade.crop_to_levels``: the neighbours cut, as an expert labels
what is in view), at four places: C3-C5, T5-T7, T11-L1 (the ribs end in view), L2-L3 (two).
Printed per place: views, views the pipeline calls anchored, names given right, names given
with confidence >= 0.7 and how many of those are wrong, the highest confidence of a wrong name,
and on how many views the count check spoke (the level head preferring another count,
``column.count_check``) with its placement right; then one line per view. Where nothing
anchors the count the names may be wrong, but their confidence must say so (at most
``identify.UNANCHORED_CONFIDENCE``).

``--save`` writes benchmarks/results/short_views[_<tag>].txt and the records as .json
(``--development`` tags "dev" unless told).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from SpineLabelerLib.identify import TRUSTED_CONFIDENCE as SURE  # noqa: E402

VIEWS = {
    "C3-C5": ("C3", "C5"),
    "T5-T7": ("T5", "T7"),
    "T11-L1": ("T11", "L1"),
    "L2-L3": ("L2", "L3"),
}
MARGIN_MM = 4.0


def view_levels(first: str, last: str) -> list[int]:
    """The label values of the vertebrae ``first``..``last``."""
    from SpineLabelerLib import anatomy

    names = [v.name for v in anatomy.VERTEBRAE]
    return [anatomy.vertebra(n).label for n in names[names.index(first) : names.index(last) + 1]]


def level_name(label: int) -> str | None:
    """The level a reference label stands for (None: voxels no level was drawn on)."""
    from SpineLabelerLib import anatomy

    level = anatomy.BY_LABEL.get(label)
    return level.name if level else None


def view_record(case_id: str, variant: str, view: str, result, reference) -> dict:
    """One view's names against the reference; finds on unlabelled voxels apart ("extras":
    not counted, but their evidence kept, since it takes part in the count)."""
    from SpineLabelerLib.evaluation import predicted_matches

    matches = predicted_matches(result.labels, reference)

    def entry(v) -> dict:  # the name and the evidence the count rests on
        return {
            "name": v.name,
            "confidence": round(float(v.confidence), 3),
            "right": bool(v.label in matches and matches[v.label].named_right),
            "covers": level_name(matches[v.label].covers) if v.label in matches else None,
            "region_votes": [round(float(x), 3) for x in v.region_votes],  # stage 1's C, T, L
            "rib_score": None if v.rib_score is None else round(float(v.rib_score), 3),
            "looks_like": v.looks_like,  # the level head's reading
        }

    def extra(v) -> bool:
        return v.label in matches and matches[v.label].extra

    return {
        "case": case_id,
        "variant": variant,
        "view": view,
        "named": [entry(v) for v in result.vertebrae if not extra(v)],
        "extras": [entry(v) for v in result.vertebrae if extra(v)],  # on unlabelled voxels
        "anchors": list(result.count_anchors),
        "walk_ends": list(result.walk_ends),
        "count_check": result.count_check,
        "notes": list(result.messages),
    }


def check_reads_right(rec: dict) -> bool | None:
    """Whether the count check's placement names every find on a drawn level right (None:
    it did not speak)."""
    from SpineLabelerLib import anatomy

    check = rec.get("count_check")
    if not check:
        return None
    drawn = [n for n in rec["named"] if n["covers"]]
    return bool(drawn) and all(
        anatomy.vertebra(n["name"]).label + check["shift_levels"]
        == anatomy.vertebra(n["covers"]).label
        for n in drawn
    )


def summary_lines(records: list[dict]) -> list[str]:
    """A line per view place: views, anchored, named right, names >= SURE and those wrong."""
    lines = []
    for view in VIEWS:
        group = [r for r in records if r["view"] == view]
        if not group:
            continue
        named = [n for r in group for n in r["named"]]
        sure = [n for n in named if n["confidence"] >= SURE]
        wrong = [n["confidence"] for n in named if not n["right"]]
        lines.append(
            f"{view:7s} views {len(group):2d}, anchored {sum(bool(r['anchors']) for r in group):2d}; "
            f"named right {sum(n['right'] for n in named):3d} of {len(named):3d}; "
            f"given >= {SURE}: {len(sure):3d}, wrong {sum(not n['right'] for n in sure)}; "
            f"highest confidence of a wrong name {max(wrong, default=0.0):.2f}"
        )
        checks = [check_reads_right(r) for r in group if r.get("count_check")]
        lines.append(
            f"{'':7s} the count check spoke on {len(checks):2d}: its placement right on "
            f"{sum(checks):2d}"
        )
    return lines


def view_line(rec: dict) -> str:
    names = " ".join(
        f"{n['name']}({n['confidence']:.2f}{'' if n['right'] else ' WRONG'})" for n in rec["named"]
    )
    anchors = ", ".join(rec["anchors"]) or "none"
    return f"{rec['case']} {rec['variant']:13s} {rec['view']:7s} anchors: {anchors:16s} {names}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--development", action="store_true", help="the development set's phantoms")
    p.add_argument("--limit", type=int, default=0, help="the first N whole-spine phantoms only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", action="store_true", help="write benchmarks/results/short_views*")
    p.add_argument("--tag", default="", help="suffix of the saved files' names")
    args = p.parse_args(argv)

    import torch

    from SpineLabelerLib import phantom
    from SpineLabelerLib.evaluation.degrade import crop_to_levels
    from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs
    from SpineLabelerLib.pipeline import SegmentSettings, segment_spine

    torch.set_num_threads(args.threads)
    settings = SegmentSettings(device="cpu", threads=args.threads)
    specs = [s for s in benchmark_set_specs(args.development) if s.fov == "whole"]
    specs = specs[: args.limit] if args.limit else specs
    which = "development" if args.development else "benchmark"
    lines = [
        f"benchmarks/short_views.py{' --development' if args.development else ''}",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(specs)} whole-spine "
        f"phantoms of the {which} set, {len(VIEWS)} views each ({MARGIN_MM:g} mm round three "
        f"vertebrae; two for L2-L3); shipped weights, default settings; {args.threads} CPU threads",
    ]
    print("\n".join(lines), flush=True)
    records = []
    for spec in specs:
        case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm)
        for view, (first, last) in VIEWS.items():
            ct, ref = crop_to_levels(case.ct, case.labels, view_levels(first, last), MARGIN_MM)
            rec = view_record(spec.case_id, spec.variant, view, segment_spine(ct, settings), ref)
            records.append(rec)
            lines.append(view_line(rec))
            print(lines[-1], flush=True)
    lines += ["", *summary_lines(records)]
    print("\n".join(lines[-len(VIEWS) - 1 :]))
    if args.save:
        tag = args.tag or ("dev" if args.development else "")
        stem = ROOT / "benchmarks" / "results" / f"short_views{'_' + tag if tag else ''}"
        stem.with_suffix(".txt").write_text("\n".join(lines) + "\n")
        stem.with_suffix(".json").write_text(json.dumps(records, indent=1))
        print(f"saved {stem.with_suffix('.txt').name} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
