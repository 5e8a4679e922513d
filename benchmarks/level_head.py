"""What the level head buys: as a vote in identification, and as a check of the count.

Segments every spine case of the phantom *development* set (the benchmark's plan on other
seeds: rules are looked at there) with the shipped nets, keeps what identification saw
(votes, ribs, ends, the level head's ratios), and replays identification under each way
of letting the head vote: summed per placement at a weight, averaged over the column, or
summed but capped per placement. A vertebra counts as named right when its name is that of
the reference vertebra within 20 mm of its centroid (the evaluation's ID_MAX_ERROR_MM) (the naming half of the paper's
identification rate; vertebrae the walk missed are not counted here). Then the count check
(identify.level_head_shift): on which cases the head places the column elsewhere.

    python benchmarks/level_head.py [--limit N] [--save]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULES = (
    [("sum", w, None) for w in (0.25, 0.5, 1.0)]
    + [("mean", w, None) for w in (1.0, 2.0, 3.0, 4.0)]
    + [("cap", 1.0, c) for c in (0.5, 1.0, 1.5, 2.0, 3.0)]
)


def collect(specs, settings, say) -> list[dict]:
    """Per spine case: the evidence and ends identification last saw, and the true labels."""
    from SpineLabelerLib import identify, phantom, pipeline
    from SpineLabelerLib.evaluation.localization import ID_MAX_ERROR_MM

    seen: list = []
    original = identify.identify

    def recording(evidence, ends, *rest):
        seen.append((list(evidence), ends))
        return original(evidence, ends, *rest)

    pipeline.identify.identify = recording
    cases = []
    try:
        for spec in specs:
            case = phantom.generate_case(spec.seed, spec.fov, spec.variant, spec.spacing_mm)
            seen.clear()
            pipeline.segment_spine(case.ct, settings)
            if not seen:
                say(f"{spec.case_id}: no spine found")
                continue
            evidence, ends = seen[-1]
            reference = {int(k): np.asarray(v) for k, v in case.centroids_lps.items()}
            truth = []
            for ev in evidence:
                dist = {
                    k: float(np.linalg.norm(np.asarray(ev.centroid_lps) - c))
                    for k, c in reference.items()
                }
                nearest = min(dist, key=dist.get)
                truth.append(nearest if dist[nearest] < ID_MAX_ERROR_MM else None)
            cases.append(
                dict(
                    case=spec.case_id,
                    variant=spec.variant,
                    fov=spec.fov,
                    evidence=evidence,
                    ends=ends,
                    truth=truth,
                )
            )
    finally:
        pipeline.identify.identify = original
    return cases


def placement(case: dict, mode: str, weight: float, cap: float | None) -> tuple[int, int]:
    """(chosen start level, head's preferred start) under one way of letting the head vote."""
    from SpineLabelerLib import identify

    evidence, ends = case["evidence"], case["ends"]
    plain = identify.identify([replace(e, level_ratios=None) for e in evidence], ends)
    starts = sorted(plain.scores)
    scores = np.array([plain.scores[s] for s in starts])
    head = np.array([identify.level_head_sum(evidence, s) for s in starts])
    read = max(1, sum(e.level_ratios is not None for e in evidence))
    if mode == "sum":
        scores = scores + weight * head
    elif mode == "mean":
        scores = scores + weight * head / read
    elif mode == "cap":
        scores = scores + weight * np.clip(head - head.max(), -cap, 0.0)
    return starts[int(np.argmax(scores))], starts[int(np.argmax(head))]


def named_right(case: dict, start: int) -> bool:
    from SpineLabelerLib import identify

    return all(
        identify.LEVELS[start + i].label == t for i, t in enumerate(case["truth"]) if t is not None
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="at most this many development cases")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", action="store_true", help="write benchmarks/results/level_head.txt")
    args = p.parse_args(argv)

    import torch

    from SpineLabelerLib import identify
    from SpineLabelerLib.phantom.benchmark_set import benchmark_set_specs
    from SpineLabelerLib.pipeline import SegmentSettings

    torch.set_num_threads(args.threads)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"benchmarks/level_head.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    say(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + f"; {args.threads} CPU threads")
    specs = [s for s in benchmark_set_specs(development=True) if s.fov != "leg"][: args.limit]
    cases = collect(specs, SegmentSettings(device="cpu", threads=args.threads), say)
    plain = {c["case"]: placement(c, "none", 0.0, None)[0] for c in cases}
    wrong = [c["case"] for c in cases if not named_right(c, plain[c["case"]])]
    say(f"\nPHANTOM development set, {len(cases)} spine cases (synthetic CT, not patients)")
    say(
        f"names without the head: every vertebra named right on {len(cases) - len(wrong)}; misnamed: {', '.join(wrong) or 'none'}"
    )
    say("\nthe head as a vote (rule, weight, cap: columns fixed / broken against no vote)")
    for mode, weight, cap in RULES:
        fixed, broken = [], []
        for c in cases:
            before = named_right(c, plain[c["case"]])
            after = named_right(c, placement(c, mode, weight, cap)[0])
            if after and not before:
                fixed.append(c["case"])
            if before and not after:
                broken.append(c["case"])
        say(
            f"  {mode:<5}{weight:<5}{cap if cap is not None else '':<5} fixed {len(fixed)} {fixed}, broken {len(broken)} {broken}"
        )
    say("\nthe head as a check of the count (identify.level_head_shift on the chosen names)")
    for c in cases:
        shift, nats = identify.level_head_shift(c["evidence"], plain[c["case"]])
        if shift:
            right = "named right" if named_right(c, plain[c["case"]]) else "MISNAMED"
            say(
                f"  {c['case']} {c['variant']:<14}{c['fov']:<12} head {shift:+d} level(s), {nats:.2f} nats; {right}"
            )
    agree = sum(identify.level_head_shift(c["evidence"], plain[c["case"]])[0] == 0 for c in cases)
    say(f"  agrees with the names on {agree} of {len(cases)} columns")
    if args.save:
        out = ROOT / "benchmarks" / "results" / "level_head.txt"
        out.write_text("\n".join(lines) + "\n")
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
