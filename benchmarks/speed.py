"""Speed of ``segment_spine`` on a clinical-size whole-spine CT, and the floor it could reach.

    .venv/bin/python benchmarks/speed.py [--repeats 3] [--threads 2] [--device cpu] [--fast] [--real-shapes]
                                         [--ct FILE] [--save]

The CT is a whole-spine phantom placed on a clinical grid (512 x 512 in-plane at 0.8 mm,
at least 800 slices of 1 mm; ``--ct`` times any other CT). Each repeat runs in a fresh
child process (reading the CT, loading the networks, segmenting), so its peak resident
memory (VmHWM, benchmarks/peak_memory.py) is that of one segmentation. Printed: median and spread per stage,
peak memory, and the floor: the networks' arithmetic (multiply-adds counted on the actual
input sizes and number of stage-2 calls) divided by the convolution throughput measured on
this machine with the same threads. ``--save`` writes benchmarks/results/speed[_fast][_real_shapes].txt.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.peak_memory import peak_rss_mb  # noqa: E402

CLINICAL_SPACING_MM = (0.8, 0.8, 1.0)
CLINICAL_IN_PLANE = 512
MIN_SLICES = 800


def clinical_case(seed: int, slices: int | None = None):
    """The whole-spine phantom placed on a 512 x 512 clinical grid (0.8, 0.8, 1 mm): (CT as
    int16 HU, labels). ``slices``: the grid's slice count (default: at least 800, more where
    the phantom is longer)."""
    from SpineLabelerLib import phantom
    from SpineLabelerLib.image import Image, index_to_lps, resample_onto

    case = phantom.generate_case(
        seed, fov="whole", variant="normal", spacing_mm=CLINICAL_SPACING_MM
    )
    ct = case.ct
    n_k = slices if slices is not None else max(MIN_SLICES, ct.size_ijk[2])
    size = np.array([CLINICAL_IN_PLANE, CLINICAL_IN_PLANE, n_k])
    spacing = np.array(CLINICAL_SPACING_MM)
    centre = index_to_lps(ct, [(np.array(ct.size_ijk) - 1) / 2.0])[0]
    origin = centre - ct.direction @ (spacing * (size - 1) / 2.0)
    grid = Image(np.zeros(size[::-1], np.uint8), tuple(spacing), tuple(origin), ct.direction)
    placed = resample_onto(ct, grid, fill=-1024.0)
    placed = placed.with_array(np.round(placed.array).astype(np.int16))
    return placed, resample_onto(case.labels, grid, nearest=True)


def clinical_phantom(seed: int, path: Path) -> tuple[int, int, int]:
    """Write the clinical-grid whole-spine phantom (:func:`clinical_case`) as int16 NIfTI."""
    import SimpleITK as sitk

    from SpineLabelerLib.image import to_sitk

    placed, _ = clinical_case(seed)
    sitk.WriteImage(to_sitk(placed), str(path), True)
    return tuple(int(n) for n in placed.size_ijk)


def child(
    ct_path: str, device: str, threads: int, fast: bool, weights: str | None, real_shapes: bool
) -> None:
    """One timed segmentation; prints one JSON line."""
    import torch

    from SpineLabelerLib.io import read_ct
    from SpineLabelerLib.pipeline import SegmentSettings, segment_spine

    torch.set_num_threads(threads)
    t = time.perf_counter()
    ct = read_ct(ct_path)
    read_s = time.perf_counter() - t
    settings = SegmentSettings(device=device, threads=threads)
    if weights:
        settings = SegmentSettings(weights_dir=Path(weights), device=device, threads=threads)
    settings = settings.fast() if fast else settings
    if real_shapes:
        settings = replace(settings, outline_mode="replace")
    result = segment_spine(ct, settings)
    peak_gb = peak_rss_mb() / 1024
    cuda_peak = torch.cuda.max_memory_allocated() / 1024**3 if torch.cuda.is_available() else 0.0
    out = {
        "read_s": read_s,
        "timings_s": result.timings_s,
        "peak_rss_gb": peak_gb,
        "cuda_peak_gb": cuda_peak,
        "device": result.device,
        "work": result.work,
        "vertebrae": [v.name for v in result.vertebrae],
    }
    print("RESULT " + json.dumps(out))


# ----------------------------------------------------------------------------- the floor


def count_macs(model, input_kji: tuple[int, int, int], in_channels: int) -> int:
    """Multiply-adds of one forward pass of a conv net on a ``(1, C, K, J, I)`` input."""
    import torch

    macs = [0]

    def conv_hook(module, inputs, output):
        k = int(np.prod(module.kernel_size))
        if isinstance(module, torch.nn.ConvTranspose3d):
            voxels = int(np.prod(inputs[0].shape[2:]))
        else:
            voxels = int(np.prod(output.shape[2:]))
        macs[0] += voxels * k * module.in_channels * module.out_channels // module.groups

    hooks = [
        m.register_forward_hook(conv_hook)
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))
    ]
    mult = model.config.multiple
    padded = [n + (-n) % mult for n in input_kji]
    with torch.inference_mode():
        model(torch.zeros(1, in_channels, *padded))
    for h in hooks:
        h.remove()
    return macs[0]


def conv_throughput_gflops(threads: int, device: str = "cpu") -> float:
    """Measured dense 3x3x3 convolution throughput (GFLOP/s, 1 MAC = 2 FLOP), best of 5."""
    import torch

    torch.set_num_threads(threads)
    conv = torch.nn.Conv3d(32, 32, 3, padding=1, bias=False).to(device).eval()
    x = torch.randn(1, 32, 48, 64, 64, device=device)
    macs = 48 * 64 * 64 * 27 * 32 * 32
    best = float("inf")
    with torch.inference_mode():
        conv(x)
        for _ in range(5):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            conv(x)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    return 2 * macs / best / 1e9


def floor_seconds(work: dict, threads: int, device: str, weights: Path) -> dict:
    """Network arithmetic of one run and the time it takes at the measured conv throughput."""
    from SpineLabelerLib import nets, preprocess

    m1 = nets.load_model(weights / "stage1.pt", "stage1")
    m2 = nets.load_model(weights / "stage2.pt", "stage2")
    macs1 = count_macs(m1, tuple(work["stage1_grid_kji"]), 1)
    # the level head's and the outline pass's patches are stage-2 predictions too (one per vertebra)
    calls = sum(
        int(work.get(k, 0)) for k in ("stage2_predictions", "level_head_patches", "outline_patches")
    )
    macs2 = calls * count_macs(m2, preprocess.STAGE2_PATCH_KJI, 2)
    gflops = conv_throughput_gflops(threads, "cuda" if device.startswith("cuda") else "cpu")
    return {
        "stage1_gmac": macs1 / 1e9,
        "stage2_calls": calls,
        "stage2_gmac": macs2 / 1e9,
        "conv_gflops": gflops,
        "floor_stage1_s": 2 * macs1 / gflops / 1e9,
        "floor_stage2_s": 2 * macs2 / gflops / 1e9,
    }


# ----------------------------------------------------------------------------- main


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s  (min {min(values):.2f}, max {max(values):.2f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--fast", action="store_true")
    p.add_argument("--ct", help="time this CT instead of the clinical-size phantom")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--weights", help="folder with stage1.pt and stage2.pt (default: the shipped ones)"
    )
    p.add_argument("--real-shapes", action="store_true", help="segment with --real-shapes")
    p.add_argument("--save", action="store_true", help="write benchmarks/results/speed*.txt")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.device, args.threads, args.fast, args.weights, args.real_shapes)
        return 0

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        if args.ct:
            ct_path = Path(args.ct)
            say(f"CT: {ct_path}")
        else:
            ct_path = Path(tmp) / "clinical_whole_spine.nii.gz"
            t = time.perf_counter()
            size = clinical_phantom(args.seed, ct_path)
            say(
                f"CT: whole-spine phantom (seed {args.seed}) on a clinical grid {size[0]} x {size[1]} x "
                f"{size[2]} voxels, {CLINICAL_SPACING_MM} mm (made in {time.perf_counter() - t:.0f} s)"
            )
        runs = []
        for r in range(args.repeats):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(ct_path),
                "--device",
                args.device,
                "--threads",
                str(args.threads),
            ] + (["--fast"] if args.fast else [])
            cmd += ["--weights", args.weights] if args.weights else []
            cmd += ["--real-shapes"] if args.real_shapes else []
            env = dict(
                os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads)
            )
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not found:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            runs.append(json.loads(found[-1][len("RESULT ") :]))
            print(f"  run {r + 1}: {runs[-1]['timings_s']['total']:.2f} s", flush=True)

    first = runs[0]
    from SpineLabelerLib import nets
    from SpineLabelerLib.pipeline import DEFAULT_WEIGHTS_DIR

    weights_dir = Path(args.weights) if args.weights else DEFAULT_WEIGHTS_DIR
    for kind in ("stage1", "stage2"):
        meta = nets.read_weight_file(weights_dir / f"{kind}.pt")["meta"]
        say(f"{kind} weights: {weights_dir / (kind + '.pt')}, step {meta.get('steps')}")
    say(
        f"device: {first['device']}; threads: {args.threads}; settings: {'--fast' if args.fast else 'default'}; "
        f"repeats: {len(runs)} (fresh process each)"
    )
    say(f"vertebrae found: {len(first['vertebrae'])} ({' '.join(first['vertebrae'])})")
    say(f"work: {json.dumps(first['work'])}")
    say("")
    say("stage                 median (min, max)")
    say(f"read CT             {_stats([r['read_s'] for r in runs])}")
    stages = ("load_models", "stage1", "stage2", "identify", "level_head", "outline_again")
    for stage in (*stages, "output", "total"):
        if stage == "outline_again" and stage not in first["timings_s"]:
            continue
        values = [r["timings_s"].get(stage, 0.0) for r in runs]
        name = "  of it, level head" if stage == "level_head" else stage
        say(f"{name:<19} {_stats(values)}")
    say(f"peak memory (RSS)   {max(r['peak_rss_gb'] for r in runs):.2f} GB (max over runs)")
    if first["cuda_peak_gb"]:
        say(f"peak GPU memory     {max(r['cuda_peak_gb'] for r in runs):.2f} GB")
    if "stage1_grid_kji" in first["work"]:
        from SpineLabelerLib.pipeline import DEFAULT_WEIGHTS_DIR

        weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS_DIR
        f = floor_seconds(first["work"], args.threads, first["device"], weights)
        say("")
        say(
            f"floor: stage 1 {f['stage1_gmac']:.1f} GMAC, stage 2 {f['stage2_calls']} calls (level head "
            f"included) = "
            f"{f['stage2_gmac']:.1f} GMAC; measured 3x3x3 conv throughput {f['conv_gflops']:.1f} GFLOP/s"
        )
        say(
            f"floor: stage 1 {f['floor_stage1_s']:.2f} s + stage 2 {f['floor_stage2_s']:.2f} s = "
            f"{f['floor_stage1_s'] + f['floor_stage2_s']:.2f} s of pure convolution arithmetic"
        )
    if args.save:
        name = "speed_fast.txt" if args.fast else "speed.txt"
        name = name.replace(".txt", "_real_shapes.txt") if args.real_shapes else name
        if args.device != "cpu":
            name = name.replace(".txt", f"_{args.device}.txt")
        out = ROOT / "benchmarks" / "results" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        header = f"# {' '.join(['benchmarks/speed.py', *(argv or sys.argv[1:])])}  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n"
        out.write_text(header + "\n".join(lines) + "\n")
        print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
