"""The edge snap's contrast: what each level gains or costs on phantoms and on the real CTs.

    .venv/bin/python benchmarks/edge_snap.py [--every K] [--contrasts 0.5 0.6 0.7 0.8]
                                             [--save]

``bone_edges.snap_to_edge`` adds to each vertebra the voxel layer beside it that is at least
``contrast`` of the way from the soft tissue round it to the bone beside it. The shipped 0.8
was chosen on development phantoms, whose reference masks are drawn to the geometric
surface; the VerSe experts also draw the partial-volume rim round the bone, which a lower
contrast takes. This prints the trade: per case, the outline Dice (each reference vertebra
against the predicted one that covers it most, whatever its name; mean over the case's
vertebrae) without the snap and at each contrast, then each group's mean.

Every K-th spine case of the development set (phantoms: rules are looked at there, never on
the benchmark) and each real case at hand are segmented once with the snap off (default
settings otherwise; a real case with its own leave-one-out weights where the weights folder
has them); the snap is then judged at each contrast over the same outputs
(``bone_edges.edge_candidates``), which gives what the pipeline gives with that contrast.

``--save`` writes benchmarks/results/edge_snap.txt and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results"
REAL_CASES = ROOT.parent / "shared" / "realdata"

from real import case_weights  # noqa: E402  (a real case's own leave-one-out weights)


def mean_outline_dice(labels: np.ndarray, ct, ref) -> float:
    """Mean outline Dice of ``ref``'s vertebrae against ``labels`` (on ``ct``'s grid)."""
    from SpineLabelerLib.evaluation import outline_scores

    scores = outline_scores(ct.with_array(labels), ref)
    return float(np.mean([s.outline_dice for s in scores.values()])) if scores else float("nan")


def dice_by_contrast(labels: np.ndarray, ct, ref, contrasts: list[float]) -> dict[str, float]:
    """Outline Dice without the snap ("none") and with it at each contrast."""
    from SpineLabelerLib import bone_edges

    spacing_kji = tuple(float(s) for s in ct.spacing_mm[::-1])
    candidates = bone_edges.edge_candidates(labels, np.asarray(ct.array), spacing_kji)
    out = {"none": mean_outline_dice(labels, ct, ref)}
    for contrast in contrasts:
        snapped = bone_edges.snapped_at(labels, candidates, contrast)
        out[f"{contrast:.2f}"] = mean_outline_dice(snapped, ct, ref)
    return out


def cases(every: int):
    """(group, case id, CT, reference labels) of the chosen development phantoms, then the
    real cases; generated or read one at a time."""
    from SpineLabelerLib import phantom
    from SpineLabelerLib.io.verse import find_verse_cases
    from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs

    spines = [s for s in benchmark_set_specs(True) if s.fov != "leg"]
    for spec in spines[::every]:
        case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm)
        yield "development phantoms", spec.case_id, case.ct, case.labels
    for files in find_verse_cases(REAL_CASES):
        ct, ref = files.load()
        yield "real CTs", files.case_id, ct, ref


def table_lines(records: list[dict], settings: list[str]) -> list[str]:
    """A line per case, then the mean of each group, Dice in %."""
    head = f"{'case':22s} {'spacing mm':16s} " + " ".join(f"{s:>6s}" for s in settings)
    lines = [head]
    for group in dict.fromkeys(r["group"] for r in records):
        rows = [r for r in records if r["group"] == group]
        for r in rows:
            spacing = "x".join(f"{s:g}" for s in r["spacing_mm"])
            values = " ".join(f"{100 * r['dice'][s]:6.1f}" for s in settings)
            lines.append(f"{r['case']:22s} {spacing:16s} {values}")
        means = " ".join(f"{100 * np.mean([r['dice'][s] for r in rows]):6.2f}" for s in settings)
        lines.append(f"{'mean, ' + group:39s} {means}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--every", type=int, default=5, help="every K-th development spine case")
    p.add_argument("--contrasts", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", action="store_true", help="write benchmarks/results/edge_snap.*")
    args = p.parse_args(argv)

    import torch

    from SpineLabelerLib.pipeline import SegmentSettings, segment_spine

    torch.set_num_threads(args.threads)
    base = replace(SegmentSettings(device="cpu", threads=args.threads), edge_snap=None)
    settings = ["none", *(f"{c:.2f}" for c in args.contrasts)]
    lines = [
        "benchmarks/edge_snap.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; outline Dice % without the "
        "edge snap and at each contrast (shipped: 0.80); shipped weights, default settings "
        f"otherwise; {args.threads} CPU threads",
    ]
    print("\n".join(lines), flush=True)
    records = []
    for group, case_id, ct, ref in cases(args.every):
        run = replace(base, weights_dir=case_weights(Path(base.weights_dir), case_id))
        result = segment_spine(ct, run)
        labels = np.asarray(result.labels.array).astype(np.int32)
        records.append(
            {
                "group": group,
                "case": case_id,
                "spacing_mm": [round(float(s), 2) for s in ct.spacing_mm],
                "dice": dice_by_contrast(labels, ct, ref, args.contrasts),
            }
        )
        print(
            f"{case_id}: "
            + ", ".join(f"{k} {100 * v:.1f}" for k, v in records[-1]["dice"].items()),
            flush=True,
        )
    lines += table_lines(records, settings)
    print("\n".join(lines[2:]))
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "edge_snap.txt").write_text("\n".join(lines) + "\n")
        (RESULTS / "edge_snap.json").write_text(json.dumps(records, indent=1) + "\n")
        print("saved edge_snap.txt and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
