"""Where the pipeline's masks and the expert's part on the one real VerSe case (issue 7).

    .venv/bin/python benchmarks/real_case_misses.py [--weights DIR] [--save]

Segments verse008 (T12-L5) with the shipped weights (or ``--weights``), then sorts the
expert's and the pipeline's T12-L5 voxels into covered (both), missed (expert only) and
extra (pipeline only). Printed: their counts and HU (median, quartiles), how far each
missed voxel lies from the pipeline's mask (mm), and recall / precision per vertebra.
``--save`` writes results/real_case_misses.txt and a PNG (sagittal and axial through L3:
green covered, red missed, blue extra). A measurement of the phantom gap only: nothing is
chosen from it (AGENTS: never tune on the real case).

Real CT: VerSe (Loeffler et al., Radiology: AI 2020; Sekuboyina et al., MedIA 2021),
CC BY-SA 4.0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from realism import ATTRIBUTION, LEVELS, REAL_DIR, WINDOW_HU, _views, read_real  # noqa: E402

OVERLAY = {1: (40, 200, 40), 2: (230, 30, 30), 3: (40, 110, 255)}  # covered, missed, extra


def classify(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """uint8 map: 1 covered, 2 missed (expert only), 3 extra (pipeline only), over T12-L5."""
    a, b = np.isin(pred, LEVELS), np.isin(ref, LEVELS)
    out = np.zeros(ref.shape, np.uint8)
    out[a & b], out[b & ~a], out[a & ~b] = 1, 2, 3
    return out


def report_lines(ct, pred: np.ndarray, ref: np.ndarray, kinds: np.ndarray) -> list[str]:
    from scipy import ndimage

    from SpineLabelerLib import anatomy

    hu = np.asarray(ct.array, float)
    lines = ["voxels      n       HU median  quartiles"]
    for value, name in ((1, "covered"), (2, "missed"), (3, "extra")):
        v = hu[kinds == value]
        q = np.percentile(v, [25, 50, 75]) if v.size else [np.nan] * 3
        lines.append(f"{name:8s} {v.size:8d} {q[1]:11.0f}  {q[0]:.0f}..{q[2]:.0f}")
    ours = np.isin(pred, LEVELS)
    distance = ndimage.distance_transform_edt(~ours, sampling=ct.spacing_mm[::-1])[kinds == 2]
    if distance.size:
        bands = [(0, 1.01), (1.01, 3.01), (3.01, np.inf)]
        shares = [np.mean((distance >= lo) & (distance < hi)) for lo, hi in bands]
        lines.append(
            "missed voxels from the pipeline's mask: median {:.1f} mm; within 1 mm {:.0%}, "
            "1-3 mm {:.0%}, beyond 3 mm {:.0%}".format(np.median(distance), *shares)
        )
    lines.append("vertebra  recall  precision")
    for label in LEVELS:
        a, b = pred == label, ref == label
        tp = np.count_nonzero(a & b)
        lines.append(
            f"{anatomy.vertebra(label).name:8s} {tp / max(b.sum(), 1):7.3f} {tp / max(a.sum(), 1):10.3f}"
        )
    return lines


def write_picture(path: Path, ct, ref, kinds) -> None:
    from PIL import Image as PILImage
    from PIL import ImageDraw

    sag_ct, sag_kind, ax_ct, ax_kind = _views(ct, ref.with_array(kinds))
    tiles = []
    for hu, kind in ((sag_ct, sag_kind), (ax_ct, ax_kind)):
        lo, hi = WINDOW_HU
        grey = (np.clip((hu - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=2).astype(float)
        for value, colour in OVERLAY.items():
            rgb[kind == value] = 0.45 * rgb[kind == value] + 0.55 * np.array(colour)
        tiles.append(
            PILImage.fromarray(rgb.astype(np.uint8)).resize((hu.shape[1] * 2, hu.shape[0] * 2))
        )
    width = sum(t.width for t in tiles) + 30
    canvas = PILImage.new("RGB", (width, max(t.height for t in tiles) + 64), "black")
    x = 10
    for tile in tiles:
        canvas.paste(tile, (x, 24))
        x += tile.width + 10
    draw = ImageDraw.Draw(canvas)
    draw.text(
        (10, 6),
        "verse008 through L3: green both, red expert only (missed), blue pipeline only",
        fill="white",
    )
    draw.text(
        (10, canvas.height - 36), f"window {WINDOW_HU[0]:.0f}..{WINDOW_HU[1]:.0f} HU", fill="white"
    )
    draw.text((10, canvas.height - 20), ATTRIBUTION, fill="white")
    canvas.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", help="folder with stage1.pt and stage2.pt (default: shipped)")
    p.add_argument("--save", action="store_true")
    args = p.parse_args(argv)
    import torch

    from SpineLabelerLib.pipeline import SegmentSettings, segment_spine

    torch.set_num_threads(2)
    ct, ref = read_real(REAL_DIR)
    settings = SegmentSettings(device="cpu", threads=2)
    if args.weights:
        settings = SegmentSettings(weights_dir=Path(args.weights), device="cpu", threads=2)
    pred = segment_spine(ct, settings).labels.array
    kinds = classify(pred, ref.array)
    lines = [
        f"benchmarks/real_case_misses.py{' --weights ' + args.weights if args.weights else ''}"
        f"  ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; measured, never tuned on)",
        *report_lines(ct, pred, ref.array, kinds),
        ATTRIBUTION,
    ]
    print("\n".join(lines))
    if args.save:
        out = ROOT / "benchmarks" / "results"
        (out / "real_case_misses.txt").write_text("\n".join(lines) + "\n")
        write_picture(out / "real_case_misses.png", ct, ref, kinds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
