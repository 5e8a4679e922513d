"""The real-CT benchmark: every real case at hand, judged only where it chose nothing in use.

    .venv/bin/python benchmarks/real.py [--cases DIR] [--weights DIR] [--variants] [--fast]
                                        [--threads N] [--save]

Each case of ``--cases`` (default /work/shared/realdata; any folder of VerSe-layout cases,
found by ``io.verse.find_verse_cases``) is segmented by ``pipeline.segment_spine`` and scored on
the CT's own grid against the expert's mask with ``SpineLabelerLib.evaluation``. Leave one
out: a weights folder may hold one subfolder per case (``WEIGHTS/<case id>/stage1.pt ...``,
weights adapted without that case), used for that case instead of the folder's own files.
Which real cases chose the weights, the level head and the pipeline's rules in use is read
from the ``provenance.json`` beside them (``SpineLabelerLib/provenance.py``): a case that
chose any of them is printed, marked, and left out of the targets; a weight file the record
does not know makes its cases "provenance unknown", never held out.

Printed per case and expert vertebra: named right (the 20 mm identification rule), Dice,
outline Dice (the predicted vertebra covering most of it, whatever its name), recall and
precision of the prediction of its own name, the share of it other predicted vertebrae hold
("neighbour": where two meet, lost to a neighbour rather than to the outline), localization
error, the name and confidence the pipeline gave the vertebra covering it; then the predicted
vertebrae lying mostly where the expert labelled nothing ("extra": a sacrum, a cut vertebra
above) and those named wrong with confidence >= 0.7. Then the targets, per held-out case and
pooled over them: every expert vertebra named right, mean Dice >= 0.90, none under 0.80, none
named wrong with confidence >= 0.7.

``--variants`` measures each case also as the scans users bring that the cases here are not
(``evaluation/degrade.py``): its axial slices 3 mm thick ("<case>@3mm"), its two middle
expert vertebrae alone at 3 mm ("<case>@3mm-L2-L3"; what the view leaves of their neighbours
stays labelled), and the same CT sampled once more on its grid moved half a voxel
("<case>@half-voxel": a decision that flips under it stands on a knife's edge). A variant
stands where its case stands: it chose what its case chose.

``--save`` writes benchmarks/results/real.txt, real.json and real_<case>.png (the CT's
sagittal and coronal views with the predicted labels beside the expert's).

Real CTs: VerSe (Loeffler M. et al., A Vertebral Segmentation Dataset with Fracture Grading,
Radiology: Artificial Intelligence 2020; Sekuboyina A. et al., VerSe: A Vertebrae Labelling
and Segmentation Benchmark for Multi-detector CT Images, Medical Image Analysis 2021),
CC BY-SA 4.0; the pictures written here are shared under the same licence.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from SpineLabelerLib.commands.outline_options import (  # noqa: E402
    add_outline_options,
    apply_outline_options,
    describe_outline_options,
)

# a wrong name given with at least this confidence is a target failure
from SpineLabelerLib.identify import TRUSTED_CONFIDENCE as SURE  # noqa: E402

DEFAULT_CASES = Path("/work/shared/realdata")
RESULTS = ROOT / "benchmarks" / "results"
ATTRIBUTION = (
    "Real CTs: VerSe (Loeffler et al., Radiology: AI 2020; Sekuboyina et al., Medical Image "
    "Analysis 2021), CC BY-SA 4.0"
)
TARGET_MEAN_DICE = 0.90
TARGET_MIN_DICE = 0.80
PICTURE_CREDIT = (
    "Real CT: VerSe (Loeffler et al. 2020; Sekuboyina et al. 2021),",
    "CC BY-SA 4.0; this picture is shared under the same licence.",
)
WEIGHT_FILES = ("stage1.pt", "stage2.pt")
# --variants: the slab thickness and the margin round a tight crop's vertebrae (mm)
VARIANT_SLAB_MM = 3.0
VARIANT_MARGIN_MM = 4.0


@dataclass(frozen=True)
class Targets:
    """The figures the targets are judged on, for one case or pooled over cases."""

    named_right: int
    vertebrae: int
    mean_dice: float
    min_dice: float
    mean_outline_dice: float
    wrong_sure: int

    def verdicts(self) -> dict[str, bool]:
        return {
            "all named right": self.named_right == self.vertebrae,
            f"mean Dice >= {TARGET_MEAN_DICE:.2f}": self.mean_dice >= TARGET_MEAN_DICE,
            f"none under {TARGET_MIN_DICE:.2f}": self.min_dice >= TARGET_MIN_DICE,
            f"none named wrong with confidence >= {SURE}": self.wrong_sure == 0,
        }

    def line(self, title: str) -> str:
        verdicts = "; ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in self.verdicts().items())
        return (
            f"{title}: named right {self.named_right}/{self.vertebrae}, mean Dice "
            f"{100 * self.mean_dice:.1f} %, min {100 * self.min_dice:.1f} %, mean outline Dice "
            f"{100 * self.mean_outline_dice:.1f} %, named wrong with confidence >= {SURE}: "
            f"{self.wrong_sure}  |  {verdicts}"
        )


def targets_of(records: list[dict]) -> Targets:
    """Targets over the expert vertebrae of ``records`` (one case, or pooled)."""
    rows = [r for rec in records for r in rec["rows"]]
    dice = [r["dice"] for r in rows]
    return Targets(
        sum(r["named_right"] for r in rows),
        len(rows),
        sum(dice) / len(dice),
        min(dice),
        sum(r["outline_dice"] for r in rows) / len(rows),
        sum(len(rec["wrong_sure"]) for rec in records),
    )


def case_weights(weights_dir: Path, case_id: str) -> Path:
    """The case's own leave-one-out folder where the weights folder has one, else the folder."""
    fold = weights_dir / case_id
    return fold if all((fold / f).is_file() for f in WEIGHT_FILES) else weights_dir


def artefacts_in_use(settings) -> list[tuple[Path, str]]:
    """(folder, artefact) of everything that chose this run's names and masks: the weight
    files, the level head where it is used, and the pipeline's rules (the shipped record)."""
    from SpineLabelerLib.pipeline import DEFAULT_WEIGHTS_DIR
    from SpineLabelerLib.provenance import PIPELINE

    folder = Path(settings.weights_dir)
    used = [(folder, f) for f in WEIGHT_FILES]
    if settings.use_level_head and (folder / "level_head.pt").is_file():
        used.append((folder, "level_head.pt"))
    if settings.outline_weights_dir is not None:  # the net that outlines again
        used.append((Path(settings.outline_weights_dir), "stage2.pt"))
    return [*used, (DEFAULT_WEIGHTS_DIR, PIPELINE)]


@dataclass(frozen=True)
class Case:
    """A CT to measure and its expert labels; ``source``: the real case it was made from (its
    own id for a case as found; provenance and leave-one-out weights follow the source)."""

    case_id: str
    source: str
    ct_path: Path
    ct: object
    ref: object


def variants_of(case: Case) -> list[Case]:
    """The case as the scans a user brings (evaluation/degrade.py): its axial slices 3 mm
    thick, a 3 mm view of its two middle expert vertebrae (4 mm round them), and its grid
    moved half a voxel."""
    import numpy as np

    from SpineLabelerLib.evaluation.degrade import crop_to_levels, half_voxel_regrid, thick_slabs

    ct, ref = thick_slabs(case.ct, case.ref, VARIANT_SLAB_MM)
    levels = [int(v) for v in np.unique(case.ref.array) if v]
    middle = levels[len(levels) // 2 - 1 : len(levels) // 2 + 1]
    tight_ct, tight_ref = crop_to_levels(case.ct, case.ref, middle, VARIANT_MARGIN_MM)
    tight_ct, tight_ref = thick_slabs(tight_ct, tight_ref, VARIANT_SLAB_MM)
    names = "-".join(_name(v) for v in middle)
    moved_ct, moved_ref = half_voxel_regrid(case.ct, case.ref)
    return [
        replace(case, case_id=f"{case.case_id}@3mm", ct=ct, ref=ref),
        replace(case, case_id=f"{case.case_id}@3mm-{names}", ct=tight_ct, ref=tight_ref),
        replace(case, case_id=f"{case.case_id}@half-voxel", ct=moved_ct, ref=moved_ref),
    ]


def measure_case(case: Case, settings) -> tuple[dict, object, object, object]:
    """Segment and score one case; returns its record, the CT, the prediction and the expert
    labels (both on the CT's grid)."""
    from dataclasses import replace

    from SpineLabelerLib import anatomy, provenance
    from SpineLabelerLib.evaluation import evaluate, outline_scores, predicted_matches
    from SpineLabelerLib.pipeline import segment_spine

    settings = replace(settings, weights_dir=case_weights(Path(settings.weights_dir), case.source))
    ct, ref = case.ct, case.ref
    result = segment_spine(ct, settings)
    pred = result.labels
    confidence = {v.label: v.confidence for v in result.vertebrae}
    outlines = outline_scores(pred, ref)
    rows = []
    for row in evaluate(pred, ref).rows:
        o = outlines[row.label]
        given = o.outline_label
        rows.append(
            {
                "name": row.name,
                "named_right": bool(row.identified),
                "dice": row.dice,
                "outline_dice": o.outline_dice,
                "recall": o.recall,
                "precision": o.precision,
                "to_neighbours": o.to_neighbours,
                "loc_error_mm": row.loc_error_mm,
                "given_name": _name(given),
                "confidence": confidence.get(given, math.nan) if given else math.nan,
                "reference_ml": row.reference_ml,
            }
        )
    found = predicted_matches(pred, ref)

    def found_row(p):
        return {
            "name": anatomy.vertebra(p.label).name,
            "lies_on": _name(p.covers) if p.covers else "unlabelled",
            "share": p.share,
            "confidence": confidence.get(p.label, math.nan),
        }

    wrong = [p for p in found.values() if not p.extra and not p.named_right]
    standing = provenance.standing(case.source, artefacts_in_use(settings))
    record = {
        "case": case.case_id,
        "source": case.source,
        "ct": str(case.ct_path),
        "weights": str(settings.weights_dir),
        "held_out": standing.held_out,
        "standing": standing.describe(),
        "size_ijk": list(ct.size_ijk),
        "spacing_mm": [round(s, 3) for s in ct.spacing_mm],
        "labels_on_input_grid": pred.same_grid(ct),
        "segment_s": round(result.timings_s.get("total", math.nan), 1),
        "found": [v.name for v in result.vertebrae],
        "rows": rows,
        "extra": [found_row(p) for p in found.values() if p.extra],
        "named_wrong": [found_row(p) for p in wrong],
        "wrong_sure": [found_row(p) for p in wrong if confidence.get(p.label, 0.0) >= SURE],
        "count_check": result.count_check,
        "notes": list(result.messages),
    }
    return record, ct, pred, ref


def _name(label: int | None) -> str:
    from SpineLabelerLib import anatomy

    if not label:
        return "-"
    return anatomy.BY_LABEL[label].name if label in anatomy.BY_LABEL else f"label{label}"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def case_lines(rec: dict) -> list[str]:
    mark = "" if rec["held_out"] else "   [not judged]"
    lines = [
        f"{rec['case']}: {rec['standing']}{mark}",
        f"  {rec['size_ijk'][0]} x {rec['size_ijk'][1]} x {rec['size_ijk'][2]}, "
        f"{' x '.join(f'{s:g}' for s in rec['spacing_mm'])} mm; found {len(rec['found'])}: "
        f"{' '.join(rec['found']) or '(none)'}; labels on the input grid: "
        f"{rec['labels_on_input_grid']}; {rec['segment_s']} s",
        f"  {'expert':<7}{'named':>6}{'Dice %':>8}{'outline %':>10}{'recall':>8}{'precision':>10}"
        f"{'neighbour':>10}{'loc mm':>8}  given as (confidence)",
    ]
    for r in rec["rows"]:
        loc = "-" if math.isnan(r["loc_error_mm"]) else f"{r['loc_error_mm']:.1f}"
        conf = "" if math.isnan(r["confidence"]) else f" ({r['confidence']:.2f})"
        lines.append(
            f"  {r['name']:<7}{'right' if r['named_right'] else 'WRONG':>6}{_pct(r['dice']):>8}"
            f"{_pct(r['outline_dice']):>10}{_pct(r['recall']):>8}{_pct(r['precision']):>10}"
            f"{_pct(r['to_neighbours']):>10}{loc:>8}  {r['given_name']}{conf}"
        )
    for key, title in (
        ("extra", "extra (on voxels the expert left unlabelled)"),
        ("named_wrong", "named wrong"),
    ):
        items = [
            f"{f['name']} ({f['confidence']:.2f}, {100 * f['share']:.0f} % on {f['lies_on']})"
            for f in rec[key]
        ]
        lines.append(f"  {title}: {', '.join(items) or 'none'}")
    check = rec["count_check"]
    lines.append(
        "  count check: "
        + (f"the head prefers {check['head_prefers']}" if check else "silent")
        + "; notes: "
        + ("; ".join(rec["notes"]) or "none")
    )
    return lines


def write_picture(path: Path, rec: dict, ct, pred, ref) -> None:
    """The CT's sagittal and coronal views: the prediction (top) above the expert's (below)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    from SpineLabelerLib.io.overview import render_overview

    judged = "held out" if rec["held_out"] else "not judged: see real.txt"
    tiles = [
        (render_overview(ct, pred)[0], f"{rec['case']}: predicted ({judged})"),
        (render_overview(ct, ref)[0], f"{rec['case']}: expert mask"),
    ]
    font = ImageFont.load_default(size=13)
    caption = 20
    width = max(t.width for t, _ in tiles)
    height = sum(t.height + caption for t, _ in tiles) + caption * len(PICTURE_CREDIT)
    canvas = PILImage.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    y = 0
    for tile, title in tiles:
        draw.text((4, y + 3), title, fill=(255, 255, 255), font=font)
        canvas.paste(tile, (0, y + caption))
        y += tile.height + caption
    for n, line in enumerate(PICTURE_CREDIT):
        draw.text((4, y + 3 + n * caption), line, fill=(200, 200, 200), font=font)
    canvas.save(path)


def provenance_lines(settings) -> list[str]:
    from SpineLabelerLib import provenance

    lines = ["what chose the artefacts in use (provenance.json beside them):"]
    in_use = artefacts_in_use(settings)
    for (folder, artefact), name in zip(in_use, provenance.shown_names(in_use)):
        uses = provenance.uses_of(folder, artefact)
        if uses is None:
            lines.append(f"  {name}: provenance unknown (no record of this file in {folder})")
            continue
        told = "; ".join(f"{u.case} ({u.role}): {u.what}" for u in uses) or "no real case"
        lines.append(f"  {name}: {told}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", default=str(DEFAULT_CASES), help="folder of VerSe-layout cases")
    p.add_argument("--weights", help="weights folder (default: shipped), with its provenance.json")
    p.add_argument("--fast", action="store_true", help="segment with --fast settings")
    add_outline_options(p)  # as spinelabeler segment's
    p.add_argument(
        "--variants",
        action="store_true",
        help="each case also at 3 mm slices, and its two middle vertebrae alone at 3 mm",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--save", action="store_true", help="write benchmarks/results/real.* (--tag: real_TAG.*)"
    )
    p.add_argument("--tag", default="", help="suffix of the saved files' names")
    args = p.parse_args(argv)

    import torch

    from SpineLabelerLib.io.verse import find_verse_cases
    from SpineLabelerLib.pipeline import SegmentSettings

    torch.set_num_threads(args.threads)
    settings = SegmentSettings(device="cpu", threads=args.threads)
    if args.weights:
        settings = SegmentSettings(
            weights_dir=Path(args.weights), device="cpu", threads=args.threads
        )
    if args.fast:
        settings = settings.fast()
    settings = apply_outline_options(settings, args)
    cases = find_verse_cases(args.cases)
    tag = f"_{args.tag}" if args.tag else ""

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"benchmarks/real.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    say(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {len(cases)} real cases in "
        f"{args.cases}; weights {settings.weights_dir}; "
        f"{'--fast' if args.fast else 'default settings'}"
        f"{describe_outline_options(args)}; {args.threads} CPU threads"
    )
    say(ATTRIBUTION)
    for line in provenance_lines(settings):
        say(line)
    records = []
    for files in cases:
        found = Case(files.case_id, files.case_id, files.ct, *files.load())
        for case in [found, *(variants_of(found) if args.variants else [])]:
            record, ct, pred, ref = measure_case(case, settings)
            records.append(record)
            say("")
            for line in case_lines(record):
                say(line)
            if args.save:
                RESULTS.mkdir(parents=True, exist_ok=True)
                write_picture(RESULTS / f"real{tag}_{case.case_id}.png", record, ct, pred, ref)
    say("")
    say(
        f"targets, on held-out cases only: every expert vertebra named right, mean Dice >= "
        f"{TARGET_MEAN_DICE:.2f}, none under {TARGET_MIN_DICE:.2f}, none named wrong with "
        f"confidence >= {SURE}"
    )
    held_out = [r for r in records if r["held_out"]]
    for rec in records:
        title = rec["case"] if rec["held_out"] else f"{rec['case']} (not judged: {rec['standing']})"
        say(targets_of([rec]).line(title))
    if held_out:
        say(targets_of(held_out).line(f"pooled over the held-out cases (n = {len(held_out)})"))
    else:
        say("no held-out case: nothing is judged")
    if args.save:
        out = RESULTS / f"real{tag}.txt"
        out.write_text("\n".join(lines) + "\n")
        out.with_suffix(".json").write_text(
            json.dumps({"cases": records}, indent=1, default=float) + "\n"
        )
        print(f"saved {out.relative_to(ROOT)}, {out.with_suffix('.json').name} and PNGs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
