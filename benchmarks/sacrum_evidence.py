"""What the sacrum rule reads off each column's bottom mask, where it runs.

    .venv/bin/python benchmarks/sacrum_evidence.py [--development] [--save] [--tag T]

``column.recognise_sacrum`` tells the sacrum's top from the column's last vertebra by three
readings of the bottom mask: stage 1's share of it over the column's median, the width of
the CT's bone beside its front over the vertebrae's above (``front_bone_widths_mm``), and
where its front lies in depths of the bodies above (``body_line``). Its thresholds were
set on these readings; this prints them, per bottom mask, with what the mask is by the
reference (the sacrum's top where most of it lies on voxels no vertebra was drawn on):

- the L2-L3 short views of the benchmark's and the development set's whole-spine phantoms
  (short_views.py), whose foot cuts the next vertebra: the cut pieces the rule must keep;
- each real case (benchmarks/real.py), its variants (3 mm, its two middle vertebrae alone,
  its grid moved half a voxel) and its L2-L3, L3-L4 and L4-L5 alone at 1 and 3 mm;
- with ``--development``, every development phantom too (about 10 more minutes).

The readings are ``column.sacrum_evidence``'s, taken where the pipeline calls it (the
walk's column, whose bottom mask the reference is read under, is not kept in the pipeline's
result); the pipeline runs on as usual. A column under three vertebrae, or not below a
lumbar one, gives the rule nothing to read. ``--save`` writes benchmarks/results/sacrum_evidence[_<tag>].txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REAL_CROPS = (("L2", "L3"), ("L3", "L4"), ("L4", "L5"))
MARGIN_MM = 4.0
SLAB_MM = 3.0


@dataclass
class Reading:
    """One bottom mask as the sacrum rule saw it."""

    case: str
    kind: str  # "sacrum" or the level the reference draws under most of it
    share: float  # stage 1's share over the column's median
    width: float  # front-bone width over the median of the vertebrae above
    step: float | None  # front behind the body above, in body depths (None: unread)
    recognised: bool


def read_case(case_id: str, ct, ref, settings) -> Reading | None:
    """Run the pipeline on one CT; the sacrum rule's readings of its bottom mask, and what
    the reference draws under that mask (None: the rule had nothing to read)."""
    from SpineLabelerLib import anatomy, column
    from SpineLabelerLib.pipeline import segment_spine
    from SpineLabelerLib.preprocess import labels_onto

    seen: list = []
    read = column.sacrum_evidence

    def watched(walk, votes, ct_norm):
        evidence = read(walk, votes, ct_norm)
        if evidence is not None:
            seen.append(
                (evidence, walk.instances.with_array(walk.instances.array == evidence.bottom))
            )
        return evidence

    column.sacrum_evidence = watched  # the pipeline looks it up on the module when it runs
    try:
        result = segment_spine(ct, settings)
    finally:
        column.sacrum_evidence = read
    if not seen:
        return None
    evidence, bottom = seen[-1]
    under = labels_onto(ref, bottom).array[bottom.array]
    values, counts = np.unique(under, return_counts=True)
    level = anatomy.BY_LABEL.get(int(values[np.argmax(counts)]))
    return Reading(
        case_id,
        level.name if level else "sacrum",
        evidence.share,
        evidence.width,
        evidence.step,
        bool(result.work.get("sacrum_recognised")),
    )


def cases(development: bool):
    """(case id, CT, reference, settings) of every view the readings are taken on."""
    from dataclasses import replace

    from real import Case, case_weights, variants_of
    from short_views import view_levels

    from SpineLabelerLib import phantom
    from SpineLabelerLib.evaluation.degrade import crop_to_levels, thick_slabs
    from SpineLabelerLib.io.verse import find_verse_cases
    from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs
    from SpineLabelerLib.pipeline import SegmentSettings

    settings = SegmentSettings(device="cpu", threads=2)
    for dev in (False, True):
        for spec in benchmark_set_specs(dev):
            if spec.fov != "whole" and not (dev and development):
                continue
            case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm)
            if dev and development:
                yield spec.case_id, case.ct, case.labels, settings
            if spec.fov == "whole":
                ct, ref = crop_to_levels(case.ct, case.labels, view_levels("L2", "L3"), MARGIN_MM)
                yield f"{spec.case_id}@L2-L3", ct, ref, settings
    for files in find_verse_cases(ROOT.parent / "shared" / "realdata"):
        case = Case(files.case_id, files.case_id, files.ct, *files.load())
        own = replace(settings, weights_dir=case_weights(Path(settings.weights_dir), case.source))
        variants = (case, *variants_of(case))
        for c in variants:
            yield c.case_id, c.ct, c.ref, own
        for first, last in REAL_CROPS:
            ct, ref = crop_to_levels(case.ct, case.ref, view_levels(first, last), MARGIN_MM)
            yield f"{case.case_id}@{first}-{last}", ct, ref, own
            thick_id = f"{case.case_id}@3mm-{first}-{last}"
            if thick_id not in {c.case_id for c in variants}:  # real.py's two middle ones
                yield thick_id, *thick_slabs(ct, ref, SLAB_MM), own


def reading_line(r: Reading) -> str:
    verdict = "recognised" if r.recognised else ""
    return (
        f"{r.case:28s} {r.kind:7s} share {r.share:5.2f}  width {r.width:5.2f}  "
        f"step {'-' if r.step is None else format(r.step, '.2f'):>6s}  {verdict}"
    )


def summary_lines(readings: list[Reading]) -> list[str]:
    """Ranges per kind of bottom mask: the sacrum's top, a cut piece of a view, a vertebra."""
    groups: dict[str, list[Reading]] = {}
    for r in readings:
        real = r.case.startswith("sub-")
        if r.kind == "sacrum":
            group = f"sacrum's top, {'real' if real else 'phantom'}"
        elif "-L" in r.case.split("@")[-1] or "@L" in r.case:
            group = f"cut piece of a short view, {'real' if real else 'phantom'}"
        else:
            group = "a vertebra (whole case)"
        groups.setdefault(group, []).append(r)
    lines = ["kind of bottom mask: n; share / width / step ranges; recognised"]
    for group, rs in sorted(groups.items()):
        ranges = []
        for field in ("share", "width", "step"):
            values = [v for r in rs if (v := getattr(r, field)) is not None]
            ranges.append(f"{min(values):.2f}-{max(values):.2f}" if values else "-")
        lines.append(f"  {group}: {len(rs)}; {' / '.join(ranges)}; {sum(r.recognised for r in rs)}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--development", action="store_true", help="every development phantom too")
    p.add_argument("--save", action="store_true", help="write benchmarks/results/sacrum_evidence*")
    p.add_argument("--tag", default="", help="suffix of the saved file's name")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    lines = [
        f"benchmarks/sacrum_evidence.py{' --development' if args.development else ''}",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; shipped weights (real cases: "
        "their leave-one-out weights where present), default settings; 2 CPU threads",
    ]
    print("\n".join(lines), flush=True)
    readings = []
    for case_id, ct, ref, settings in cases(args.development):
        reading = read_case(case_id, ct, ref, settings)
        lines.append(
            reading_line(reading)
            if reading
            else f"{case_id:28s} nothing to read (under three vertebrae, or not below a lumbar one)"
        )
        print(lines[-1], flush=True)
        readings += [reading] if reading else []
    summary = summary_lines(readings)
    lines += ["", *summary]
    print("\n".join(summary))
    if args.save:
        name = f"sacrum_evidence{'_' + args.tag if args.tag else ''}.txt"
        (ROOT / "benchmarks" / "results" / name).write_text("\n".join(lines) + "\n")
        print(f"saved {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
