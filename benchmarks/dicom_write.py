"""What ``segment --formats dcm`` adds: writing the DICOM SEG and the centroid SR of a
clinical-size series.

    .venv/bin/python benchmarks/dicom_write.py [--repeats 3] [--slices 800] [--save]

The series is a whole-spine phantom on speed.py's clinical grid (512 x 512 at 0.8 mm, 1 mm
slices), written as one DICOM CT series; its ground-truth labels stand in for a segmentation
(the writers' cost depends on the grid and the number of vertebrae, not on who drew them).
Each repeat runs in a fresh child process that reads the series' headers (as ``segment``
does), then writes the SEG and the SR through the same calls ``segment`` makes; it reports
the time of each step and its peak resident memory before and after the writes. Printed:
medians and spreads, the added peak memory, file sizes and SEG frames. ``--save`` writes
benchmarks/results/dicom_write.txt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "Testing"))  # the DICOM series writer of the tests

from benchmarks.peak_memory import peak_rss_mb  # noqa: E402
from benchmarks.speed import CLINICAL_SPACING_MM, clinical_case  # noqa: E402


def clinical_series(seed: int, slices: int, folder: Path) -> dict:
    """Write the phantom as a DICOM series under ``folder / "series"`` and its labels on the
    same grid as ``labels.nii.gz``; returns the grid and the vertebrae in view."""
    import SimpleITK as sitk
    from _dicom_series import write_ct_series

    from SpineLabelerLib.image import to_sitk

    placed, labels = clinical_case(seed, slices)
    write_ct_series(placed, folder / "series")
    sitk.WriteImage(to_sitk(labels), str(folder / "labels.nii.gz"), True)
    present = sorted(int(v) for v in np.unique(labels.array) if v)
    return {"size_ijk": [int(n) for n in placed.size_ijk], "vertebrae": len(present)}


def child(folder: Path, out: Path) -> dict:
    """One repeat, in its own process: headers, SEG, SR, as ``segment`` writes them."""
    import pydicom

    from SpineLabelerLib.io.dicom_seg import read_source_headers, slices_along_k, write_dicom_seg
    from SpineLabelerLib.io.dicom_sr import write_centroid_sr
    from SpineLabelerLib.io.reader import read_labelmap
    from SpineLabelerLib.relabel import vertebra_centroids_lps

    labels = read_labelmap(folder / "labels.nii.gz")
    centroids = vertebra_centroids_lps(labels)
    files = sorted((folder / "series").iterdir())
    before = peak_rss_mb()
    t0 = time.perf_counter()
    headers = read_source_headers(files)
    slices_along_k(labels, headers)
    t1 = time.perf_counter()
    write_dicom_seg(out / "segmentation.dcm", labels, headers)
    t2 = time.perf_counter()
    write_centroid_sr(out / "centroids.sr.dcm", centroids, headers)
    t3 = time.perf_counter()
    seg = pydicom.dcmread(out / "segmentation.dcm", stop_before_pixels=True)
    return {
        "headers_s": t1 - t0,
        "seg_s": t2 - t1,
        "sr_s": t3 - t2,
        "rss_before_mb": before,
        "rss_peak_mb": peak_rss_mb(),
        "seg_mb": (out / "segmentation.dcm").stat().st_size / 1e6,
        "sr_kb": (out / "centroids.sr.dcm").stat().st_size / 1e3,
        "seg_frames": int(seg.NumberOfFrames),
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--slices", type=int, default=800, help="slices of the series (default 800)")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--save", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        folder, out = (Path(s) for s in args.child.split(","))
        print(json.dumps(child(folder, out)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grid = clinical_series(args.seed, args.slices, tmp)
        runs = []
        for n in range(args.repeats):
            out = tmp / f"out{n}"
            out.mkdir()
            done = subprocess.run(
                [sys.executable, __file__, "--child", f"{tmp},{out}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    total = [r["headers_s"] + r["seg_s"] + r["sr_s"] for r in runs]
    added = [r["rss_peak_mb"] - r["rss_before_mb"] for r in runs]
    lines = [
        f"DICOM outputs of a {grid['size_ijk'][0]} x {grid['size_ijk'][1]} x "
        f"{grid['size_ijk'][2]} CT series ({CLINICAL_SPACING_MM} mm, {grid['vertebrae']} "
        f"vertebrae; phantom seed {args.seed}), {args.repeats} repeats, each a fresh process:",
        f"  read and check the series' headers: {spread([r['headers_s'] for r in runs])}",
        f"  DICOM SEG:                          {spread([r['seg_s'] for r in runs])}"
        f"  ({runs[0]['seg_frames']} frames, {runs[0]['seg_mb']:.1f} MB)",
        f"  centroid SR:                        {spread([r['sr_s'] for r in runs])}"
        f"  ({runs[0]['sr_kb']:.0f} kB)",
        f"  together (what --formats dcm adds): {spread(total)}",
        f"  peak memory added by the writes: median {statistics.median(added):.0f} MB "
        f"(peak {statistics.median([r['rss_peak_mb'] for r in runs]):.0f} MB of the process)",
    ]
    print("\n".join(lines))
    if args.save:
        path = ROOT / "benchmarks" / "results" / "dicom_write.txt"
        path.write_text("\n".join(lines) + "\n")
        print(f"saved {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
