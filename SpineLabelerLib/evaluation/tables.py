"""Per-vertebra scores and the paper's summary tables.

Table 1 (segmentation): Dice (%), ASSD (mm), HD (mm), mean over reference vertebrae.
Table 2 (localization/identification): rows all / cervical / thoracic / lumbar, columns
mean error (mm), std (mm), identification rate (%).

Aggregation rules, stated once: a reference vertebra the prediction misses counts as Dice 0
and not identified, and has no ASSD, HD or localization error (those are averaged over the
vertebrae present in both). Rows from several cases may be concatenated and summarised
together (pooled over vertebrae, as Glocker's rates are).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from SpineLabelerLib import anatomy
from SpineLabelerLib.evaluation.centroids import Centroids, centroids_from_labels, label_values
from SpineLabelerLib.evaluation.localization import extra_predictions, localization_scores
from SpineLabelerLib.evaluation.segmentation import label_overlap
from SpineLabelerLib.image import Image

SUMMARY_GROUPS: tuple[str, ...] = ("all", *anatomy.REGIONS)


@dataclass(frozen=True)
class VertebraRow:
    """Every figure of one reference vertebra (distances in mm; NaN where undefined)."""

    label: int
    name: str
    region: str
    dice: float
    assd_mm: float
    hd_mm: float
    loc_error_mm: float
    identified: bool
    predicted: bool
    # how much of it the view holds: a miss of a 0.1 ml sliver is not a miss of a vertebra
    reference_ml: float = math.nan


@dataclass(frozen=True)
class GroupSummary:
    """One row of Tables 1 and 2 for a group of vertebrae (``n`` reference vertebrae)."""

    group: str
    n: int
    dice_pct: float
    assd_mm: float
    hd_mm: float
    loc_mean_mm: float
    loc_std_mm: float
    id_rate_pct: float
    n_identified: int


@dataclass(frozen=True)
class Evaluation:
    rows: list[VertebraRow]
    extra_predicted_labels: list[int]
    summary: list[GroupSummary]


def _name_region(label: int) -> tuple[str, str]:
    if label in anatomy.BY_LABEL:
        v = anatomy.BY_LABEL[label]
        return v.name, v.region
    return f"label{label}", "other"


def evaluate(
    pred: Image,
    ref: Image,
    pred_centroids: Centroids | None = None,
    ref_centroids: Centroids | None = None,
) -> Evaluation:
    """Score a predicted labelmap against a reference (VerSe values), on the reference grid.

    Centroids (label -> (3,) LPS mm) default to :func:`centroids_from_labels` of each map.
    """
    if pred_centroids is None:
        pred_centroids = centroids_from_labels(pred)
    if ref_centroids is None:
        ref_centroids = centroids_from_labels(ref)
    ref_labels = sorted(set(label_values(ref.array)) | {int(k) for k in ref_centroids})
    overlap = label_overlap(pred, ref, ref_labels)
    voxel_ml = float(np.prod(ref.spacing_mm)) / 1000.0
    located = localization_scores(pred_centroids, ref_centroids)
    rows = []
    for label in ref_labels:
        name, region = _name_region(label)
        o = overlap[label]
        loc = located.get(label)
        rows.append(
            VertebraRow(
                label,
                name,
                region,
                o.dice,
                o.assd_mm,
                o.hd_mm,
                loc.error_mm if loc else math.nan,
                bool(loc and loc.identified),
                o.pred_voxels > 0 or (loc is not None and not math.isnan(loc.error_mm)),
                o.ref_voxels * voxel_ml,
            )
        )
    pred_labels = set(label_values(pred.array)) | {int(k) for k in pred_centroids}
    extra = extra_predictions(dict.fromkeys(pred_labels), dict.fromkeys(ref_labels))
    return Evaluation(rows, extra, summarize(rows))


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(rows: Iterable[VertebraRow]) -> list[GroupSummary]:
    """Tables 1 and 2 for all vertebrae and per region (groups with no vertebra get NaN)."""
    rows = list(rows)
    out = []
    for group in SUMMARY_GROUPS:
        members = [r for r in rows if group == "all" or r.region == group]
        errors = [r.loc_error_mm for r in members if not math.isnan(r.loc_error_mm)]
        n_id = sum(r.identified for r in members)
        out.append(
            GroupSummary(
                group,
                len(members),
                100.0 * _mean([r.dice for r in members]),
                _mean([r.assd_mm for r in members]),
                _mean([r.hd_mm for r in members]),
                float(np.mean(errors)) if errors else math.nan,
                float(np.std(errors)) if errors else math.nan,
                100.0 * n_id / len(members) if members else math.nan,
                n_id,
            )
        )
    return out


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_tables(evaluation: Evaluation) -> str:
    """Plain-text per-vertebra table, then Table 1 and Table 2 laid out like the paper's."""
    lines = [
        f"{'vertebra':<9}{'Dice %':>8}{'ASSD mm':>9}{'HD mm':>8}{'loc mm':>8}  identified",
    ]
    for r in evaluation.rows:
        lines.append(
            f"{r.name:<9}{_fmt(100 * r.dice, 1):>8}{_fmt(r.assd_mm):>9}{_fmt(r.hd_mm):>8}"
            f"{_fmt(r.loc_error_mm, 1):>8}  {'yes' if r.identified else 'no'}"
            + ("" if r.predicted else " (missed)")
        )
    if evaluation.extra_predicted_labels:
        names = [_name_region(v)[0] for v in evaluation.extra_predicted_labels]
        lines.append(f"predicted but not in the reference: {', '.join(names)}")
    lines += [
        "",
        "Table 1 - segmentation",
        f"{'':<10}{'n':>4}{'Dice %':>9}{'ASSD mm':>9}{'HD mm':>8}",
    ]
    for s in evaluation.summary:
        lines.append(
            f"{s.group:<10}{s.n:>4}{_fmt(s.dice_pct, 1):>9}{_fmt(s.assd_mm):>9}{_fmt(s.hd_mm):>8}"
        )
    lines += [
        "",
        "Table 2 - localization and identification",
        f"{'':<10}{'n':>4}{'Mean mm':>9}{'Std mm':>8}{'Id rate %':>11}",
    ]
    for s in evaluation.summary:
        lines.append(
            f"{s.group:<10}{s.n:>4}{_fmt(s.loc_mean_mm, 1):>9}{_fmt(s.loc_std_mm, 1):>8}"
            f"{_fmt(s.id_rate_pct, 0):>11}"
        )
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_tables(evaluation: Evaluation, out_dir: str | Path, force: bool = False) -> list[Path]:
    """Write ``vertebrae.csv``, ``summary.csv`` and ``evaluation.json`` into ``out_dir``.

    Refuses (``FileExistsError``) to overwrite any of them unless ``force``.
    """
    out = Path(out_dir)
    paths = [out / "vertebrae.csv", out / "summary.csv", out / "evaluation.json"]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (use --force)")
    out.mkdir(parents=True, exist_ok=True)
    for path, records in ((paths[0], evaluation.rows), (paths[1], evaluation.summary)):
        dicts = [asdict(r) for r in records]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(dicts[0]) if dicts else ["label"])
            writer.writeheader()
            writer.writerows(
                {k: _fmt(v, 4) if isinstance(v, float) else v for k, v in d.items()} for d in dicts
            )
    document = {
        "vertebrae": [{k: _jsonable(v) for k, v in asdict(r).items()} for r in evaluation.rows],
        "extra_predicted_labels": evaluation.extra_predicted_labels,
        "summary": [{k: _jsonable(v) for k, v in asdict(s).items()} for s in evaluation.summary],
        "definitions": {
            "distances": "mm on the reference grid; surfaces = voxels with a face-connected background neighbour",
            "identified": "predicted centroid within 20 mm of its reference AND the closest reference centroid is its own",
            "missed vertebra": "Dice 0, not identified, no ASSD/HD/localization error",
        },
    }
    paths[2].write_text(json.dumps(document, indent=2))
    return paths
