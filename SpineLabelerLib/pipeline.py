"""The one entry point: a CT in, every visible vertebra segmented, centred and named out.

``segment_spine(ct, settings, progress, cancel) -> SpineResult`` is what the CLI
(``spinelabeler segment``) and the Slicer module call. This module reads top to bottom in
the order the data flows (issue 5):

1. read: the CT checked, the networks (and the level head) loaded.
2. stage 1 over the whole CT on the stage-1 canonical grid (``stage1_spacing_mm``):
   regions, cleaned; boxes; centre line. Nothing found -> ``no_spine_found`` (not an error).
3. crop: the spine box plus a margin, at 1 mm, with the mask of what the CT covers.
4. stage 2 on that crop: the iterative walk (stage2.py), started at the
   thoracolumbar or cervicothoracic boundary when one is visible, else at the end of the
   column that offers an anchor (C1 under the skull for a cervical-only view, the vertebra
   above the sacrum for a lumbar-only view), else mid-column. A walk that finds fewer than
   half the vertebrae the spine box could hold (a wrong anchor: it stalls on one fragment)
   is tried again from mid-column, and the longer walk is kept (``restart_below``).
5. the column judged (column.py): pieces cut off a vertebra folded back into it or, at an
   end, dropped; masks the outline net finds to be one vertebra joined, and a piece it
   finds to be part of a vertebra no mask holds grown into it (same_vertebra.py: real thick
   slices); a bottom sliver off the column's line to one side (a piece of the sacrum's ala
   at the view's edge) and end vertebrae stage 1 does not call spine dropped.
6. names (identify.py) from the walk, the stage-1 votes, the ribs and how the walk ended;
   a bottom "L6" that is the sacrum dropped and the column named again; the level head
   (one more stage-2 prediction per vertebra) checks the count and a message says when it
   disagrees (``column.count_check``). Then the real-shape stage-2 net
   (``outline_weights_dir``) outlines each named vertebra again (outline_pass.py): by
   default it only adds the thick parts the walking net left out; with ``--real-shapes``
   its outlines replace the walk's.
7. output grid: labels back to the CT's own grid (each label's stage-2 probability
   resampled linearly, its boundary where that crosses 0.5: ``labels_to_input_grid``);
   there each vertebra takes the voxel layer beside it that is its bone going on
   (``edge_snap``, bone_edges.py; off with ``--no-edge-snap``), and takes the voxels it
   encloses (cavities.py: fatty marrow the net left out as holes).
8. report: centroids and volumes from those final masks, messages (among them the
   vertebrae with metal beside them, metal.py), timings, work.

Progress fractions are overall (0..1) with the stage named; ``cancel`` is checked between
steps and between vertebrae (raises ``progress.Cancelled``; nothing is returned or written).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from SpineLabelerLib import (
    anatomy,
    bone_edges,
    cavities,
    column,
    identify,
    metal,
    outline_pass,
    preprocess,
    ribs,
    same_vertebra,
    stage1,
    stage2,
)
from SpineLabelerLib.evaluation.centroids import centroids_and_counts
from SpineLabelerLib.image import (
    Image,
    bounding_box,
    grow_box,
    ijk_to_lps_matrix,
    index_to_lps,
    lps_to_index,
    resample_onto,
    subimage,
)
from SpineLabelerLib.io.checks import check_ct
from SpineLabelerLib.progress import CancelFlag, ProgressCallback, report

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "Resources" / "Models"
# The stage-2 net fine-tuned on real expert masks rendered as CT: outlines nearer a real
# expert's (real_shapes/README.md); it outlines the default net's column again (outline_pass.py).
REAL_SHAPES_WEIGHTS_DIR = DEFAULT_WEIGHTS_DIR / "real_shapes"


# Overall progress span of each stage: about its share of the time on a whole-spine CT on
# two CPU threads (stage 1 2 s, stage 2 16 s, identify 8 s, the outline pass 8 s, output 2 s)
_SPANS = {
    "stage1": (0.02, 0.10),
    "stage2": (0.10, 0.55),
    "identify": (0.55, 0.76),
    "outline": (0.76, 0.95),
    "output": (0.95, 1.0),
}


@dataclass(frozen=True)
class SegmentSettings:
    """Everything that changes what or how fast the pipeline segments (mm, voxels)."""

    weights_dir: Path = DEFAULT_WEIGHTS_DIR
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 2  # CPU threads for torch
    # None: the spacing stage 1 was trained at (its weight file), else preprocess's 3 mm
    stage1_spacing_mm: float | None = None
    # voxels at stage-1 spacing: the whole CT in one call at 3 mm up to 96 x 58 x 58 cm
    stage1_window_kji: tuple[int, int, int] = (320, 192, 192)
    stage1_overlap: float = 0.25
    box_margin_mm: tuple[float, float, float] = (25.0, 25.0, 30.0)  # around the spine box (x, y, z)
    # patch_kji None: the patch stage 2 was trained on (its weight file), else preprocess's
    walk: stage2.WalkSettings = field(default_factory=lambda: stage2.WalkSettings(patch_kji=None))
    cleaning: stage1.CleaningSettings = field(default_factory=stage1.CleaningSettings)
    min_stage1_support: float = 0.1  # end vertebrae less spine than this to stage 1 are dropped
    # a bottom "L6" that stage 1 calls spine less than this times the column's median is sacrum
    sacrum_relative_support: float = 0.35
    # a bottom mask whose CT bone beside its body's front is wider (left-right) than
    # sacrum_width_ratio times the vertebrae's above (column.front_bone_widths_mm), and that
    # stage 1 calls spine less than sacrum_wide_relative_support times their median, is the
    # sacrum; so is one that stage 1 calls spine less than sacrum_in_line_relative_support
    # times it, if its body is in line with theirs (column.IN_LINE_STEP)
    sacrum_wide_relative_support: float = 0.6
    sacrum_width_ratio: float = 1.4
    sacrum_in_line_relative_support: float = 0.85
    # a bottom sliver the view cut, below lumbar vertebrae, further than this left or right
    # of the column's line is a piece of the bone beside it, not a vertebra
    off_line_sliver_mm: float = 6.0
    sliver_fraction: float = 0.25  # a cut end vertebra this small (x median) needs no stage 1
    fragment_fraction: float = 0.25  # an inner vertebra this small (x those around it) is a piece
    # the voxel layer just outside each vertebra that is its bone going on (bone_edges.py;
    # None: the nets' outlines as they are)
    edge_snap: bone_edges.EdgeSnapSettings | None = bone_edges.EdgeSnapSettings()
    # each vertebra grown over the CT's bone beside it (None: not grown)
    bone_edges: bone_edges.BoneEdgeSettings | None = None
    # two touching masks closer than this (x the column's step) and together smaller than
    # split_volume_fraction (x a whole vertebra near them) are the halves of one vertebra
    split_step_fraction: float = 0.6
    split_volume_fraction: float = 1.3
    # a mask under this share of the largest vertebra near it is asked of the outline net
    # whether it is a neighbour's piece or a vertebra's (same_vertebra.py; needs that net)
    piece_suspect_fraction: float = 0.75
    # a walk that found fewer than this share of the vertebrae the spine box could hold (at
    # the longest typical step) is tried again from the box's middle; the longer walk is kept
    restart_below: float = 0.5
    # read each vertebra's level from its look (level_head.py, one more stage-2 prediction
    # per vertebra) where a head fits the stage-2 net, to check the count (identify rule 6)
    use_level_head: bool = True
    # say so when the head prefers another count by this many nats (on the development set
    # the head agreed exactly or preferred another count by 0.6-3.6 nats)
    count_check_nats: float = 0.5
    # a folder whose stage2.pt outlines each named vertebra again (outline_pass.py; None: the
    # walking net's outlines stay): by default the real-shape net adds the thick parts the
    # walking net left out (spinous processes, arch ends); "replace" (--real-shapes) takes
    # its outlines whole
    outline_weights_dir: Path | None = REAL_SHAPES_WEIGHTS_DIR
    outline_mode: outline_pass.OutlineMode = "add"
    # where the "add" pass adds, by region (outline_pass.Reach; a region left out is not
    # outlined again). Development phantoms against no pass: added anywhere, cervical -0.8
    # Dice points, thoracic -0.4, lumbar +0.3; added only behind, cervical -0.3, thoracic
    # -0.1; on verse008's T12 (the one real thoracic vertebra) behind +2.8, anywhere +3.8
    outline_add_reach: tuple[tuple[str, outline_pass.Reach], ...] = (
        ("thoracic", "behind"),
        ("lumbar", "whole"),
    )

    def fast(self) -> SegmentSettings:
        """The ``--fast`` variant: at most 2 predictions per vertebra, and a mask well inside
        the patch is accepted after one however far it moved (stage 1 keeps its trained grid);
        no count check by the level head."""
        return replace(
            self,
            walk=replace(self.walk, max_iterations=2, converge_mm=3.0, accept_mm=12.0),
            use_level_head=False,
        )


@dataclass(frozen=True)
class VertebraRecord:
    """One vertebra of the result (centroid LPS mm, volume ml, confidence 0..1), with the
    evidence its name rests on, so that a reader of report.json can see why it was named so:
    the share of its voxels stage 1 called cervical / thoracic / lumbar, its rib score
    (ribs.py; None where not measured) and the level the level head reads it as (None
    without the head): what the count check weighs against the names."""

    label: int
    name: str
    partial: bool
    confidence: float
    volume_ml: float
    centroid_lps: tuple[float, float, float]
    region_votes: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rib_score: float | None = None
    looks_like: str | None = None


@dataclass
class SpineResult:
    """What ``segment_spine`` found; ``labels`` lies on the input CT's grid (VerSe values)."""

    labels: Image
    vertebrae: list[VertebraRecord]
    no_spine_found: bool
    timings_s: dict[str, float]
    device: str
    messages: list[str] = field(default_factory=list)
    walk_ends: tuple[str, str] = ("none", "none")  # (above, below): spine | fov | lost | ...
    work: dict[str, Any] = field(
        default_factory=dict
    )  # grid shapes, network calls (for benchmarks)
    count_check: dict[str, Any] | None = None  # column.count_check where it spoke
    count_anchors: tuple[str, ...] = ()  # identify.count_anchors: what fixes the count

    def report(self) -> dict[str, Any]:
        """The JSON report (report.json) of ARCHITECTURE.md."""
        return {
            "no_spine_found": self.no_spine_found,
            "vertebrae": [asdict(v) for v in self.vertebrae],
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "device": self.device,
            "walk_ends": {"above": self.walk_ends[0], "below": self.walk_ends[1]},
            "work": dict(self.work),
            "messages": list(self.messages),
            "count_check": None if self.count_check is None else dict(self.count_check),
            "count_anchors": list(self.count_anchors),
        }


# ----------------------------------------------------------------------- entry point


def segment_spine(
    ct: Image,
    settings: SegmentSettings = SegmentSettings(),
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    runners: tuple[Any, Any, str] | None = None,
) -> SpineResult:
    """Segment, locate and name every visible vertebra of ``ct`` (HU, any grid, LPS).

    ``runners``: (stage-1, stage-2, device name) to use instead of the weight files, for
    callers that hold their own networks (and tests with oracle "networks"); a runner maps
    ``(C, K, J, I)`` float32 to probabilities and has a ``messages`` list.
    Raises io.CTInputError for an input that cannot be a CT, nets.ModelFileError for
    missing or broken weights, progress.Cancelled when ``cancel`` is set.
    """
    t_all = time.perf_counter()
    check_ct(ct)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if runners is None:
        run1, run2, device_name, messages = load_runners(settings)
        head, head_notes = load_level_head(settings, run2)
        messages = messages + head_notes
    else:
        (run1, run2, device_name), messages, head = runners, [], None
    # the second stage-2 net: it judges the walk's small masks and outlines the column again
    outline_runner = None
    if settings.outline_weights_dir is not None:
        outline_runner = load_outline_runner(settings)
    messages = messages + input_notes(ct)
    timings["load_models"] = time.perf_counter() - t
    report(progress, "stage1", _SPANS["stage1"][0], f"stage 1 on {device_name}")

    # Stage 1: regions on the whole CT.
    t = time.perf_counter()
    s1 = run_stage1(ct, run1, settings, _span(progress, "stage1"), cancel)
    timings["stage1"] = time.perf_counter() - t
    work: dict[str, Any] = {
        "input_spacing_mm": [round(float(v), 4) for v in ct.spacing_mm],
        "stage1_spacing_mm": s1.classes.spacing_mm[0],
        "stage1_grid_kji": list(s1.classes.array.shape),
    }
    if cancel is not None:
        cancel.check()
    if not s1.found:
        timings["total"] = time.perf_counter() - t_all
        report(progress, "done", 1.0, "no spine found")
        why = "stage 1 found no spine region"
        return _no_spine(ct, timings, device_name, messages + run1.messages, why, work)

    # Stage 2: the walk on the spine box at 1 mm.
    t = time.perf_counter()
    crop, valid, walk = run_stage2(ct, s1, run2, settings, _span(progress, "stage2"), cancel)
    timings["stage2"] = time.perf_counter() - t
    messages = messages + run1.messages + run2.messages
    work.update(
        stage2_crop_kji=list(crop.array.shape),
        stage2_predictions=walk.predictions,
        walk_start=walk.start,
    )
    if not walk.vertebrae:
        timings["total"] = time.perf_counter() - t_all
        report(progress, "done", 1.0, "no spine found")
        why = "stage 2 found no vertebra in the spine region"
        return _no_spine(ct, timings, device_name, messages, why, work)

    # The column judged (column.py), then named.
    t = time.perf_counter()
    report(progress, "identify", _SPANS["identify"][0], "naming the vertebrae")
    classes_on_crop = preprocess.labels_onto(s1.classes, crop).array
    votes = stage1_votes(walk.instances.array, classes_on_crop, [v.index for v in walk.vertebrae])
    work["pieces_folded"] = column.merge_fragments(walk, votes, settings.fragment_fraction)
    work["halves_joined"] = column.merge_split_vertebrae(
        walk, votes, settings.split_step_fraction, settings.split_volume_fraction
    )
    if outline_runner is not None:
        work["pieces_joined"], work["pieces_grown"] = judge_pieces_with(
            outline_runner,
            crop,
            valid,
            walk,
            votes,
            classes_on_crop,
            settings.piece_suspect_fraction,
        )
    column.drop_end_fragments(walk, votes, settings.fragment_fraction)
    sacrum = column.sacrum_evidence(walk, votes, crop.array)
    work["sacrum_evidence"] = None if sacrum is None else asdict(sacrum)
    work["sacrum_recognised"] = column.recognise_sacrum(
        walk,
        votes,
        sacrum,
        settings.sacrum_wide_relative_support,
        settings.sacrum_width_ratio,
        settings.sacrum_in_line_relative_support,
    )
    work["off_line_sliver_dropped"] = column.drop_off_line_sliver(
        walk, votes, settings.sliver_fraction, settings.off_line_sliver_mm
    )
    column.trim_unsupported_ends(walk, votes, settings.min_stage1_support, settings.sliver_fraction)
    if not walk.vertebrae:
        timings["total"] = time.perf_counter() - t_all
        report(progress, "done", 1.0, "no spine found")
        why = "no vertebra of the walk lies where stage 1 sees spine"
        return _no_spine(ct, timings, device_name, messages, why, work)
    rib_evidence = ribs.rib_scores(
        crop.array,
        valid,
        walk.instances.array,
        [v.index for v in walk.vertebrae],
        preprocess.STAGE2_SPACING_MM,
    )
    t_head = time.perf_counter()
    levels = read_levels(head, run2, crop, walk, _span(progress, "identify"), cancel)
    timings["level_head"] = time.perf_counter() - t_head
    work["level_head_patches"] = 0 if head is None else len(walk.vertebrae)
    evidence = [  # ribs.py leaves unmeasured a vertebra the view cuts
        identify.VertebraEvidence(vote, tuple(v.centroid_lps), rib, level)
        for v, vote, rib, level in zip(walk.vertebrae, votes, rib_evidence, levels)
    ]
    ends_above, ends_below = column.anchoring_ends(walk, votes)
    ends = identify.ColumnEnds(ends_above=ends_above, ends_below=ends_below)
    names = identify.identify(evidence, ends)
    if column.is_sacrum_called_l6(walk, votes, names, settings.sacrum_relative_support):
        walk.vertebrae.pop(), votes.pop(), evidence.pop()
        walk.end_below = "spine"  # the sacrum is in view: the lumbar spine ends above it
        ends = replace(ends, ends_below=True)
        names = identify.identify(evidence, ends)
    messages = messages + column.lost_spine_notes(walk, names)
    check = column.count_check(evidence, names, settings.count_check_nats)
    messages = messages + ([column.count_check_note(check, bool(names.anchors))] if check else [])
    messages = messages + column.unanchored_notes(names)
    timings["identify"] = time.perf_counter() - t
    if cancel is not None:
        cancel.check()

    if outline_runner is not None:
        t = time.perf_counter()
        by_region = dict(settings.outline_add_reach)
        reach = [
            "whole"
            if settings.outline_mode == "replace"
            else by_region.get(anatomy.vertebra(label).region)
            for label in names.labels
        ]
        work["outline_patches"] = sum(r is not None for r in reach)
        work["outlined_again"] = outline_with(
            outline_runner,
            crop,
            valid,
            walk,
            settings.outline_mode,
            reach,
            progress,
            cancel,
        )
        timings["outline_again"] = time.perf_counter() - t

    # Back to the input grid; centroids and volumes from the final masks.
    t = time.perf_counter()
    report(progress, "output", _SPANS["output"][0], "resampling to the input grid")
    lut = np.zeros(int(walk.instances.array.max()) + 1, np.uint8)
    for v, label in zip(walk.vertebrae, names.labels):
        lut[v.index] = label
    labels_crop = walk.instances.with_array(lut[walk.instances.array])
    labels, covered = labels_to_input_grid(
        labels_crop, ct, walk.probability, settings.edge_snap, settings.bone_edges
    )
    records = _records(covered, walk, names, evidence)
    beside_metal = metal.vertebrae_beside_metal(labels.array, ct.array, ct.spacing_mm[::-1])
    messages = messages + metal.metal_note(beside_metal)
    work["beside_metal"] = [anatomy.vertebra(v).name for v in beside_metal]
    timings["output"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    report(progress, "done", 1.0, f"{len(records)} vertebrae")
    return SpineResult(
        labels,
        records,
        not records,
        timings,
        device_name,
        messages,
        (walk.end_above, walk.end_below),
        work,
        check,
        names.anchors,
    )


# ----------------------------------------------------- read: the CT and the networks


# Voxels thicker than this along one axis reach stage 2 blurred along it: its outlines are
# less exact there (benchmarks/accuracy.py, rows by slices: Dice of whole vertebrae 95.5 %
# under 1.2 mm slices, 92.5 % at 2.6-3 mm, with the shipped nets).
THICK_VOXEL_MM = 2.0


def input_notes(ct: Image) -> list[str]:
    """What a user should know about the input's grid when reading the result."""
    thickest = max(ct.spacing_mm)
    if thickest <= THICK_VOXEL_MM:
        return []
    return [
        f"{thickest:.1f} mm voxels along one axis: outlines are less exact than on thin "
        "slices (the networks work at 1 mm)"
    ]


_MODEL_CACHE: dict[tuple, Any] = {}


def load_runners(settings: SegmentSettings):
    """Stage-1 and stage-2 NetRunners on the chosen device (cached per file and device)."""
    import torch

    from SpineLabelerLib import device as devices

    torch.set_num_threads(max(1, int(settings.threads)))
    dev, messages = devices.resolve_device(settings.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    weights = Path(settings.weights_dir)
    run1, run2 = (_runner(weights / f"{kind}.pt", kind, dev) for kind in ("stage1", "stage2"))
    return run1, run2, devices.describe(dev), messages


def load_outline_runner(settings: SegmentSettings):
    """The stage-2 NetRunner of ``settings.outline_weights_dir`` (cached like the others)."""
    from SpineLabelerLib import device as devices

    dev, _ = devices.resolve_device(settings.device)
    return _runner(Path(settings.outline_weights_dir) / "stage2.pt", "stage2", dev)


def _runner(path: Path, kind: str, dev):
    """A NetRunner for the ``kind`` net in ``path`` on ``dev``, with the spacing and patch it
    was trained at."""
    from SpineLabelerLib import device as devices
    from SpineLabelerLib import nets

    activation, pads = {"stage1": ("softmax", (-1.0,)), "stage2": ("sigmoid", (-1.0, 0.0))}[kind]
    key = (str(path), path.stat().st_mtime if path.exists() else None, str(dev))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = devices.optimize_for_inference(nets.load_model(path, kind), dev)
    model = _MODEL_CACHE[key]
    runner = devices.NetRunner(model, dev, activation, pads, model.config.multiple)
    trained = (getattr(model, "weights_meta", {}) or {}).get("config") or {}
    spacing = trained.get("spacing_mm") if isinstance(trained, dict) else None
    runner.trained_spacing_mm = float(spacing) if isinstance(spacing, (int, float)) else None
    size = trained.get("size_kji") if isinstance(trained, dict) else None
    runner.trained_patch_kji = tuple(int(n) for n in size) if size and len(size) == 3 else None
    return runner


def load_level_head(settings: SegmentSettings, runner) -> tuple[Any, list[str]]:
    """The level head fit to the stage-2 net ``runner`` holds, or None with a note why
    (None alone for a runner that holds no network to read features from)."""
    model = getattr(runner, "model", None)
    if not settings.use_level_head or model is None:
        return None, []
    from SpineLabelerLib import level_head, nets

    path = Path(settings.weights_dir) / "level_head.pt"
    if not path.is_file():
        return None, [
            f"no level head ({path.name}) beside the stage-2 weights: the count is not "
            "checked against the vertebrae's look"
        ]
    try:
        return level_head.load_level_head(path, getattr(model, "weights_sha256", "")), []
    except nets.ModelFileError as exc:
        return None, [f"the count is not checked against the vertebrae's look: {exc}"]


# --------------------------------------------------------------------------- stage 1


def stage1_spacing(settings: SegmentSettings, runner) -> float:
    """Stage-1 grid spacing (mm): the setting, else what the network was trained at."""
    if settings.stage1_spacing_mm is not None:
        return float(settings.stage1_spacing_mm)
    trained = getattr(runner, "trained_spacing_mm", None)
    return float(trained) if trained else preprocess.STAGE1_SPACING_MM


def run_stage1(
    ct: Image, runner, settings: SegmentSettings, progress=None, cancel=None
) -> stage1.Stage1Result:
    """Stage 1 on the whole CT: canonical grid at ``stage1_spacing_mm``, windows, cleaning."""
    spacing = stage1_spacing(settings, runner)
    canon = preprocess.to_canonical(ct, spacing)
    volume = preprocess.normalize_hu(canon.array)[None]
    probs = stage1.sliding_window_probabilities(
        volume, runner, 4, settings.stage1_window_kji, settings.stage1_overlap, progress, cancel
    )
    # argmax: a false spine voxel costs more than a missed one (stage 2 fills in the
    # vertebrae along the centre line, but can only walk where stage 1 says spine is)
    classes = canon.with_array(np.argmax(probs, axis=0).astype(np.uint8))
    return stage1.summarize(classes, settings.cleaning)


# ------------------------------------------------------------------------------ crop


def spine_crop_box(ct: Image, s1: stage1.Stage1Result, margin_mm) -> tuple[np.ndarray, np.ndarray]:
    """The spine box plus margin, inside the CT's extent grown by 2 mm (so that a face of the
    crop that is the CT's edge holds a layer of outside voxels: where cut vertebrae touch)."""
    box = s1.boxes["spine"]
    lo = np.asarray(box.min_lps) - np.asarray(margin_mm)
    hi = np.asarray(box.max_lps) + np.asarray(margin_mm)
    ct_lo, ct_hi = preprocess.physical_bounds_lps(ct)
    return np.maximum(lo, ct_lo - 2.0), np.minimum(hi, ct_hi + 2.0)


def covering_slices(
    ct: Image, box_lps: tuple[np.ndarray, np.ndarray], pad_voxels: int = 2
) -> tuple[slice, slice, slice]:
    """``(k, j, i)`` slices of ``ct``'s array whose voxels cover an LPS box (mm)."""
    lo, hi = (np.asarray(b, float) for b in box_lps)
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    ijk = lps_to_index(ct, corners)
    size = np.array(ct.size_ijk)
    start = np.clip(np.floor(ijk.min(axis=0)).astype(int) - pad_voxels, 0, size - 1)
    stop = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + pad_voxels + 1, start + 1, size)
    return tuple(slice(int(a), int(b)) for a, b in zip(start[::-1], stop[::-1]))  # type: ignore[return-value]


def covering_subimage(
    ct: Image, box_lps: tuple[np.ndarray, np.ndarray], pad_voxels: int = 2
) -> Image:
    """The part of ``ct`` (a view, no copy) whose voxels cover an LPS box (mm)."""
    return subimage(ct, covering_slices(ct, box_lps, pad_voxels))


def fov_mask(ct: Image, grid: Image, chunk: int = 64) -> np.ndarray:
    """Bool ``(K, J, I)`` on ``grid``: True where a voxel centre lies inside ``ct``'s voxels.

    Each CT index is an affine function of the grid index; it is evaluated only over the grid
    axes it depends on (an axis-aligned CT's index along one axis is a single row): 0.03 s
    instead of 0.8 s for a full per-voxel map of a clinical crop, with the same floats."""
    n = np.array(ct.size_ijk, float)
    # grid index (i, j, k) -> ct continuous index, one affine map.
    a = np.linalg.inv(ijk_to_lps_matrix(ct)) @ ijk_to_lps_matrix(grid)
    out = np.ones(grid.array.shape[:3], bool)
    n_k, n_j, n_i = out.shape
    ii = np.arange(n_i, dtype=float)[None, None, :]
    jj = np.arange(n_j, dtype=float)[None, :, None]
    for k0 in range(0, n_k, chunk):  # slabs: an oblique map is a full float array per slab
        kk = np.arange(k0, min(k0 + chunk, n_k), dtype=float)[:, None, None]
        for d in range(3):
            # ((i a0 + j a1) + a3) + k a2, in that order, zero terms left out: the same floats
            idx = np.float64(0.0)
            if a[d, 0] != 0:
                idx = ii * a[d, 0]
            if a[d, 1] != 0:
                idx = idx + jj * a[d, 1]
            idx = idx + a[d, 3]
            if a[d, 2] != 0:
                idx = idx + kk * a[d, 2]
            out[k0 : k0 + chunk] &= (idx >= -0.5) & (idx <= n[d] - 0.5)
    return out


# --------------------------------------------------------------------------- stage 2


def run_stage2(
    ct: Image,
    s1: stage1.Stage1Result,
    runner,
    settings: SegmentSettings,
    progress=None,
    cancel=None,
):
    """The walk on the 1 mm canonical crop of the spine box: (crop grid, FOV mask, WalkResult)."""
    box = spine_crop_box(ct, s1, settings.box_margin_mm)
    source = covering_subimage(ct, box)
    crop_hu = preprocess.to_canonical(source, preprocess.STAGE2_SPACING_MM, box)
    crop = crop_hu.with_array(preprocess.normalize_hu(crop_hu.array))
    valid = fov_mask(ct, crop)
    spine = s1.boxes["spine"]
    box_z = (spine.min_lps[2], spine.max_lps[2])
    walk_settings = settings.walk
    if walk_settings.patch_kji is None:
        patch = getattr(runner, "trained_patch_kji", None) or preprocess.STAGE2_PATCH_KJI
        walk_settings = replace(walk_settings, patch_kji=tuple(patch))

    def predict(ct_patch: np.ndarray, memory: np.ndarray) -> np.ndarray:
        return runner(np.stack([ct_patch, memory]))[0]

    def walk_from(z0: float, span) -> stage2.WalkResult:
        step = stage2.TYPICAL_STEP_MM[_region_at(s1, z0)]
        expected = max(1, int(round((box_z[1] - box_z[0]) / step)))
        start = s1.centerline.point_at(z0)
        return stage2.walk(
            crop,
            valid,
            predict,
            s1.centerline,
            start,
            step,
            box_z,
            walk_settings,
            span,
            cancel,
            expected,
        )

    progress = _monotonic(progress)
    z0, why = choose_start(s1)
    walk = walk_from(z0, progress)
    middle = 0.5 * (box_z[0] + box_z[1])
    fewest = settings.restart_below * (box_z[1] - box_z[0]) / max(stage2.TYPICAL_STEP_MM.values())
    if len(walk.vertebrae) < fewest and abs(z0 - middle) > min(stage2.TYPICAL_STEP_MM.values()):
        # A start on a wrong anchor (stage 1 called a region boundary where there is none)
        # can leave the walk stuck on one fragment; a column that long holds more vertebrae.
        retry = walk_from(middle, progress)
        predictions = walk.predictions + retry.predictions
        if len(retry.vertebrae) > len(walk.vertebrae):
            why = f"middle of the spine region (from the {why}: {len(walk.vertebrae)} found)"
            walk = retry
        walk.predictions = predictions
    walk.start = why
    return crop, valid, walk


def choose_start(result: stage1.Stage1Result) -> tuple[float, str]:
    """S coordinate (mm) to start the walk at and why (see the module doc)."""
    boundaries = dict(stage1.region_boundaries_z(result.classes))
    # Half a vertebra below the boundary (on L1 / T1), not on the disc itself, where two
    # vertebrae would be equally near the first patch's centre; above it (on T12 / C7)
    # when the region below ends within a vertebra (cut by the field of view).
    pairs = (("T/L", "thoracic", "lumbar"), ("C/T", "cervical", "thoracic"))
    for name, above, below in pairs:
        if name in boundaries:
            z = boundaries[name]
            step_below = stage2.TYPICAL_STEP_MM[below]
            if z - result.boxes[below].min_lps[2] >= step_below:
                return z - 0.5 * step_below, f"{name} boundary"
            return z + 0.5 * stage2.TYPICAL_STEP_MM[above], f"{name} boundary"
    regions = result.regions_present()
    spine = result.boxes["spine"]
    if regions == ["cervical"]:
        return spine.max_lps[2] - 10.0, "top of the cervical spine (C1 anchor)"
    if regions == ["lumbar"]:
        return spine.min_lps[2] + 15.0, "bottom of the lumbar spine (sacrum anchor)"
    return 0.5 * (spine.min_lps[2] + spine.max_lps[2]), "middle of the spine region"


def _region_at(result: stage1.Stage1Result, z: float) -> str:
    """The region whose box holds ``z``, the most cranial first: the walk's first step.

    The boxes overlap near a boundary, so a start just below the T/L boundary takes the
    thoracic step (23 mm), shorter than the lumbar one: the walk's safe side, since a step
    guessed short cannot skip a vertebra (stage2._walk_one_way). Measured and not used
    (2026-12-07): the region stage 1 gives most voxels within 5 mm of ``z`` changed the
    first step on 9 of the first 13 development cases (lumbar at the T/L start) and lost
    verse005's L4, naming the rest a level high."""
    for region in anatomy.REGIONS:
        box = result.boxes.get(region)
        if box is not None and box.min_lps[2] <= z <= box.max_lps[2]:
            return region
    return "thoracic"


def _monotonic(progress: ProgressCallback | None) -> ProgressCallback | None:
    """A callback that never reports a fraction below one it reported before (a re-walk)."""
    if progress is None:
        return None
    highest = [0.0]

    def forward(stage: str, fraction: float, message: str) -> None:
        highest[0] = max(highest[0], fraction)
        progress(stage, highest[0], message)

    return forward


# --------------------------------------- evidence for the column rules and the names


def stage1_votes(
    instances: np.ndarray, classes_on_crop: np.ndarray, indices: list[int]
) -> list[tuple[float, float, float]]:
    """Stage-1 voxels (cervical, thoracic, lumbar) inside each instance, in one pass."""
    inside = instances > 0  # a few per cent of the crop
    pairs = instances[inside].astype(np.int64) * 4 + classes_on_crop[inside]
    counts = np.bincount(pairs, minlength=4 * (max(indices, default=0) + 1)).reshape(-1, 4)
    return [(float(counts[i, 1]), float(counts[i, 2]), float(counts[i, 3])) for i in indices]


def read_levels(
    head, runner, crop: Image, walk: stage2.WalkResult, progress=None, cancel=None
) -> list:
    """The level head's ratios per walked vertebra (None each where there is no head)."""
    if head is None:
        return [None] * len(walk.vertebrae)
    from SpineLabelerLib import level_head

    def before_each(n: int, total: int) -> None:
        if cancel is not None:
            cancel.check()
        report(progress, "identify", n / total, f"checking the count: vertebra {n + 1}/{total}")

    patch = runner.trained_patch_kji or preprocess.STAGE2_PATCH_KJI
    ratios = level_head.walk_level_ratios(
        runner.model,
        runner.device,
        head,
        crop.array,
        walk.instances.array,
        [v.index for v in walk.vertebrae],
        lps_to_index(crop, np.array([v.centroid_lps for v in walk.vertebrae]))[:, ::-1],
        tuple(patch),
        before_each,
    )
    return [None if r is None else tuple(float(x) for x in r) for r in ratios]


def _patch_predictor(runner):
    """(predict, patch): ``runner``'s stage-2 net as a (CT patch, memory patch) ->
    probability function, and the patch (K, J, I) it was trained at."""

    def predict(ct_patch: np.ndarray, memory: np.ndarray) -> np.ndarray:
        return runner(np.stack([ct_patch, memory]))[0]

    patch = getattr(runner, "trained_patch_kji", None) or preprocess.STAGE2_PATCH_KJI
    return predict, tuple(patch)


def outline_with(
    runner,
    crop: Image,
    valid: np.ndarray,
    walk: stage2.WalkResult,
    mode: outline_pass.OutlineMode,
    reach: Sequence[outline_pass.Reach | None],
    progress=None,
    cancel=None,
) -> int:
    """The walked vertebrae outlined again by ``runner``'s stage-2 net (outline_pass.py), each
    as far as ``reach`` says, in place in the walk; returns how many took the new outline (or
    grew)."""

    def before_each(n: int, total: int) -> None:
        if cancel is not None:
            cancel.check()
        lo, hi = _SPANS["outline"]
        report(
            progress,
            "outline",
            lo + (hi - lo) * n / total,
            f"outlining vertebra {n + 1}/{total} again",
        )

    predict, patch = _patch_predictor(runner)
    return outline_pass.outline_again(
        predict,
        crop.array,
        valid,
        walk.instances.array,
        walk.probability.array,
        [v.index for v in walk.vertebrae],
        lps_to_index(crop, np.array([v.centroid_lps for v in walk.vertebrae]))[:, ::-1],
        patch,
        before_each,
        mode,
        reach,
    )


def judge_pieces_with(
    runner,
    crop: Image,
    valid: np.ndarray,
    walk: stage2.WalkResult,
    votes: list,
    classes_on_crop: np.ndarray,
    fraction: float,
) -> tuple[int, int]:
    """The column's suspect pieces judged by ``runner``'s net (same_vertebra.py), in place:
    those it outlines as one vertebra with a neighbour joined, then each piece it outlines as
    a vertebra no mask holds grown into it; returns (masks folded away, pieces grown)."""
    suspects = column.suspect_pieces(walk, fraction, votes)
    if not any(suspects):
        return 0, 0

    predict, patch = _patch_predictor(runner)
    centres = lps_to_index(crop, np.array([v.centroid_lps for v in walk.vertebrae]))[:, ::-1]
    instances = walk.instances.array
    outlines = same_vertebra.SeededOutlines(
        predict,
        crop.array,
        valid,
        instances,
        {v.index: c for v, c in zip(walk.vertebrae, centres)},
        patch,
    )
    order = [v.index for v in walk.vertebrae]
    cut = [v.partial for v in walk.vertebrae]
    pairs = same_vertebra.same_vertebra_pairs(outlines, instances, order, suspects, cut)
    joined = column.join_pairs(walk, votes, pairs)
    grown = 0
    voxel_ml = float(np.prod(crop.spacing_mm)) / 1000.0
    for at, suspect in enumerate(column.suspect_pieces(walk, fraction, votes)):
        if not suspect:
            continue
        index = walk.vertebrae[at].index
        whole = fraction * column.largest_near_ml(walk.vertebrae, at) / voxel_ml
        outline = outlines(index)
        voxels = same_vertebra.whole_vertebra_of(outline, instances, index, whole)
        if voxels is None or not voxels.any():
            continue
        column.grow_vertebra(walk, at, outline.region, voxels, outline.probability, valid)
        votes[at] = stage1_votes(instances, classes_on_crop, [index])[0]
        grown += 1
    return joined, grown


# ----------------------------------------------------------------------- output grid


def labels_to_input_grid(
    labels_crop: Image,
    ct: Image,
    probability: Image | None = None,
    edge: bone_edges.EdgeSnapSettings | None = None,
    bone: bone_edges.BoneEdgeSettings | None = None,
) -> tuple[Image, Image]:
    """Crop labels onto the CT's own grid: (whole grid, the covered part).

    With the walk's ``probability`` (``stage2.WalkResult``) each boundary lies where the
    label's probability, linearly interpolated, crosses 0.5, between the 1 mm voxels: on a
    0.6 mm CT, copying 1 mm voxels by nearest neighbour costs a perfect mask 3-5 Dice
    points. Without it, nearest neighbour. Only the part of the CT grid around the labelled
    voxels is resampled (a clinical CT has ~200 M voxels, the spine a few per cent of them);
    the rest is 0. Then, with ``edge``, each label takes the voxel layer beside it that is
    its bone going on, and with ``bone`` grows over the CT's bone beside it (bone_edges.py);
    last, each takes what it encloses (cavities.py: the marrow the net left out).
    """
    out = np.zeros(ct.array.shape[:3], np.uint8)
    bbox = bounding_box(labels_crop.array > 0)
    if bbox is None:
        empty = subimage(ct, tuple(slice(0, 1) for _ in range(3)))  # type: ignore[arg-type]
        return ct.with_array(out), empty.with_array(out[:1, :1, :1])
    slices = covering_slices(ct, _physical_box(labels_crop, bbox))
    target = subimage(ct, slices)
    if probability is None:
        out[slices] = preprocess.to_input_grid(labels_crop, target).array
    else:
        out[slices] = _interpolated_labels(labels_crop, probability, target)
    if edge is not None or bone is not None:
        margin = 0
        if edge is not None:
            margin += edge.around_voxels
        if bone is not None:
            margin += int(np.ceil(bone.reach_mm / min(ct.spacing_mm))) + 1
        slices = grow_box(slices, margin, ct.array.shape[:3])  # type: ignore[assignment]
        target = subimage(ct, slices)
        spacing_kji = target.spacing_mm[::-1]
        part = out[slices]
        if edge is not None:
            part = bone_edges.snap_to_edge(part, target.array, spacing_kji, edge)
        if bone is not None:
            part = bone_edges.grow_to_bone(part, target.array, spacing_kji, bone)
        out[slices] = part
    out[slices] = cavities.fill_cavities(out[slices])
    return ct.with_array(out), target.with_array(out[slices])


def _physical_box(image: Image, box: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The LPS box (mm) that the voxels of ``box`` (index slices of ``image``) cover."""
    lo_kji = np.array([sl.start for sl in box], float) - 0.5
    hi_kji = np.array([sl.stop - 1 for sl in box], float) + 0.5
    corners = index_to_lps(image, np.array([lo_kji[::-1], hi_kji[::-1]]))
    return corners.min(axis=0), corners.max(axis=0)


def _interpolated_labels(
    labels_crop: Image, probability: Image, target: Image, rim: int = 2
) -> np.ndarray:
    """Labels on ``target`` from each label's field: its probability on its own voxels
    (>= 0.5), below 0.5 on the free voxels around them, 0 on other labels' voxels; linearly
    resampled, a voxel takes the label whose field is highest there, if at least 0.5 (half
    way between a voxel in and one out counts in). At the crop's voxel centres this gives
    back the crop's labels."""
    labels, stored = labels_crop.array, probability.array
    out = np.zeros(target.array.shape[:3], np.uint8)
    best = np.zeros(out.shape, np.uint8)  # the winning field, rounded: as small as ``out``
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        grown = grow_box(box, rim, labels.shape)
        here, value = labels[grown], stored[grown]
        mine = here == label
        field = np.minimum(value, 127).astype(np.float32)
        field[mine] = np.maximum(value[mine], 128)
        field[(here != 0) & ~mine] = 0.0
        where = covering_slices(target, _physical_box(labels_crop, grown), pad_voxels=1)
        onto = subimage(target, where)
        sampled = resample_onto(subimage(labels_crop, grown).with_array(field), onto).array
        wins = (sampled >= 127.5) & (sampled > best[where])  # 0.5 on the stored x 255 scale
        out[where][wins] = label
        best[where][wins] = np.round(sampled[wins])
    return out


# ---------------------------------------------------------------------------- report


def _records(
    labels: Image,
    walk: stage2.WalkResult,
    names: identify.Identification,
    evidence: list[identify.VertebraEvidence],
) -> list[VertebraRecord]:
    """Records from the final masks on the input grid (``labels``: the part holding them)."""
    centroids, counts = centroids_and_counts(labels)
    voxel_ml = float(np.prod(labels.spacing_mm)) / 1000.0
    records = []
    for v, label, conf, ev in zip(walk.vertebrae, names.labels, names.confidences, evidence):
        if label not in centroids:  # vanished on a coarse input grid
            continue
        votes = np.asarray(ev.region_votes, float) / max(float(sum(ev.region_votes)), 1.0)
        records.append(
            VertebraRecord(
                label=int(label),
                name=anatomy.vertebra(int(label)).name,
                partial=bool(v.partial),
                confidence=float(conf),
                volume_ml=round(float(counts[label]) * voxel_ml, 3),
                centroid_lps=tuple(round(float(c), 3) for c in centroids[label]),
                region_votes=tuple(round(float(x), 3) for x in votes),
                rib_score=None if ev.rib_score is None else round(float(ev.rib_score), 3),
                looks_like=identify.level_read(ev),
            )
        )
    return records


def _no_spine(
    ct: Image,
    timings: dict[str, float],
    device: str,
    messages: list[str],
    why: str,
    work: dict[str, Any],
) -> SpineResult:
    empty = ct.with_array(np.zeros(ct.array.shape[:3], np.uint8))
    return SpineResult(empty, [], True, timings, device, [*messages, why], ("none", "none"), work)


# --------------------------------------------------------------------------- helpers


def _span(progress: ProgressCallback | None, name: str) -> ProgressCallback | None:
    """A callback that maps a stage's own 0..1 onto its overall span."""
    if progress is None:
        return None
    lo, hi = _SPANS[name]
    return lambda stage, fraction, message: progress(stage, lo + (hi - lo) * fraction, message)
