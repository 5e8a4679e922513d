"""How fast the phantom generator draws a case, per field of view, on one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/phantom_speed.py [--spacing 1] [--repeats 3]
                                                                   [--crop] [--save]

For each field of view: median wall time of ``generate_case(seed, fov,
spacing_mm=(s, s, s))`` over ``--repeats`` seeds (physics on), the grid size and the
time per million voxels. ``--crop`` adds the stage-2 patch path (``crop_around_label``,
128 x 128 x 96 mm). Run with one thread: numpy/scipy here are single-threaded anyway.
``--save`` writes benchmarks/results/phantom_speed_<spacing>mm.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from SpineLabelerLib.phantom import FOVS, generate_case  # noqa: E402


def time_case(**kwargs) -> tuple[float, tuple[int, int, int]]:
    t0 = time.perf_counter()
    case = generate_case(**kwargs)
    return time.perf_counter() - t0, case.ct.size_ijk


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--spacing", type=float, default=1.0, help="isotropic spacing mm (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="seeds per field of view (default 3)")
    ap.add_argument("--crop", action="store_true", help="also time crop_around_label patches")
    ap.add_argument(
        "--save", action="store_true", help="write benchmarks/results/phantom_speed_<s>mm.txt"
    )
    args = ap.parse_args()
    sp = (args.spacing,) * 3
    lines = [
        f"phantom generation, spacing {args.spacing:g} mm, physics on, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.repeats} seeds per row, "
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machines inflate times)",
        f"{'field of view':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'voxels (M)':>12}{'s / Mvox':>10}",
    ]
    print(lines[0], flush=True)
    print(lines[1], flush=True)
    rows = [(fov, dict(fov=fov, spacing_mm=sp)) for fov in FOVS]
    if args.crop:
        rows.append(("crop L1 128mm", dict(fov="whole", spacing_mm=sp, crop_around_label=20)))
    for name, kw in rows:
        times, voxels = [], []
        for seed in range(args.repeats):
            t, size = time_case(seed=1000 + seed, **kw)
            times.append(t)
            voxels.append(size[0] * size[1] * size[2] / 1e6)
        med, mvox = statistics.median(times), statistics.median(voxels)
        line = f"{name:<16}{med:>10.2f}{min(times):>8.2f}{max(times):>8.2f}{mvox:>12.1f}{med / mvox:>10.3f}"
        lines.append(line)
        print(line, flush=True)
    if args.save:
        out = ROOT / "benchmarks" / "results" / f"phantom_speed_{args.spacing:g}mm.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
