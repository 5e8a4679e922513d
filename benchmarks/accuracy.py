"""Accuracy of ``segment_spine``: the paper's Tables 1 and 2 on the fixed phantom benchmark set.

    .venv/bin/python benchmarks/accuracy.py [--cases bench000,bench012] [--fov F] [--variant V]
                                            [--limit N] [--fast] [--save]
                                            [--development]

Every case of ``phantom.benchmark_set_specs()`` (or the chosen subset: CPU time is scarce)
is regenerated from its seed, segmented with the shipped weights and scored with
``SpineLabelerLib.evaluation`` on the reference grid. Printed:

- one line per case (what was found against what is there);
- Table 1 (Dice %, ASSD mm, HD mm) and Table 2 (localization error mean / std mm,
  identification rate %), all / cervical / thoracic / lumbar, pooled over vertebrae;
- a row per transitional variant, per field of view and per slice thickness (the thickest
  voxel side);
- the vertebrae not identified, by how much of each the view holds (a sliver at its edge
  counts in the id rate as much as a whole vertebra);
- false vertebrae on the leg CTs (which hold no spine).

Real CTs are measured by benchmarks/real.py alone, which says which of them chose the weights
and rules in use.

``--development`` draws the same plan from other seeds (cases dev000...): a rule of the
pipeline is looked at and tuned there, so that the benchmark's cases stay unseen.

``--save`` writes the printed text to benchmarks/results/accuracy[_<tag>].txt and every
per-vertebra row to the matching .json (``--development`` tags "dev" unless told: its figures
never replace the benchmark's).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from SpineLabelerLib.commands.outline_options import (  # noqa: E402
    add_outline_options,
    apply_outline_options,
    describe_outline_options,
)


def _fmt(value: float, digits: int = 1) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


REFERENCE_STAGE1 = False  # --stage1-from-reference: a diagnostic, never a result


class ReferenceRegions:
    """Stage 1 replaced by the reference labels' regions on the stage-1 grid (a diagnostic
    that measures stage 2 + identification alone; ``(1, K, J, I)`` -> ``(4, K, J, I)``)."""

    messages: list = []

    def __init__(self, labels, spacing_mm: float) -> None:
        from SpineLabelerLib import preprocess

        grid = preprocess.labels_to_canonical(labels, spacing_mm)
        self.classes = preprocess.region_classes(grid.array)
        self.trained_spacing_mm = spacing_mm

    def __call__(self, volume):
        import numpy as np

        if volume.shape[1:] != self.classes.shape:
            raise ValueError(f"grid {volume.shape[1:]} != reference grid {self.classes.shape}")
        return np.stack([(self.classes == c).astype(np.float32) for c in range(4)])


def segment(ct, settings, reference=None):
    from SpineLabelerLib.pipeline import load_runners, segment_spine, stage1_spacing

    if not REFERENCE_STAGE1:
        return segment_spine(ct, settings)
    run1, run2, device, _ = load_runners(settings)
    oracle = ReferenceRegions(reference, stage1_spacing(settings, run1))
    return segment_spine(ct, settings, runners=(oracle, run2, device))


def run_phantom_case(spec, settings) -> dict:
    """Generate, segment and score one benchmark case."""
    from SpineLabelerLib import phantom
    from SpineLabelerLib.evaluation import evaluate, predicted_matches

    t = time.perf_counter()
    case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm)
    gen_s = time.perf_counter() - t
    result = segment(case.ct, settings, case.labels)
    record = {
        "case": spec.case_id,
        "seed": spec.seed,
        "fov": spec.fov,
        "variant": spec.variant,
        "size_ijk": list(case.ct.size_ijk),
        "spacing_mm": [round(s, 3) for s in case.ct.spacing_mm],
        "slices_mm": slice_class(case.ct.spacing_mm),
        "generate_s": round(gen_s, 1),
        "segment_s": round(result.timings_s.get("total", math.nan), 1),
        "found": [v.name for v in result.vertebrae],
        "no_spine_found": result.no_spine_found,
        "notes": list(result.messages),
        "count_check": result.count_check,
        "pieces_folded": result.work.get("pieces_folded", 0),
    }
    ref_present = bool(case.labels.array.any())
    if not ref_present:  # a leg CT: every vertebra found is a false one
        record.update(reference=[], rows=[], false_vertebrae=len(result.vertebrae))
        return record
    ev = evaluate(result.labels, case.labels, None, case.centroids_lps)
    matches = predicted_matches(result.labels, case.labels)
    record.update(
        reference=[r.name for r in ev.rows],
        rows=[r.__dict__ for r in ev.rows],
        extra=[int(x) for x in ev.extra_predicted_labels],
        count_anchors=list(result.count_anchors),
        named=[  # every name given, with its confidence; on a phantom every voxel is labelled
            {
                "name": v.name,
                "confidence": v.confidence,
                "right": v.label in matches and matches[v.label].named_right,
                "region_votes": [round(float(x), 3) for x in v.region_votes],
                "rib_score": None if v.rib_score is None else round(float(v.rib_score), 3),
                "looks_like": v.looks_like,  # the level head's reading
            }
            for v in result.vertebrae
        ],
    )
    return record


def _rows(records):
    from SpineLabelerLib.evaluation import VertebraRow

    return [VertebraRow(**r) for rec in records for r in rec.get("rows", [])]


def summary_lines(records, title: str) -> list[str]:
    from SpineLabelerLib.evaluation import summarize

    rows = _rows(records)
    if not rows:
        return [f"{title}: no vertebrae in the reference"]
    summary = summarize(rows)
    lines = [
        f"{title}: {len(records)} cases, {len(rows)} reference vertebrae",
        "Table 1 - segmentation                 Table 2 - localization and identification",
        f"{'':<10}{'n':>4}{'Dice %':>8}{'ASSD mm':>9}{'HD mm':>8}    {'Mean mm':>8}{'Std mm':>8}{'Id rate %':>11}",
    ]
    for s in summary:
        lines.append(
            f"{s.group:<10}{s.n:>4}{_fmt(s.dice_pct):>8}{_fmt(s.assd_mm, 2):>9}{_fmt(s.hd_mm, 2):>8}    "
            f"{_fmt(s.loc_mean_mm):>8}{_fmt(s.loc_std_mm):>8}{_fmt(s.id_rate_pct):>11}"
        )
    return lines


def group_lines(records, key: str) -> list[str]:
    from SpineLabelerLib.evaluation import summarize

    big = f"Dice % >= {WHOLE_ML:g} ml"
    lines = [
        f"{'by ' + key:<16}{'cases':>6}{'vert':>6}{'Dice %':>8}{'loc mm':>8}{'Id rate %':>11}{big:>17}"
    ]
    for value in sorted({r[key] for r in records}):
        group = [r for r in records if r[key] == value and r.get("rows")]
        rows = _rows(group)
        if not rows:
            continue
        s = summarize(rows)[0]
        large = [r for r in rows if r.reference_ml >= WHOLE_ML]
        dice_large = summarize(large)[0].dice_pct if large else math.nan
        lines.append(
            f"{value:<16}{len(group):>6}{len(rows):>6}{_fmt(s.dice_pct):>8}{_fmt(s.loc_mean_mm):>8}"
            f"{_fmt(s.id_rate_pct):>11}{_fmt(dice_large):>17}"
        )
    return lines


# Vertebrae with this much in view: their Dice is the segmentation's quality, apart from the
# slivers at the view's edge that the id rate and the overall Dice count like whole ones.
WHOLE_ML = 5.0
SLICE_CLASSES_MM = (1.2, 2.0, 2.6)  # bounds of the thickest voxel side, for the "by slices" rows


def slice_class(spacing_mm) -> str:
    """The class of a case's thickest voxel side (its slices), e.g. "1.2-2.0": stage 2 sees
    every CT resampled to 1 mm, so thick slices reach it blurred along one axis."""
    thickest = max(spacing_mm)
    bounds = (0.0, *SLICE_CLASSES_MM, math.inf)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if thickest < hi:
            return f"{lo:.1f}-{hi:.1f}" if hi < math.inf else f"{lo:.1f}+"
    raise ValueError(spacing_mm)


def confidence_lines(records) -> list[str]:
    """How often a name given with confidence >= CONFIDENT is wrong, and how often one under
    it; a predicted vertebra is named right when its name is the reference label it lies on
    most (on a phantom a vertebra where the reference has none is named wrong)."""
    from SpineLabelerLib.identify import TRUSTED_CONFIDENCE as CONFIDENT

    named = [n for r in records for n in r.get("named", [])]
    sure = [n for n in named if n["confidence"] >= CONFIDENT]
    unsure = [n for n in named if n["confidence"] < CONFIDENT]
    anchored = sum(bool(r.get("count_anchors")) for r in records if r.get("named"))
    columns = sum(bool(r.get("named")) for r in records)

    def wrong(group) -> str:
        bad = sum(not n["right"] for n in group)
        return f"{bad} wrong ({100 * bad / len(group):.1f} %)" if group else "none"

    return [
        f"names given with confidence >= {CONFIDENT}: {len(sure)}, {wrong(sure)}; "
        f"under {CONFIDENT}: {len(unsure)}, {wrong(unsure)}",
        f"columns with an anchor for the count in view (skull, sacrum or end of the ribs): "
        f"{anchored} of {columns}",
    ]


MISS_SIZES_ML = (1.0, 5.0)  # "in view" size classes of the vertebrae not identified


def miss_lines(records) -> list[str]:
    """The vertebrae not identified, by how much of each the view holds (reference ml): a
    0.1 ml sliver at the edge of the view counts as much in the id rate as a whole vertebra."""
    lines = ["not identified, by the reference's volume in view (ml):"]
    missed = [
        (rec["case"], r)
        for rec in records
        for r in rec.get("rows", [])
        if not r["identified"] and not math.isnan(r.get("reference_ml", math.nan))
    ]
    bounds = (0.0, *MISS_SIZES_ML, math.inf)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        group = [f"{case} {r['name']}" for case, r in missed if lo <= r["reference_ml"] < hi]
        span = f"{lo:g}-{hi:g}" if hi < math.inf else f">= {lo:g}"
        lines.append(f"  {span:<8} {len(group):>3}  {', '.join(group)}".rstrip())
    return lines


def case_line(rec: dict) -> str:
    found = "(no spine found)" if rec["no_spine_found"] else " ".join(rec["found"])
    if not rec.get("rows") and rec.get("false_vertebrae") is not None:
        return (
            f"{rec['case']:<9} {rec['fov']:<9} {rec['variant']:<13} leg: "
            f"{rec['false_vertebrae']} false vertebrae; {found}  [{rec['segment_s']} s]"
        )
    rows = rec["rows"]
    ident = sum(r["identified"] for r in rows)
    dice = sum(r["dice"] for r in rows) / len(rows)
    ref = rec["reference"]
    return (
        f"{rec['case']:<9} {rec['fov']:<9} {rec['variant']:<13} ref {ref[0]}-{ref[-1]} ({len(ref)}), "
        f"found {len(rec['found'])}: {found}; id {ident}/{len(rows)}, Dice {100 * dice:.1f}%  "
        f"[{rec['segment_s']} s]"
    )


def count_check_lines(records: list[dict]) -> list[str]:
    """Where the level head's count check spoke (column.count_check), and how those cases
    were named."""
    flagged = [r for r in records if r.get("count_check")]
    lines = [f"count check (level head): spoke on {len(flagged)} of {len(records)} spine cases"]
    for r in flagged:
        found = [row for row in r["rows"] if row["predicted"]]
        named = sum(bool(row["identified"]) for row in found)
        lines.append(
            f"  {r['case']} {r['variant']:<14}{r['fov']:<12} named right {named}/{len(found)} found"
        )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", help="comma list of case ids (bench000, ...)")
    p.add_argument("--fov", help="only this field of view")
    p.add_argument(
        "--variant", help="only this variant (leg cases are variant 'normal', fov 'leg')"
    )
    p.add_argument("--limit", type=int, help="at most this many phantom cases")
    p.add_argument(
        "--development",
        action="store_true",
        help="the same plan on development seeds (dev000...): tune rules there, not here",
    )
    p.add_argument("--fast", action="store_true", help="segment with --fast settings")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", help="folder with stage1.pt and stage2.pt (default: shipped)")
    add_outline_options(p)  # as spinelabeler segment's
    p.add_argument(
        "--no-level-head",
        action="store_true",
        help="name without the level head (what it buys: run with and without)",
    )
    p.add_argument(
        "--save", action="store_true", help="write benchmarks/results/accuracy*.txt/.json"
    )
    p.add_argument("--tag", help="suffix of the saved file names")
    p.add_argument(
        "--stage1-from-reference",
        action="store_true",
        help="diagnostic: replace stage 1 by the reference regions (measures stage 2 + naming)",
    )
    args = p.parse_args(argv)
    global REFERENCE_STAGE1
    REFERENCE_STAGE1 = args.stage1_from_reference

    import torch

    from SpineLabelerLib import nets
    from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs
    from SpineLabelerLib.pipeline import SegmentSettings

    torch.set_num_threads(args.threads)
    settings = SegmentSettings(device="cpu", threads=args.threads)
    if args.weights:
        settings = SegmentSettings(
            weights_dir=Path(args.weights), device="cpu", threads=args.threads
        )
    if args.fast:
        settings = settings.fast()
    if args.no_level_head:
        settings = replace(settings, use_level_head=False)
    settings = apply_outline_options(settings, args)
    specs = benchmark_set_specs(args.development)
    if args.cases:
        wanted = set(args.cases.split(","))
        specs = [s for s in specs if s.case_id in wanted]
    if args.fov:
        specs = [s for s in specs if s.fov == args.fov]
    if args.variant:
        specs = [s for s in specs if s.variant == args.variant and s.fov != "leg"]
    if args.limit:
        specs = specs[: args.limit]

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"benchmarks/accuracy.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    if REFERENCE_STAGE1:
        say("DIAGNOSTIC: stage 1 replaced by the reference regions; not a result of the product")
    say(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; stage-1 spacing "
        f"{settings.stage1_spacing_mm or 'as trained'}; "
        f"{'--fast' if args.fast else 'default settings'}{describe_outline_options(args)}; "
        f"{args.threads} CPU threads"
    )
    for kind in ("stage1", "stage2"):
        meta = nets.read_weight_file(Path(settings.weights_dir) / f"{kind}.pt")["meta"]
        say(f"{kind} weights: step {meta.get('steps')}, validation {meta.get('validation')}")
    head_file = Path(settings.weights_dir) / "level_head.pt"
    say(
        f"level head: {head_file if settings.use_level_head and head_file.is_file() else 'not used'}"
    )
    records = []
    for spec in specs:
        rec = run_phantom_case(spec, settings)
        records.append(rec)
        say(case_line(rec))
    spine = [r for r in records if r.get("rows")]
    legs = [r for r in records if r.get("false_vertebrae") is not None]
    if spine:
        say("")
        which = "development" if args.development else "benchmark"
        say_all = summary_lines(spine, f"PHANTOM {which} set (synthetic CT, not patients)")
        for line in say_all:
            say(line)
        say("")
        for line in group_lines(spine, "variant"):
            say(line)
        say("")
        for line in group_lines(spine, "fov"):
            say(line)
        say("")
        for line in group_lines(spine, "slices_mm"):
            say(line)
        say("")
        for line in miss_lines(spine):
            say(line)
        say("")
        for line in count_check_lines(spine):
            say(line)
        say("")
        for line in confidence_lines(spine):
            say(line)
    if legs:
        say("")
        n_false = sum(r["false_vertebrae"] for r in legs)
        n_none = sum(r["no_spine_found"] for r in legs)
        say(
            f"leg CTs: {len(legs)} cases, {n_false} false vertebrae in all, 'no spine found' on {n_none}/{len(legs)}"
        )
    if args.save:
        tag = args.tag or ("dev" if args.development else "")
        tag = f"_{tag}" if tag else ""
        out = ROOT / "benchmarks" / "results" / f"accuracy{tag}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        out.with_suffix(".json").write_text(
            json.dumps({"cases": records}, indent=1, default=float) + "\n"
        )
        print(f"saved {out.relative_to(ROOT)} and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
