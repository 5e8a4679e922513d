"""Where the time goes outside the networks: a profile of ``segment_spine`` on the clinical
whole-spine phantom of benchmarks/speed.py, with the networks' own time measured apart.

    .venv/bin/python benchmarks/profile_stages.py [--device cuda] [--repeats 2] [--top 28]

The last (warm) run is profiled; each net call is timed with the device synchronized, so
"net calls ... in X s" is what the networks cost and the rest of each stage is CPU work.
A diagnostic for the speed issue (results/profile_cuda.txt), not a figure of merit.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--top", type=int, default=28)
    args = p.parse_args(argv)

    import torch
    from speed import clinical_phantom

    from SpineLabelerLib import device as devices
    from SpineLabelerLib import pipeline
    from SpineLabelerLib.io import read_ct

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clinical_whole_spine.nii.gz"
        clinical_phantom(7, path)
        t = time.perf_counter()
        ct = read_ct(path)
        print(f"read {time.perf_counter() - t:.2f} s", flush=True)

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    net = [0.0, 0]
    untimed = devices.NetRunner.__call__

    def timed(self, x):
        sync()
        t0 = time.perf_counter()
        out = untimed(self, x)
        sync()
        net[0] += time.perf_counter() - t0
        net[1] += 1
        return out

    devices.NetRunner.__call__ = timed
    settings = pipeline.SegmentSettings(device=args.device, threads=args.threads)
    profile = None
    for rep in range(args.repeats):
        net[:] = [0.0, 0]
        profile = cProfile.Profile()
        profile.enable()
        result = pipeline.segment_spine(ct, settings)
        profile.disable()
        stages = {k: round(v, 2) for k, v in result.timings_s.items()}
        print(f"run {rep}: {stages}; net calls {net[1]} in {net[0]:.2f} s", flush=True)
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
