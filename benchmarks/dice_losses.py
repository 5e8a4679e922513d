"""Where the phantom Dice is lost: boundary, bias or whole parts (development set).

    .venv/bin/python benchmarks/dice_losses.py [--cases dev002,dev006,...] [--save]

Segments development cases (rules and diagnoses look there, never at the benchmark) with
the shipped weights and, for every reference vertebra with at least MIN_ML in view, sorts
the wrong voxels on the CT's own grid: missed (reference only) or extra (prediction only),
against background or another vertebra, and whether they lie within one voxel of the
reference's surface (a boundary placed a voxel off) or further (a part missed or added).
Also the predicted / reference volume per vertebra: a systematic bias would be a threshold's
to fix, a boundary error without bias is the network's. ``--save`` writes
results/dice_losses.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIN_ML = 5.0  # a whole vertebra, not a sliver at the view's edge
DEFAULT_CASES = "dev002,dev006,dev012,dev024,dev028,dev035"  # a spread of FOVs and slices
NEAR_VOXELS = 1.5  # within one voxel (diagonals included) of the reference surface


def vertebra_losses(pred: np.ndarray, ref: np.ndarray, label: int) -> dict[str, float]:
    """Voxel counts of one vertebra's errors, split as the module doc says."""
    from scipy import ndimage

    from SpineLabelerLib.image import bounding_box, grow_box

    box = grow_box(bounding_box((ref == label) | (pred == label)), 3, ref.shape)
    r, p = ref[box] == label, pred[box] == label
    surface = r & ~ndimage.binary_erosion(r)
    near = ndimage.distance_transform_edt(~surface) <= NEAR_VOXELS
    missed, extra = r & ~p, p & ~r
    return {
        "ref": float(r.sum()),
        "pred": float(p.sum()),
        "both": float((r & p).sum()),
        "missed_bg": float((missed & (pred[box] == 0)).sum()),
        "missed_other": float((missed & (pred[box] != 0)).sum()),
        "extra_bg": float((extra & (ref[box] == 0)).sum()),
        "extra_other": float((extra & (ref[box] != 0)).sum()),
        "near": float(((missed | extra) & near).sum()),
    }


def summary(rows: list[dict[str, float]]) -> str:
    wrong = sum(r["missed_bg"] + r["missed_other"] + r["extra_bg"] + r["extra_other"] for r in rows)
    dice = [2 * r["both"] / (r["ref"] + r["pred"]) for r in rows]
    ratio = [r["pred"] / r["ref"] for r in rows]

    def share(key: str) -> str:
        return f"{100 * sum(r[key] for r in rows) / max(wrong, 1):.0f} %"

    return (
        f"{len(rows):3d} vertebrae  Dice {100 * np.mean(dice):.1f} % (median "
        f"{100 * np.median(dice):.1f})  volume pred/ref median {np.median(ratio):.3f} "
        f"[{np.percentile(ratio, 25):.3f}, {np.percentile(ratio, 75):.3f}]  wrong voxels: "
        f"within one voxel of the surface {share('near')}; missed {share('missed_bg')} "
        f"(+{share('missed_other')} to a neighbour), extra {share('extra_bg')} "
        f"(+{share('extra_other')} from a neighbour)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=DEFAULT_CASES, help="comma list of development case ids")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", action="store_true", help="write results/dice_losses.txt")
    args = p.parse_args(argv)

    from SpineLabelerLib import phantom
    from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs
    from SpineLabelerLib.pipeline import SegmentSettings, segment_spine

    specs = {s.case_id: s for s in benchmark_set_specs(development=True)}
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in specs]
    if unknown:
        raise SystemExit(f"not development cases: {', '.join(unknown)}")
    lines = [
        "benchmarks/dice_losses.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        + f"; vertebrae >= {MIN_ML:g} ml in view",
        "",
    ]
    print("\n".join(lines), flush=True)
    everything: list[dict[str, float]] = []
    for case_id in wanted:
        spec = specs[case_id]
        case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm)
        result = segment_spine(case.ct, SegmentSettings(threads=args.threads))
        pred, ref = result.labels.array, case.labels.array
        voxel_ml = float(np.prod(case.ct.spacing_mm)) / 1000.0
        labels = [int(v) for v in np.unique(ref) if v and (ref == v).sum() * voxel_ml >= MIN_ML]
        rows = [vertebra_losses(pred, ref, v) for v in labels]
        spacing = " x ".join(f"{s:.2f}" for s in case.ct.spacing_mm)
        line = f"{case_id} {spec.fov:<9} {spacing} mm: " + summary(rows) if rows else ""
        lines.append(line or f"{case_id}: no vertebra of {MIN_ML:g} ml")
        print(lines[-1], flush=True)
        everything += rows
    lines += ["", "all " + summary(everything)]
    print(lines[-1])
    if args.save:
        out = ROOT / "benchmarks" / "results" / "dice_losses.txt"
        out.write_text("\n".join(lines) + "\n")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
