"""Stage 2: the iterative instance walk (ARCHITECTURE "Stage-2 protocol").

Works on the spine region's 1 mm canonical crop (axis-aligned LPS, k to Superior). A
*patch predictor* maps a (CT, memory) patch to the probability that each voxel belongs to
the vertebra nearest the patch centre that is not in memory. The walk:

1. segments the start vertebra: predict at a point, re-centre on the predicted mask's
   centroid, repeat until the centroid moves less than ``converge_mm`` (at most
   ``max_iterations`` predictions); the mask then goes into memory;
2. walks cranially, then caudally, from the start: the next patch centre is the previous
   centroid plus one vertebra step along the centre line (the step is the last measured
   centroid distance, or the typical step of the region at first);
3. stops in a direction when the prediction there is empty or lies past stage 1's spine
   box (the spine ends: skull or sacrum, "spine", when that place is inside the field of
   view, else "fov"; below, an empty prediction where the CT goes on is "unseen", since the
   sacrum shows as a mask past the box), when the next centre leaves the field of view, or
   when a mask does not move on along the spine ("stalled").

A mask that touches the edge of the CT's field of view is flagged ``partial``. All arrays are
``(K, J, I)`` on the crop grid; points are LPS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
from scipy import ndimage

from SpineLabelerLib.image import Image, bounding_box, grow_box, index_to_lps, lps_to_index
from SpineLabelerLib.progress import CancelFlag, ProgressCallback, report
from SpineLabelerLib.stage1 import Centerline

# (CT patch in [-1, 1], memory patch 0/1), both (K, J, I) float32 -> probability (K, J, I).
PatchPredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]

CT_FILL = -1.0  # normalized value of air (-512 HU and below): what lies outside the CT
TYPICAL_STEP_MM = {"cervical": 16.0, "thoracic": 23.0, "lumbar": 33.0}


@dataclass(frozen=True)
class WalkSettings:
    """Settings of the walk (mm, voxels at 1 mm)."""

    patch_kji: tuple[int, int, int] | None = (64, 96, 96)  # None: decided by the caller
    max_iterations: int = 4
    converge_mm: float = 2.0  # the centroid moved less: converged
    accept_mm: float = 6.0  # ... or less than this and the mask is well inside the patch
    threshold: float = 0.5
    min_volume_ml: float = 2.0  # a smaller prediction counts as empty (C1 is ~8 ml)
    min_partial_volume_ml: float = 0.02  # ... unless the field of view's edge cuts it
    min_advance: float = 0.4  # a new centroid must move on at least this many steps
    # ... but a sliver cut by the view's edge, apart from every mask, may lie this far behind
    level_steps: float = 0.25
    lead: float = 0.75  # the next patch centre lies this many steps on from the last centroid
    gap_factor: float = 1.6  # a longer step than this (x the usual one) hides a missed vertebra
    box_tolerance_mm: float = 0.0  # a centroid past stage 1's spine box is no vertebra
    # a second piece of the prediction at least this share of the largest, level with it, is
    # the same vertebra (an arch that thin pedicles no longer join to its body)
    min_piece_fraction: float = 0.2
    # a find the view did not cut, under this share of the last vertebra's volume, is a piece
    # (an arch the net cut off its body): kept for the pipeline to fold into its vertebra, but
    # the walk looks again from the last whole one instead of stepping on from it
    piece_fraction: float = 0.25
    max_pieces_in_row: int = 2
    max_vertebrae: int = 28
    step_limits_mm: tuple[float, float] = (10.0, 50.0)


@dataclass
class WalkedVertebra:
    """One segmented vertebra: its mask lives in ``WalkResult.instances`` under ``index``."""

    index: int  # instance value in the instance map, 1..N in the order found
    centroid_lps: np.ndarray
    volume_ml: float
    partial: bool
    iterations: int
    converged: bool
    piece: bool = False  # under piece_fraction of the whole vertebra before it (_is_piece_beside)


@dataclass
class WalkResult:
    """Instances on the crop grid and the vertebrae ordered cranial -> caudal."""

    instances: Image  # int16 (K, J, I), 0 background, WalkedVertebra.index elsewhere
    vertebrae: list[WalkedVertebra] = field(default_factory=list)
    end_above: str = "none"  # why the walk stopped: "spine" | "fov" | "stalled" | "limit"
    # ... or, below, "unseen": nothing found where the CT goes on (no sign of the sacrum)
    end_below: str = "none"
    predictions: int = 0
    start: str = ""  # where the walk began and why (set by the caller, for the report)
    # uint8 (K, J, I): the net's probability x 255 on and around each accepted mask (0 where
    # never predicted); >= 128 on every instance voxel. The output is resampled from it so that
    # a boundary falls between the 1 mm voxels (``pipeline.labels_to_input_grid``).
    probability: Image | None = None


def _patch_slices(center_kji: np.ndarray, patch: tuple[int, int, int], shape: tuple[int, ...]):
    """Source slices into a volume of ``shape`` and target slices into the patch."""
    src, dst = [], []
    for c, n, size in zip(center_kji, patch, shape):
        lo = int(np.round(c)) - n // 2
        a, b = max(lo, 0), min(lo + n, size)
        if b <= a:
            return None
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    return tuple(src), tuple(dst)


class _Prediction(NamedTuple):
    """One prediction of the next vertebra, on the patch grid."""

    mask: np.ndarray  # bool: the kept pieces
    slices: tuple  # (source slices into the crop, target slices into the patch)
    box: tuple[slice, ...]  # the mask's bounding box in the patch
    probability: np.ndarray  # float32: the net's output over the whole patch


def _extract(volume: np.ndarray, slices, patch, fill: float) -> np.ndarray:
    out = np.full(patch, fill, np.float32)
    src, dst = slices
    out[dst] = volume[src]
    return out


@dataclass
class _Walker:
    ct: Image  # normalized CT, 1 mm canonical crop
    valid: np.ndarray  # bool (K, J, I): inside the original CT's field of view
    predict: PatchPredictor
    centerline: Centerline
    settings: WalkSettings
    instances: np.ndarray = field(init=False)
    predictions: int = 0

    def __post_init__(self) -> None:
        self.instances = np.zeros(self.ct.array.shape, np.int16)
        self.probability = np.zeros(self.ct.array.shape, np.uint8)
        self.voxel_ml = float(np.prod(self.ct.spacing_mm)) / 1000.0
        self.count = 0
        self.regions: dict[int, tuple[slice, ...]] = {}  # instance -> crop slices holding it

    def to_kji(self, lps: np.ndarray) -> np.ndarray:
        return lps_to_index(self.ct, lps)[0][::-1]

    def inside_fov(self, lps: np.ndarray) -> bool:
        k, j, i = np.round(self.to_kji(lps)).astype(int)
        shape = self.valid.shape
        return (
            0 <= k < shape[0]
            and 0 <= j < shape[1]
            and 0 <= i < shape[2]
            and bool(self.valid[k, j, i])
        )

    def predict_mask(self, center_lps: np.ndarray) -> _Prediction | None:
        """The predicted next-vertebra mask near ``center_lps``, or None. Its box is where the
        rest of the walk's per-patch work is done: a vertebra fills a few per cent of a patch."""
        patch = self.settings.patch_kji
        slices = _patch_slices(self.to_kji(center_lps), patch, self.ct.array.shape)
        if slices is None:
            return None
        src, dst = slices
        memory = np.zeros(patch, np.float32)
        memory[dst] = self.instances[src] > 0
        prob = self.predict(_extract(self.ct.array, slices, patch, CT_FILL), memory)
        self.predictions += 1
        inside = np.zeros(patch, bool)
        inside[dst] = True
        candidates = (prob >= self.settings.threshold) & (memory < 0.5) & inside
        box = bounding_box(candidates)
        if box is None:
            return None
        comp, _ = ndimage.label(candidates[box])  # every component lies in the box
        sizes = np.bincount(comp.ravel())[1:]
        keep, own = _pieces_of_one_vertebra(comp, sizes, self.settings.min_piece_fraction)
        mask = np.zeros(patch, bool)
        mask[box] = keep[comp]
        mask_box = tuple(slice(b.start + o.start, b.start + o.stop) for b, o in zip(box, own))
        found = _Prediction(mask, slices, mask_box, prob)
        volume_ml = float(sizes[keep[1:]].sum()) * self.voxel_ml
        if volume_ml < self.settings.min_volume_ml and (
            volume_ml < self.settings.min_partial_volume_ml or not self.touches_fov_edge(found)
        ):
            return None  # a small blob inside the view is noise; at its edge, a cut vertebra
        return found

    def centroid_lps(self, found: _Prediction) -> np.ndarray:
        mask, (src, dst), box = found.mask, found.slices, found.box
        points = np.argwhere(mask[box])  # the box lies inside dst: the mask is cut to it
        # integer sums: the same float mean as over the whole patch, at a fraction of the work
        total = points.sum(axis=0) + len(points) * np.array(
            [b.start - d.start for b, d in zip(box, dst)]
        )
        kji = total / len(points) + np.array([s.start for s in src])
        return index_to_lps(self.ct, kji[::-1][None])[0]

    def touches_patch_border(self, found: _Prediction, margin: int = 2) -> bool:
        """Whether the mask reaches a patch face that lies inside the crop (so it may be cut
        by the patch, not by the field of view)."""
        (src, dst), box = found.slices, found.box
        for axis in range(3):
            if src[axis].start > 0 and box[axis].start < dst[axis].start + margin:
                return True
            stop = box[axis].stop - 1
            if src[axis].stop < self.ct.array.shape[axis] and stop >= dst[axis].stop - margin:
                return True
        return False

    def touches_fov_edge(self, found: _Prediction) -> bool:
        """Whether the mask touches a voxel next to the outside of the CT's field of view
        (looked at in the mask's box grown by the one voxel a neighbour can be away)."""
        mask, (src, dst), box = found.mask, found.slices, found.box
        offset = [s.start - d.start for s, d in zip(src, dst)]  # patch -> crop index
        shape = self.valid.shape
        grown = tuple(
            slice(max(o + b.start - 1, 0), min(o + b.stop + 1, n))
            for o, b, n in zip(offset, box, shape)
        )
        valid = self.valid[grown]
        edge = ndimage.binary_dilation(~valid) & valid
        placed = np.zeros(valid.shape, bool)
        inner = tuple(
            slice(o + b.start - g.start, o + b.stop - g.start)
            for o, b, g in zip(offset, box, grown)
        )
        placed[inner] = mask[box]
        return bool((placed & edge).any())

    def segment_at(self, center_lps: np.ndarray) -> WalkedVertebra | None:
        """Predict, re-centre on the mask, repeat until converged; add the mask to memory."""
        s = self.settings
        best = None
        converged = False
        iterations = 0
        while iterations < s.max_iterations:
            iterations += 1
            found = self.predict_mask(center_lps)
            if found is None:
                break
            best = found
            new_center = self.centroid_lps(found)
            moved = float(np.linalg.norm(new_center - center_lps))
            center_lps = new_center
            if moved < s.converge_mm or (
                moved < s.accept_mm and not self.touches_patch_border(found)
            ):
                converged = True
                break
        if best is None:
            return None
        mask, (src, dst) = best.mask, best.slices
        self.keep_probability(best)
        self.count += 1
        index = self.count
        self.instances[src][mask[dst]] = index
        self.regions[index] = src
        return WalkedVertebra(
            index=index,
            centroid_lps=self.centroid_lps(best),
            volume_ml=float(mask.sum()) * self.voxel_ml,
            partial=self.touches_fov_edge(best),
            iterations=iterations,
            converged=converged,
        )

    def keep_probability(self, found: _Prediction, rim: int = 2) -> None:
        """Store the probability on the accepted mask and in ``rim`` voxels around it (before
        the mask enters memory): where the output grid is finer than 1 mm, the boundary is
        placed between voxels by interpolating it. Voxels of other vertebrae keep theirs; on
        free voxels near two masks the higher value stays (it is below 0.5 for both)."""
        (src, dst), box = found.slices, found.box
        patch_part, crop_part = [], []
        for b, s, d in zip(box, src, dst):
            lo, hi = max(b.start - rim, d.start), min(b.stop + rim, d.stop)
            patch_part.append(slice(lo, hi))
            crop_part.append(slice(s.start + lo - d.start, s.start + hi - d.start))
        value = np.round(found.probability[tuple(patch_part)] * 255.0).astype(np.uint8)
        mine = found.mask[tuple(patch_part)]
        stored = self.probability[tuple(crop_part)]
        free = (self.instances[tuple(crop_part)] == 0) & ~mine
        stored[free] = np.maximum(stored[free], value[free])
        stored[mine] = np.maximum(value[mine], 128)

    def is_sliver(self, vertebra: WalkedVertebra) -> bool:
        """A piece kept only because the field of view's edge cut it (``min_partial_volume_ml``)."""
        return vertebra.partial and vertebra.volume_ml < self.settings.min_volume_ml

    def stands_apart(self, vertebra: WalkedVertebra, gap: int = 2) -> bool:
        """Whether no other vertebra's voxel lies within ``gap`` voxels of this one's mask."""
        region = self.instances[self.regions[vertebra.index]]
        box = bounding_box(region == vertebra.index)
        if box is None:
            return True
        near = region[grow_box(box, gap, region.shape)]
        mine = near == vertebra.index
        reach = ndimage.binary_dilation(mine, np.ones((3, 3, 3), bool), iterations=gap)
        return not (reach & (near != 0) & ~mine).any()

    def drop(self, vertebra: WalkedVertebra) -> None:
        where = self.regions.pop(vertebra.index)
        region = self.instances[where]
        gone = region == vertebra.index
        region[gone] = 0
        self.probability[where][gone] = 0


def _pieces_of_one_vertebra(
    comp: np.ndarray, sizes: np.ndarray, fraction: float
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Lookup (component label -> kept) for a labelled prediction, and the kept pieces'
    bounding box in ``comp``: the largest piece, and every piece at least ``fraction`` of
    its size whose cranio-caudal extent (axis 0) lies at least half within the largest's:
    a body and its arch are level, a neighbour is not."""
    keep = np.zeros(len(sizes) + 1, bool)
    largest = int(np.argmax(sizes)) + 1
    keep[largest] = True
    boxes = ndimage.find_objects(comp)
    k0, k1 = boxes[largest - 1][0].start, boxes[largest - 1][0].stop
    for label, box in enumerate(boxes, start=1):
        if box is None or keep[label] or sizes[label - 1] < fraction * sizes[largest - 1]:
            continue
        overlap = min(box[0].stop, k1) - max(box[0].start, k0)
        keep[label] = overlap >= 0.5 * (box[0].stop - box[0].start)
    kept = [boxes[label - 1] for label in np.flatnonzero(keep)]
    union = tuple(
        slice(min(b[axis].start for b in kept), max(b[axis].stop for b in kept))
        for axis in range(comp.ndim)
    )
    return keep, union


def _next_center(
    walker: _Walker, prev: WalkedVertebra, step_mm: float, direction: int
) -> np.ndarray:
    tangent = walker.centerline.tangent_at(float(prev.centroid_lps[2]))
    return prev.centroid_lps + direction * step_mm * tangent


def _end(walker: _Walker, far: np.ndarray, where_ct_goes_on: str = "spine") -> str:
    """Why the walk ended here: ``where_ct_goes_on`` ("spine": skull, sacrum) when ``far``
    lies inside the field of view, else "fov"."""
    return where_ct_goes_on if walker.inside_fov(far) else "fov"


def _walk_one_way(
    walker: _Walker,
    start: WalkedVertebra,
    first_step_mm: float,
    direction: int,
    box_z: tuple[float, float],
    budget: int,
    on_found: Callable[[WalkedVertebra], None],
) -> tuple[list[WalkedVertebra], str]:
    """Vertebrae beyond ``start`` in ``direction`` (+1 cranial, -1 caudal), nearest first.

    The patch goes ``lead`` (< 1) steps on from the last centroid: the last vertebra is in
    memory, so the nearest one not in memory is the next even when the step is guessed
    short, while a step guessed long could skip one. The step is the median of the last
    three measured ones. A step much longer than that (``gap_factor``) means a vertebra was
    skipped: it is looked for half-way and put in its place. An empty prediction gets a
    second look one full step on before the walk ends there.
    """
    s = walker.settings
    found: list[WalkedVertebra] = []
    steps: list[float] = []
    prev, step = start, first_step_mm
    pieces_in_row = 0
    while True:
        if len(found) >= budget:
            return found, "limit"
        center = _next_center(walker, prev, s.lead * step, direction)
        far = _next_center(walker, prev, step, direction)
        if not (box_z[0] - 0.5 * step <= center[2] <= box_z[1] + 0.5 * step):
            return found, _end(walker, far)
        if not walker.inside_fov(center) and not walker.inside_fov(
            _next_center(walker, prev, 0.5 * step, direction)
        ):  # a cut vertebra would still show half a step on, but for a process's tip
            return _with_last_look(
                walker, prev, step, direction, box_z, found, budget, on_found
            ), "fov"
        vertebra = walker.segment_at(center)
        if vertebra is None and walker.inside_fov(far):
            vertebra = walker.segment_at(far)  # a second look one full step on
        if vertebra is None and direction < 0:
            # Nothing found below is no sign of the sacrum: stage 2 segments the sacrum's top
            # like a vertebra, which stage 1 calls no spine (29 of the 30 development walks
            # that ended on the spine). The walks seen to find nothing where the CT went on
            # had lost a vertebra (dev007's L5 round pedicle screws; verse005's L2-L3 at 3 mm,
            # whose cut L4 went unfound: named L4-L5 off the false sacrum).
            return found, _end(walker, far, "unseen")
        if vertebra is None or _beyond_box(vertebra, box_z, s.box_tolerance_mm):
            if vertebra is not None:  # e.g. the sacrum: stage 1 saw no spine there
                walker.drop(vertebra)
            return found, _end(walker, far)
        vertebra.piece = _is_piece_beside(walker, vertebra, prev)
        if vertebra.piece and pieces_in_row < s.max_pieces_in_row:
            # Stepping on from an arch would walk down the spinous processes and lose the
            # bodies; with the piece in memory, the same patch now shows the next vertebra.
            pieces_in_row += 1
            found.append(vertebra)
            on_found(vertebra)
            continue
        pieces_in_row = 0
        advance = direction * float(vertebra.centroid_lps[2] - prev.centroid_lps[2])
        if advance < s.min_advance * step:
            if prev.partial and _next_piece_at_edge(walker, prev, vertebra, advance, step):
                # An oblique edge of the field of view cuts several vertebrae: what is left
                # of the next one is a sliver whose centroid lies close to the last one's;
                # two slivers that close are scraps of one vertebra: the second is not counted.
                if walker.is_sliver(prev) and walker.is_sliver(vertebra):
                    walker.drop(vertebra)
                    return found, "fov"
                found.append(vertebra)
                on_found(vertebra)
                return _with_last_look(
                    walker, vertebra, step, direction, box_z, found, budget, on_found
                ), "fov"
            walker.drop(vertebra)
            return found, "stalled"
        measured = float(np.linalg.norm(vertebra.centroid_lps - prev.centroid_lps))
        hides_one = measured > s.gap_factor * step and not walker.is_sliver(vertebra)
        if hides_one and len(found) + 1 < budget:  # a sliver's centroid is not its vertebra's
            middle = walker.segment_at(0.5 * (prev.centroid_lps + vertebra.centroid_lps))
            if middle is not None and walker.is_sliver(middle):
                walker.drop(middle)  # a skipped vertebra is whole: this is an edge's scrap
            elif middle is not None:
                found.append(middle)
                on_found(middle)
                measured = 0.5 * measured
        found.append(vertebra)
        on_found(vertebra)
        steps.append(float(np.clip(measured, *s.step_limits_mm)))
        step = float(np.median(steps[-3:]))
        prev = vertebra
        if vertebra.partial and not walker.inside_fov(
            _next_center(walker, prev, 0.5 * step, direction)
        ):
            return _with_last_look(
                walker, prev, step, direction, box_z, found, budget, on_found
            ), "fov"


def _is_piece_beside(walker: _Walker, vertebra: WalkedVertebra, prev: WalkedVertebra) -> bool:
    """Whether ``vertebra``, which the view did not cut, is under ``piece_fraction`` of the
    last whole vertebra's volume: neighbouring levels differ by well under two times."""
    if vertebra.partial or prev.partial:
        return False
    return vertebra.volume_ml < walker.settings.piece_fraction * prev.volume_ml


def _next_piece_at_edge(
    walker: _Walker, prev: WalkedVertebra, piece: WalkedVertebra, advance: float, step: float
) -> bool:
    """Whether ``piece``, found ``advance`` mm past ``prev``, is what the view's edge left of
    the next vertebra: cut by the edge, and its centroid further on, or, beside a cut ``prev``,
    level with it (within ``level_steps`` of a step) where it is small and touches no other
    vertebra. An oblique edge can leave the next vertebra's arch tip level with the last one's
    cut body, while a scrap of the last vertebra itself lies against it. Small: a sliver, or
    under ``piece_fraction`` of ``prev`` (a thoracic spinous process hangs a level down: a
    benchmark view kept 2.3 ml of T8's beside T9's cut body)."""
    if not piece.partial:
        return False
    if advance > 0:
        return True
    s = walker.settings
    level = prev.partial and advance > -s.level_steps * step
    small = walker.is_sliver(piece) or piece.volume_ml < s.piece_fraction * prev.volume_ml
    return level and small and walker.stands_apart(piece)


def _beyond_box(vertebra: WalkedVertebra, box_z: tuple[float, float], tolerance: float) -> bool:
    """True where a centroid lies further than ``tolerance`` (mm) outside the S range of
    stage 1's spine voxels: stage 1 saw no spine there (the sacrum, the skull base)."""
    return not (box_z[0] - tolerance <= vertebra.centroid_lps[2] <= box_z[1] + tolerance)


def _with_last_look(
    walker: _Walker,
    prev: WalkedVertebra,
    step: float,
    direction: int,
    box_z: tuple[float, float],
    found: list[WalkedVertebra],
    budget: int,
    on_found: Callable[[WalkedVertebra], None],
) -> list[WalkedVertebra]:
    """``found`` and, where the field of view's edge cuts the next vertebrae to what lies
    outside the next patch centre, those pieces.

    The walk ends where the next centre falls outside the view, but a vertebra reaches
    further than its centre: a thoracic spinous process hangs a whole level down, so a view
    that ends above T9's body still shows the tip of T8's process behind it. One more
    prediction at the next centre (its patch still holds the view's edge) finds it; only a
    piece cut by the edge, beyond the last vertebra and inside stage 1's box (as every
    vertebra of the walk), counts. An oblique edge leaves a piece of each of several
    vertebrae, their centroids a few mm apart: the look is repeated from each piece found,
    but never after a sliver (two scraps side by side are one vertebra's).
    """
    found = list(found)
    while len(found) < budget and not walker.is_sliver(prev):
        center = _next_center(walker, prev, walker.settings.lead * step, direction)
        piece = walker.segment_at(center)
        if piece is None:
            break
        advance = direction * float(piece.centroid_lps[2] - prev.centroid_lps[2])
        beyond = _beyond_box(piece, box_z, walker.settings.box_tolerance_mm)
        if not _next_piece_at_edge(walker, prev, piece, advance, step) or beyond:
            walker.drop(piece)
            break
        on_found(piece)
        found.append(piece)
        prev = piece
    return found


def walk(
    ct: Image,
    valid: np.ndarray,
    predict: PatchPredictor,
    centerline: Centerline,
    start_lps: np.ndarray,
    step_mm: float,
    box_z_mm: tuple[float, float],
    settings: WalkSettings = WalkSettings(),
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    expected_count: int = 17,
) -> WalkResult:
    """Segment every vertebra reachable from ``start_lps`` along the centre line.

    ``ct``: normalized 1 mm canonical crop; ``valid``: its voxels inside the CT's field of
    view; ``step_mm``: the typical vertebra step at the start; ``box_z_mm``: the S range
    (mm) of stage 1's spine voxels, which no centroid may leave by more than
    ``box_tolerance_mm``; ``expected_count`` only scales the progress reports.
    If nothing is found at the start, points along the centre line are tried one step apart.
    """
    if not np.allclose(ct.direction, np.eye(3)):
        raise ValueError("the walk needs a canonical (identity-direction) crop")
    if valid.shape != ct.array.shape:
        raise ValueError(f"valid mask shape {valid.shape} != crop shape {ct.array.shape}")
    walker = _Walker(ct, valid.astype(bool), predict, centerline, settings)
    count = [0]

    def on_found(_: WalkedVertebra) -> None:
        count[0] += 1
        if cancel is not None:
            cancel.check()
        report(
            progress, "stage2", min(count[0] / max(expected_count, 1), 0.99), f"vertebra {count[0]}"
        )

    start = None
    for z in _start_candidates(float(start_lps[2]), step_mm, box_z_mm):
        if cancel is not None:
            cancel.check()
        point = centerline.point_at(z) if z != float(start_lps[2]) else np.asarray(start_lps, float)
        start = walker.segment_at(point)
        if start is not None:
            break
    result = WalkResult(ct.with_array(walker.instances))
    if start is None:
        result.predictions = walker.predictions
        return result
    on_found(start)
    budget = settings.max_vertebrae - 1
    above, result.end_above = _walk_one_way(walker, start, step_mm, +1, box_z_mm, budget, on_found)
    below, result.end_below = _walk_one_way(
        walker, start, step_mm, -1, box_z_mm, budget - len(above), on_found
    )
    result.vertebrae = list(reversed(above)) + [start] + below
    result.instances = ct.with_array(walker.instances)
    result.probability = ct.with_array(walker.probability)
    result.predictions = walker.predictions
    report(progress, "stage2", 1.0, f"{len(result.vertebrae)} vertebrae")
    return result


def _start_candidates(z0: float, step_mm: float, box_z: tuple[float, float]) -> list[float]:
    """``z0`` first, then points one step apart alternately above and below it in the box."""
    out = [z0]
    for n in range(1, 200):
        for z in (z0 + n * step_mm, z0 - n * step_mm):
            if box_z[0] <= z <= box_z[1]:
                out.append(z)
        if z0 + n * step_mm > box_z[1] and z0 - n * step_mm < box_z[0]:
            break
    return out
