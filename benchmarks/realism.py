"""Phantoms against one real VerSe case: tissue HU, shape per level, image quality, a picture.

    .venv/bin/python benchmarks/realism.py [--seeds 0 1 2] [--out benchmarks/results] [--force]

The real case is VerSe'19 verse008 (T12-L5, tight crop, 1 x 1 x 2 mm, oblique PIR). Each
phantom is drawn with an abdomen field of view, its thick (2 mm) axis left-right like the
real case, then labels outside T12-L5 are cleared and the grid is cropped to the box of
T12-L5 (the real crop ends exactly at its mask). Every figure comes from
``SpineLabelerLib.realism`` with the same rules for both; nothing is tuned on the real case.
Writes realism.txt, realism.json and realism.png (sagittal + axial, real | phantom).

Real CT: VerSe (Loeffler et al., Radiology: AI 2020; Sekuboyina et al., MedIA 2021),
CC BY-SA 4.0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from SpineLabelerLib import anatomy, realism  # noqa: E402
from SpineLabelerLib.evaluation import centroids_from_labels  # noqa: E402
from SpineLabelerLib.image import Image, index_to_lps, resample_onto  # noqa: E402

REAL_DIR = Path("/work/shared/realdata/verse008")
LEVELS = tuple(range(19, 25))  # T12, L1-L5
PHANTOM_SPACING_MM = (2.0, 1.0, 1.0)  # (i -> L, j -> P, k -> S): thick axis left-right
ATTRIBUTION = "Real CT: VerSe verse008 (Loeffler et al. 2020; Sekuboyina et al. 2021), CC BY-SA 4.0"
WINDOW_HU = (-250.0, 1000.0)
SHAPE_FIGURES = (
    ("volume_ml", "vol ml"),
    ("body_height_mm", "height"),
    ("body_width_mm", "width"),
    ("body_depth_mm", "depth"),
    ("canal_area_mm2", "canal mm2"),
    ("canal_ap_mm", "canal AP"),
    ("canal_lr_mm", "canal LR"),
    ("disc_gap_below_mm", "disc gap"),
    ("arch_height_mm", "arch height"),
    ("arch_reach_mm", "arch reach"),
)


def read_real(folder: Path) -> tuple[Image, Image]:
    from SpineLabelerLib.io import read_ct, read_labelmap

    ct = read_ct(folder / "sub-verse008_ct.nii.gz")
    labels = read_labelmap(folder / "sub-verse008_seg-vert_msk.nii.gz", reference=ct)
    return ct, labels


def crop_to_levels(ct: Image, labels: Image, *others: Image, levels=LEVELS) -> tuple[Image, ...]:
    """Clear labels outside ``levels`` and crop every image to the box of the rest."""
    kept = np.where(np.isin(labels.array, levels), labels.array, 0).astype(np.uint8)
    if not kept.any():
        raise ValueError(f"the phantom shows none of the levels {levels}")
    box = [(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(kept)]
    sl = tuple(slice(a, b) for a, b in box)
    origin = index_to_lps(labels, [[box[2][0], box[1][0], box[0][0]]])[0]

    def cut(image: Image, array: np.ndarray) -> Image:
        return Image(
            np.ascontiguousarray(array[sl]), image.spacing_mm, tuple(origin), image.direction
        )

    return (
        cut(ct, np.asarray(ct.array)),
        cut(labels, kept),
        *(cut(o, np.asarray(o.array)) for o in others),
    )


# The generator's tissue class (phantom.tissues) and drawn-HU field behind each measured tissue.
GENERATOR_TISSUE = {
    "cortical": ("CORTEX", "cortex"),
    "cancellous": ("CANCELLOUS", "cancellous"),
    "disc": ("DISC", "disc"),
    "muscle": ("MUSCLE", "muscle"),
    "fat": ("FAT", "fat"),
    "canal": ("CANAL", "canal"),
}


def draw_phantom(seed: int) -> tuple[Image, Image, Image, dict]:
    """(ct, labels, tissue map, drawn HU per tissue) of one phantom, cropped to T12-L5."""
    from SpineLabelerLib.phantom import generate_case

    case = generate_case(seed, fov="abdomen", variant="normal", spacing_mm=PHANTOM_SPACING_MM)
    ct, labels, tissues = crop_to_levels(case.ct, case.labels, case.tissues)
    return ct, labels, tissues, case.meta.get("tissue_hu", {})


def rule_precision(ct: Image, labels: Image, tissues: Image) -> dict[str, float]:
    """Share of the voxels each realism rule picks that the generator drew as that tissue:
    how well the rules (used blind on the real case) find the tissues where truth is known."""
    from SpineLabelerLib.phantom import tissues as classes

    truth = np.asarray(tissues.array)
    out = {}
    for name, mask in realism.tissue_masks(ct, labels).items():
        if name not in GENERATOR_TISSUE:  # the arch: cortex and core, no tissue of its own
            continue
        wanted = getattr(classes, GENERATOR_TISSUE[name][0])
        out[name] = float(np.mean(truth[mask] == wanted)) if mask.any() else math.nan
    return out


def measure(ct: Image, labels: Image) -> dict:
    """Every realism figure of one case."""
    return {
        "hu": realism.tissue_hu(ct, labels),
        "shape": realism.shape_per_level(labels),
        "quality": realism.image_quality(ct, labels),
        "edge": realism.edge_layers(ct, labels),
    }


# --------------------------------------------------------------------------- the tables


def _f(x: float, digits: int = 0) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mean_of(values) -> float:
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(finite)) if finite else math.nan


def _spread(real_value: float, phantom_values: list[float]) -> dict:
    """A real figure against the phantoms' mean and range (NaN phantom values left out)."""
    values = [v for v in phantom_values if not math.isnan(v)]
    lo, hi = (min(values), max(values)) if values else (math.nan, math.nan)
    return {
        "real": real_value,
        "phantom_mean": float(np.mean(values)) if values else math.nan,
        "phantom_min": lo,
        "phantom_max": hi,
        "in_spread": None if not values or math.isnan(real_value) else bool(lo <= real_value <= hi),
    }


def hu_rows(real: dict, phantoms: list[dict]) -> list[dict]:
    rows = []
    for tissue in realism.TISSUES:
        r = real["hu"][tissue]
        pooled = realism.HUStats.of(np.concatenate([p["hu"][tissue].samples for p in phantoms]))
        rows.append(
            {
                "tissue": tissue,
                "real": {"n": r.n, "median": r.median, "q25": r.q25, "q75": r.q75},
                "phantom": {
                    "n": sum(p["hu"][tissue].n for p in phantoms),
                    "median": pooled.median,
                    "q25": pooled.q25,
                    "q75": pooled.q75,
                },
                "phantom_drawn_hu_mean": _mean_of(
                    p.get("drawn_hu", {}).get(tissue) for p in phantoms
                ),
                "rule_precision_on_phantoms": _mean_of(
                    p.get("rule_precision", {}).get(tissue) for p in phantoms
                ),
                "w1_hu": realism.hu_distance(pooled, r),
                "within_target": realism.within_target(pooled, r),
            }
        )
    return rows


def shape_rows(real: dict, phantoms: list[dict]) -> list[dict]:
    rows = []
    for label in LEVELS:
        rs = real["shape"].get(label)
        ps = [p["shape"][label] for p in phantoms if label in p["shape"]]
        for key, _ in SHAPE_FIGURES:
            rows.append(
                {
                    "level": anatomy.BY_LABEL[label].name,
                    "figure": key,
                    "real_at_border": bool(rs.at_border) if rs else None,
                    **_spread(
                        float(getattr(rs, key)) if rs else math.nan,
                        [float(getattr(s, key)) for s in ps],
                    ),
                }
            )
    return rows


def quality_rows(real: dict, phantoms: list[dict]) -> list[dict]:
    rows = []
    for key in ("noise_hu", "edge_rise_fine_mm", "edge_rise_thick_mm"):
        values = [getattr(p["quality"], key) for p in phantoms]
        values = [v for v in values if not math.isnan(v)]
        rows.append(
            {
                "figure": key,
                "real": getattr(real["quality"], key),
                "phantom_mean": float(np.mean(values)) if values else math.nan,
                "phantom_min": min(values) if values else math.nan,
                "phantom_max": max(values) if values else math.nan,
            }
        )
    return rows


def edge_rows(real: dict, phantoms: list[dict]) -> list[dict]:
    """One row per voxel layer across the mask surface, from the farthest outside inwards."""
    rows = []
    for side, order in (("outside", reversed), ("inside", iter)):
        for i in order(range(len(getattr(real["edge"], side)))):
            values = [getattr(p["edge"], side)[i] for p in phantoms]
            rows.append(
                {"layer": f"{side} {i + 1}", **_spread(getattr(real["edge"], side)[i], values)}
            )
    return rows


def format_report(
    hu: list[dict], shape: list[dict], quality: list[dict], edge: list[dict], seeds
) -> str:
    out = [
        f"Realism: one real VerSe case (verse008, T12-L5) vs phantoms (seeds {list(seeds)})",
        ATTRIBUTION,
        "",
        "Tissue HU: median [IQR]; target = median within max(15 %, 40 HU) and IQRs overlap;",
        "drawn = mean HU the generator drew (before blur and noise); rule ok = share of the",
        "voxels a rule picks in the phantoms that the generator drew as that tissue",
        f"rules: cortical = mask voxels <= {realism.SHELL_MM:g} mm deep; cancellous = deeper than "
        f"{realism.CORE_MM:g} mm; disc/canal >= {realism.BONE_MARGIN_MM:g} mm from bone;",
        f"muscle {realism.MUSCLE_HU}, fat {realism.FAT_HU} HU (smoothed) in a band "
        f"{realism.PARASPINAL_BAND_MM} mm from bone behind and beside the spine; arch = mask behind",
        "its level's canal (laminae, processes)",
        f"{'tissue':<11}{'real':>22}{'phantom':>22}{'W1 HU':>8}  target{'drawn':>8}{'rule ok':>9}",
    ]
    for row in hu:
        r, p = row["real"], row["phantom"]
        out.append(
            f"{row['tissue']:<11}"
            f"{_f(r['median']) + ' [' + _f(r['q25']) + ', ' + _f(r['q75']) + ']':>22}"
            f"{_f(p['median']) + ' [' + _f(p['q25']) + ', ' + _f(p['q75']) + ']':>22}"
            f"{_f(row['w1_hu']):>8}  {'yes' if row['within_target'] else 'NO ':<6}"
            f"{_f(row['phantom_drawn_hu_mean']):>8}{_f(100 * row['rule_precision_on_phantoms']):>8}%"
        )
    out += [
        "",
        "Shape per level (mm, ml): real / phantom mean [min-max]; * real level touches the crop",
        "border (figures may be cut); ! real value outside the phantoms' spread",
    ]
    by_level: dict[str, list[dict]] = {}
    for row in shape:
        by_level.setdefault(row["level"], []).append(row)
    header = f"{'level':<7}" + "".join(f"{label:>21}" for _, label in SHAPE_FIGURES)
    out.append(header)
    for level, rows in by_level.items():
        mark = "*" if rows[0]["real_at_border"] else ""
        real_line = f"{level + mark:<7}" + "".join(
            f"{_f(r['real'], 1) + ('!' if r['in_spread'] is False else ''):>21}" for r in rows
        )
        ph_line = f"{'  ph':<7}" + "".join(
            f"{_f(r['phantom_mean'], 1) + ' [' + _f(r['phantom_min'], 1) + '-' + _f(r['phantom_max'], 1) + ']':>21}"
            for r in rows
        )
        out += [real_line, ph_line]
    out += ["", "Image quality: real / phantom mean [min-max]"]
    for row in quality:
        out.append(
            f"{row['figure']:<20}{_f(row['real'], 2):>8}   {_f(row['phantom_mean'], 2)} "
            f"[{_f(row['phantom_min'], 2)}-{_f(row['phantom_max'], 2)}]"
        )
    out += [
        "",
        "Bone edge, median HU per voxel layer across the vertebra masks' surface (outside 1 /",
        "inside 1: the layers that touch the surface): real / phantom mean [min-max]; ! real",
        "value outside the phantoms' spread. Where the label's edge sits on the image's edge.",
    ]
    for row in edge:
        out.append(
            f"{row['layer']:<20}{_f(row['real']) + ('!' if row['in_spread'] is False else ''):>8}   "
            f"{_f(row['phantom_mean'])} [{_f(row['phantom_min'])}-{_f(row['phantom_max'])}]"
        )
    return "\n".join(out)


# ---------------------------------------------------------------------------- the picture


def _views(ct: Image, labels: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sagittal (superior up, anterior left) and axial (anterior up, patient right on the
    left) 1 mm slices through L3's centroid, 120 x 260 mm and 160 x 120 mm, on
    identity-direction LPS grids; returns (ct_sag, lab_sag, ct_ax, lab_ax)."""
    c = centroids_from_labels(labels)
    centre = c.get(22, np.mean(list(c.values()), axis=0))
    sag = Image(np.zeros((260, 120, 1)), (1, 1, 1), (centre[0], centre[1] - 60, centre[2] - 130))
    ax = Image(np.zeros((1, 120, 160)), (1, 1, 1), (centre[0] - 80, centre[1] - 60, centre[2]))
    out = []
    for ref in (sag, ax):
        out.append(np.asarray(resample_onto(ct, ref, fill=-1024).array, float))
        out.append(np.asarray(resample_onto(labels, ref, nearest=True).array))
    ct_sag, lab_sag, ct_ax, lab_ax = out
    return ct_sag[::-1, :, 0], lab_sag[::-1, :, 0], ct_ax[0], lab_ax[0]


def _rgb(hu: np.ndarray, labels: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW_HU
    grey = (np.clip((hu - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    edge = (labels > 0) & ((np.roll(labels, 1, 0) != labels) | (np.roll(labels, 1, 1) != labels))
    for label in np.unique(labels[edge]):
        if int(label) in anatomy.BY_LABEL:
            rgb[edge & (labels == label)] = anatomy.BY_LABEL[int(label)].color_rgb
    return rgb


def write_picture(path: Path, real: tuple[Image, Image], phantom: tuple[Image, Image], seed: int):
    from PIL import Image as PILImage
    from PIL import ImageDraw

    scale, pad, top, bottom = 2, 10, 24, 40
    panels = []
    for ct, labels in (real, phantom):
        s_ct, s_lab, a_ct, a_lab = _views(ct, labels)
        panels.append((_rgb(s_ct, s_lab), _rgb(a_ct, a_lab)))
    sag_h, sag_w = panels[0][0].shape[:2]
    ax_h, ax_w = panels[0][1].shape[:2]
    col_w = (sag_w + ax_w) * scale + pad
    canvas = PILImage.new("RGB", (2 * col_w + pad, top + sag_h * scale + bottom), "black")
    draw = ImageDraw.Draw(canvas)
    titles = ("one real VerSe case (verse008)", f"phantom, seed {seed}")
    for n, (sag, ax) in enumerate(panels):
        x0 = pad + n * col_w
        for img, dx in ((sag, 0), (ax, sag_w * scale + pad // 2)):
            tile = PILImage.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale))
            canvas.paste(tile, (x0 + dx, top))
        draw.text((x0, 6), titles[n], fill="white")
    note = f"window {WINDOW_HU[0]:.0f}..{WINDOW_HU[1]:.0f} HU; sagittal and axial through L3; outlines: labels"
    draw.text((pad, top + sag_h * scale + 6), note, fill="white")
    draw.text((pad, top + sag_h * scale + 22), ATTRIBUTION, fill="white")
    canvas.save(path)


# ------------------------------------------------------------------------------- main


def code_version() -> str:
    """HEAD commit, and whether the phantom generator has uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--porcelain", "SpineLabelerLib/phantom", "SpineLabelerLib/realism.py")
    return git("rev-parse", "--short", "HEAD") + (
        " + uncommitted phantom/realism code" if dirty else ""
    )


def _jsonable(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _jsonable(obj.item())
    return obj


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--real", type=Path, default=REAL_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--force", action="store_true", help="overwrite earlier results")
    args = parser.parse_args(argv)
    paths = [args.out / f"realism.{ext}" for ext in ("txt", "json", "png")]
    if any(p.exists() for p in paths) and not args.force:
        print(f"refusing to overwrite results in {args.out} (use --force)", file=sys.stderr)
        return 1
    t0 = time.time()
    real_case = read_real(args.real)
    real = measure(*real_case)
    phantom_cases, phantoms = [], []
    for seed in args.seeds:
        t = time.time()
        ct, labels, tissues, drawn = draw_phantom(seed)
        case = (ct, labels)
        phantom_cases.append(case)
        figures = measure(ct, labels)
        figures["rule_precision"] = rule_precision(ct, labels, tissues)
        figures["drawn_hu"] = {k: drawn.get(field) for k, (_, field) in GENERATOR_TISSUE.items()}
        phantoms.append(figures)
        print(
            f"seed {seed}: grid {case[0].array.shape} drawn and measured in {time.time() - t:.0f} s",
            file=sys.stderr,
        )
    hu, shape, quality, edge = (
        hu_rows(real, phantoms),
        shape_rows(real, phantoms),
        quality_rows(real, phantoms),
        edge_rows(real, phantoms),
    )
    report = format_report(hu, shape, quality, edge, args.seeds) + f"\ncode: {code_version()}"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(report + "\n")
    document = {
        "real_case": "VerSe verse008 (one real VerSe case)",
        "attribution": ATTRIBUTION,
        "seeds": args.seeds,
        "code": code_version(),
        "phantom_spacing_mm_ijk": PHANTOM_SPACING_MM,
        "rules": {
            "shell_mm": realism.SHELL_MM,
            "core_mm": realism.CORE_MM,
            "muscle_hu": realism.MUSCLE_HU,
            "fat_hu": realism.FAT_HU,
            "disc_radius_mm": realism.DISC_RADIUS_MM,
            "paraspinal_band_mm": realism.PARASPINAL_BAND_MM,
        },
        "tissue_hu": hu,
        "shape": shape,
        "quality": quality,
        "edge_layers": edge,
        "real_quality": asdict(real["quality"]),
        "seconds": time.time() - t0,
    }
    paths[1].write_text(json.dumps(_jsonable(document), indent=1))
    write_picture(paths[2], real_case, phantom_cases[0], args.seeds[0])
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
