"""How stage 1 votes inside each true vertebra: the measurement behind identify.py's soft levels.

    .venv/bin/python benchmarks/stage1_votes.py [--rounds 4] [--save]

identify.py explains a vertebra's stage-1 region votes with ``pi(level, region)``; the
boundary levels (C7, T12, L1) keep a small share of the neighbouring region so that one
vertebra stage 1 calls wrongly cannot shift the whole column. How small is a measurement,
not a guess: this script draws calibration phantoms (seeds 70000 + 10 * round + variant:
outside the training, validation and benchmark seeds), runs the shipped stage 1 on each
and counts the stage-1 classes inside every *true* vertebra mask. Printed per level: how
many whole vertebrae, the median and lowest share of their voxels stage 1 gave their own
region, and the mean share it gave another. ``--save`` writes results/stage1_votes.txt.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("normal", "11-ribs", "13-ribs", "L6", "sacralized-L5", "cervical-rib")
FOVS = ("abdomen", "lumbar", "chest", "whole", "head-neck")
SEED_BASE = 70_000
LEVELS = ("C6", "C7", "T1", "T2", "T11", "T12", "L1", "L2", "L5", "L6")


def level_votes(rounds: int, say) -> list[dict]:
    """One row per whole (uncut) vertebra of LEVELS: its case and its vote fractions."""
    import torch

    from SpineLabelerLib import anatomy, phantom, pipeline, preprocess
    from SpineLabelerLib.evaluation.centroids import label_values

    torch.set_num_threads(2)
    settings = pipeline.SegmentSettings(device="cpu", threads=2)
    run1, _, _, _ = pipeline.load_runners(settings)
    rows = []
    for r in range(rounds):
        for v, variant in enumerate(VARIANTS):
            seed, fov = SEED_BASE + 10 * r + v, FOVS[(r + v) % len(FOVS)]
            t = time.perf_counter()
            case = phantom.generate_case(seed, fov, variant)
            s1 = pipeline.run_stage1(case.ct, run1, settings)
            classes = preprocess.labels_onto(s1.classes, case.labels).array
            labels = case.labels.array
            present = label_values(labels)
            cut = set(case.meta.get("partial_labels", []))
            for label, counts in zip(present, pipeline.stage1_votes(labels, classes, present)):
                name = anatomy.vertebra(label).name
                if name not in LEVELS or label in cut:
                    continue
                votes = np.asarray(counts) / max(sum(counts), 1.0)
                own = anatomy.REGIONS.index(anatomy.vertebra(label).region)
                rows.append(dict(seed=seed, variant=variant, name=name, own=float(votes[own])))
            say(f"seed {seed} {fov:9s} {variant:13s} {time.perf_counter() - t:5.1f} s")
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["level   n  own region: median   lowest   other region: mean   cases under 0.5"]
    for name in LEVELS:
        own = [r["own"] for r in rows if r["name"] == name]
        if not own:
            continue
        wrong = sum(x < 0.5 for x in own)
        lines.append(
            f"{name:5s} {len(own):3d}  {statistics.median(own):19.3f} {min(own):8.3f}"
            f" {1.0 - statistics.mean(own):20.4f} {wrong:17d}"
        )
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="cases per variant")
    p.add_argument("--save", action="store_true")
    args = p.parse_args(argv)
    rows = level_votes(args.rounds, lambda s: print(s, flush=True))
    lines = [
        f"benchmarks/stage1_votes.py --rounds {args.rounds}"
        f"  ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; shipped stage-1 weights;"
        f" {len({r['seed'] for r in rows})} calibration phantoms, seeds from {SEED_BASE})",
        *table(rows),
    ]
    print("\n".join(lines))
    if args.save:
        (ROOT / "benchmarks" / "results" / "stage1_votes.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
