"""The rules that judge the walked column before and after it is named (pipeline step 3).

Stage 2's walk (stage2.py) hands over a column of masks; not every one is a whole vertebra,
and not every end is where the spine ends. In the order the pipeline applies them:

- ``merge_fragments``: an inner piece cut off a vertebra (under a quarter of the median of
  the two on each side, or flagged by the walk) is folded back into the neighbour it touches;
- ``merge_split_vertebrae``: two touching masks that are the halves of one vertebra (half a
  step apart, one vertebra's volume together) become one;
- ``suspect_pieces`` / ``join_pairs`` / ``grow_vertebra``: masks the outline net finds to
  be one vertebra become one, and a piece it finds to be part of a vertebra no mask holds
  becomes that vertebra (same_vertebra.py reads the net; the pipeline applies its answers);
- ``drop_end_fragments``: such a piece at an end is dropped, and that end is "lost";
- ``recognise_sacrum``: a bottom mask stage 1 calls little spine, whose bone beside its body
  (the CT's, ``front_bone_widths_mm``) is wider than the vertebrae's above, is the sacrum's
  top: dropped, and the sacrum anchors the names; called somewhat more spine (a thin top, as
  on 3 mm slices), only with its body in line with the bodies above (body_line.py);
- ``drop_off_line_sliver``: a bottom sliver the view cut that lies off the column's line to
  one side, below lumbar vertebrae, is a piece of the bone beside the column's end (the
  sacrum's ala or facet), not a vertebra: dropped;
- ``trim_unsupported_ends``: end vertebrae stage 1 hardly calls spine are dropped;
- ``is_sacrum_called_l6``: after naming (identify.py), a bottom "L6" with a fraction of
  its neighbours' stage-1 support is the top of the sacrum;
- ``lost_ends`` / ``lost_spine_notes``: where levels may be missing, for the report;
- ``count_check`` / ``count_check_note``: where the level head would place the column
  instead (identify rule 6), for the report;
- ``unanchored_notes``: where nothing in view anchors the count, for the report.

Each rule changes the walk and its stage-1 votes in place, or reads them (and the CT); none
runs a net.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from SpineLabelerLib import body_line, identify, stage2
from SpineLabelerLib.image import index_to_lps
from SpineLabelerLib.preprocess import normalize_hu

# Vertebrae on each side of an inner vertebra that merge_fragments compares it with.
FRAGMENT_WINDOW = 2


def merge_fragments(walk: stage2.WalkResult, votes: list, fraction: float) -> int:
    """Fold each inner vertebra of the column that is a piece of a neighbour into it (in
    place); returns how many were folded.

    Neighbouring levels differ in volume by well under two times, so a whole vertebra is
    never a small fraction of the vertebrae around it; but a stage-2 net can cut a spinous
    process off and walk on from it, and the piece then takes a level of its own and shifts
    every name below it (seen with an unshipped checkpoint on the real case, and on thick
    slices, where the vertebra it broke off is itself only a part). An inner vertebra the
    field of view did not cut, under ``fraction`` of the median volume of the vertebrae among
    the ``FRAGMENT_WINDOW`` on each side (a median, so that one broken neighbour does not
    shield it), joins the neighbour its mask touches most (voxels, stage-1 votes,
    volume-weighted centroid); one that touches neither is dropped.
    """
    folded = 0
    n = 1
    while n < len(walk.vertebrae) - 1:
        above, piece, below = walk.vertebrae[n - 1 : n + 2]
        if not _is_piece(walk.vertebrae, n, fraction):
            n += 1
            continue
        instances = walk.instances.array
        mine = instances == piece.index
        rim = ndimage.binary_dilation(mine) & ~mine
        touching = [int(np.count_nonzero(instances[rim] == v.index)) for v in (above, below)]
        if max(touching) > 0:
            _fold(walk, votes, n, n - 1 if touching[0] >= touching[1] else n + 1)
        else:
            _drop(walk, votes, n)
        folded += 1
    return folded


def _fold(walk: stage2.WalkResult, votes: list, piece_at: int, owner_at: int) -> None:
    """Give the mask, stage-1 votes and volume of ``walk.vertebrae[piece_at]`` to its
    neighbour at ``owner_at`` (centroid volume-weighted) and take the piece out of the column."""
    piece, owner = walk.vertebrae[piece_at], walk.vertebrae[owner_at]
    instances = walk.instances.array
    instances[instances == piece.index] = owner.index
    owner.partial = owner.partial or piece.partial
    total = owner.volume_ml + piece.volume_ml
    owner.centroid_lps = (
        owner.centroid_lps * owner.volume_ml + piece.centroid_lps * piece.volume_ml
    ) / total
    owner.volume_ml = total
    votes[owner_at] = tuple(a + b for a, b in zip(votes[owner_at], votes[piece_at]))
    del walk.vertebrae[piece_at], votes[piece_at]


def _drop(walk: stage2.WalkResult, votes: list, at: int) -> None:
    """Take ``walk.vertebrae[at]``, its stage-1 votes and its voxels out of the column."""
    gone = walk.vertebrae.pop(at)
    votes.pop(at)
    walk.instances.array[walk.instances.array == gone.index] = 0


def _is_piece(column: list[stage2.WalkedVertebra], n: int, fraction: float) -> bool:
    """Whether ``column[n]``, not cut by the view, is under ``fraction`` of those around it,
    or the walk found it that small beside a whole vertebra (``stage2._is_piece_beside``: pieces
    side by side shield each other from the median)."""
    vertebra = column[n]
    if vertebra.partial:
        return False
    return vertebra.piece or vertebra.volume_ml < fraction * _local_median_ml(column, n)


def _local_median_ml(column: list[stage2.WalkedVertebra], n: int) -> float:
    """Median volume of the ``FRAGMENT_WINDOW`` vertebrae on each side of ``column[n]`` (cut
    ones too: a tight lumbar view cuts every vertebra's processes)."""
    around = _neighbours(column, n)
    return float(np.median([v.volume_ml for v in around])) if around else 0.0


def _neighbours(column: list[stage2.WalkedVertebra], n: int) -> list[stage2.WalkedVertebra]:
    """The ``FRAGMENT_WINDOW`` vertebrae on each side of ``column[n]``."""
    return column[max(n - FRAGMENT_WINDOW, 0) : n] + column[n + 1 : n + 1 + FRAGMENT_WINDOW]


def merge_split_vertebrae(
    walk: stage2.WalkResult, votes: list, step_fraction: float, volume_fraction: float
) -> int:
    """Make one vertebra of each pair of touching neighbours that are its two halves (in
    place); returns how many pairs were joined.

    On real CT the stage-2 net can return a vertebra's arch and its body as two masks (the
    walk steps on from the first half and finds the second), and each takes a level: every
    name below shifts by one (real case verse005: its L3 as 11 + 25 ml, centroids 14 mm
    apart along the spine where its neighbours lie 31-33 mm apart). Two whole vertebrae are
    never that close, nor that small together: a pair of touching masks, neither cut by the
    field of view, whose step along the column is under ``step_fraction`` of the column's
    step there and whose volumes together stay under ``volume_fraction`` of a whole vertebra
    near them, is one vertebra. The smaller half joins the larger.
    """
    joined = 0
    n = 0
    while n < len(walk.vertebrae) - 1:
        if not _is_split(walk, n, step_fraction, volume_fraction):
            n += 1
            continue
        first, second = walk.vertebrae[n], walk.vertebrae[n + 1]
        if first.volume_ml < second.volume_ml:
            _fold(walk, votes, n, n + 1)
        else:
            _fold(walk, votes, n + 1, n)
        joined += 1
    return joined


# Vertebrae on each side of a pair that merge_split_vertebrae measures the column's step and
# a whole vertebra's volume on.
SPLIT_WINDOW = 3


def _is_split(
    walk: stage2.WalkResult, n: int, step_fraction: float, volume_fraction: float
) -> bool:
    """Whether ``walk.vertebrae[n]`` and ``[n + 1]`` are two halves of one vertebra."""
    column = walk.vertebrae
    first, second = column[n], column[n + 1]
    if first.partial or second.partial:
        return False
    lo, hi = max(n - SPLIT_WINDOW, 0), min(n + 2 + SPLIT_WINDOW, len(column))
    around = column[lo:n] + column[n + 2 : hi]
    whole = [v.volume_ml for v in around if not v.partial] or [v.volume_ml for v in around]
    if not whole or first.volume_ml + second.volume_ml >= volume_fraction * np.median(whole):
        return False
    centroids = np.array([v.centroid_lps for v in column[lo:hi]], float)
    axis = centroids[-1] - centroids[0]
    if not np.any(axis):
        return False
    axis /= np.linalg.norm(axis)
    pair = n - lo  # the pair's first position in ``centroids``
    steps = np.abs(np.diff(centroids, axis=0) @ axis)
    others = np.delete(steps, pair)  # the pair's own step left out
    if len(others) < 2 or steps[pair] >= step_fraction * np.median(others):
        return False
    instances = walk.instances.array
    mine = instances == first.index
    return bool(np.any(instances[ndimage.binary_dilation(mine) & ~mine] == second.index))


def largest_near_ml(column: list[stage2.WalkedVertebra], n: int) -> float:
    """The largest volume among the ``FRAGMENT_WINDOW`` vertebrae on each side of
    ``column[n]`` (0 for a column of one)."""
    return max((v.volume_ml for v in _neighbours(column, n)), default=0.0)


def suspect_pieces(walk: stage2.WalkResult, fraction: float, votes: list) -> list[bool]:
    """Per vertebra of the column: whether it is under ``fraction`` of ``largest_near_ml``,
    and so may be a piece of one (the largest, not the median: pieces side by side would
    shield each other). Not in the neck (stage 1's majority cervical): there C2, with its
    dens, and C7 are half again the size of C1 and C3-C6, which would all be suspects (five
    on a whole-spine phantom: eight outline predictions, 6.8 s on two CPU threads, that
    changed nothing); ``merge_split_vertebrae`` still joins a cervical vertebra's halves."""
    column = walk.vertebrae
    return [
        identify.majority_region(votes[n]) != 0
        and v.volume_ml < fraction * largest_near_ml(column, n)
        for n, v in enumerate(column)
    ]


def join_pairs(walk: stage2.WalkResult, votes: list, pairs: Sequence[tuple[int, int]]) -> int:
    """Make one vertebra of each group of masks linked by ``pairs`` (positions in the
    column), in place: the largest of a group keeps its place and takes the others; returns
    how many masks were folded away."""
    group = list(range(len(walk.vertebrae)))

    def root(n: int) -> int:
        while group[n] != n:
            n = group[n]
        return n

    for n, m in pairs:
        group[root(m)] = root(n)
    members: dict[int, list[int]] = {}
    for n, v in enumerate(walk.vertebrae):
        members.setdefault(root(n), []).append(v.index)
    folded = 0
    for indices in members.values():
        sizes = {v.index: v.volume_ml for v in walk.vertebrae}
        owner = max(indices, key=sizes.__getitem__)
        for index in indices:
            if index != owner:
                at = {v.index: n for n, v in enumerate(walk.vertebrae)}
                _fold(walk, votes, at[index], at[owner])
                folded += 1
    return folded


def grow_vertebra(
    walk: stage2.WalkResult,
    at: int,
    region: tuple[slice, ...],
    voxels: np.ndarray,
    probability: np.ndarray,
    valid: np.ndarray,
) -> None:
    """Give ``walk.vertebrae[at]`` the ``voxels`` (bool on the crop's ``region``; no other
    vertebra's) with the net's ``probability`` there, in place: its volume, centroid and
    "cut by the view" follow its new mask, and it is no longer a piece."""
    vertebra = walk.vertebrae[at]
    here = walk.instances.array[region]
    here[voxels] = vertebra.index
    if walk.probability is not None:
        stored = walk.probability.array[region]
        stored[voxels] = np.maximum(np.round(probability[voxels] * 255.0), 128)
    mask = walk.instances.array == vertebra.index
    vertebra.volume_ml = float(mask.sum()) * float(np.prod(walk.instances.spacing_mm)) / 1000.0
    centre_ijk = np.argwhere(mask).mean(axis=0)[::-1]
    vertebra.centroid_lps = index_to_lps(walk.instances, centre_ijk[None])[0]
    edge = ndimage.binary_dilation(~valid[region]) & valid[region]
    vertebra.partial = vertebra.partial or bool(np.any(edge & voxels))
    vertebra.piece = False


def drop_end_fragments(walk: stage2.WalkResult, votes: list, fraction: float) -> list[str]:
    """Drop end vertebrae of the column that are pieces (in place); returns the ends
    ("above", "below") where any went.

    ``merge_fragments`` for the two ends: an end vertebra the field of view did not cut,
    under ``fraction`` of the median volume of the ``FRAGMENT_WINDOW`` vertebrae next to it,
    is not a whole vertebra. Where stage 2 loses the spine (bodies it cannot see: bone as
    faint as the discs) it walks on over the spinous processes; the pieces inside the
    column are folded away, and the last one would take the next level's name however far
    below it lies. That end becomes "lost": the spine goes on there, so it is no anchor for
    the names (neither the sacrum nor the skull), and the user is told.
    """
    lost = []
    for end in ("above", "below"):
        while len(walk.vertebrae) > 1:
            n = 0 if end == "above" else len(walk.vertebrae) - 1
            if not _is_piece(walk.vertebrae, n, fraction):
                break
            _drop(walk, votes, n)
            setattr(walk, f"end_{end}", "lost")
            if end not in lost:
                lost.append(end)
    return lost


@dataclass(frozen=True)
class SacrumEvidence:
    """What ``recognise_sacrum`` reads off the column's bottom mask (the pipeline keeps it,
    as ``work["sacrum_evidence"]``, and benchmarks/sacrum_evidence.py prints it)."""

    bottom: int  # the mask's value in the walk's instances
    share: float  # stage 1's share of it over the median of the vertebrae's above
    width: float  # front_bone_widths_mm over the median of the vertebrae's above
    step: float | None  # body_line.front_step_in_body_depths (None: nothing to read)


def sacrum_evidence(
    walk: stage2.WalkResult, votes: list, ct_norm: np.ndarray
) -> SacrumEvidence | None:
    """The bottom mask's readings for ``recognise_sacrum``; None where there is nothing to
    read: a column under three vertebrae, or not below a lumbar one (stage 1's majority),
    since the sacrum lies nowhere else."""
    column = walk.vertebrae
    if len(column) < 3 or identify.majority_region(votes[-2]) != 2:
        return None
    shares = _stage1_shares(walk, votes)
    near = column[-1 - SACRUM_WINDOW :]
    indices = [v.index for v in near]
    spacing = walk.instances.spacing_mm
    widths = front_bone_widths_mm(ct_norm, walk.instances.array, indices, spacing)
    above = [w for w, v in zip(widths[:-1], near[:-1]) if not v.partial] or widths[:-1]
    return SacrumEvidence(
        bottom=indices[-1],
        share=shares[-1] / max(float(np.median(shares[:-1])), 1e-9),
        width=widths[-1] / max(float(np.median(above)), 1e-9),
        step=body_line.front_step_in_body_depths(walk.instances.array, indices, spacing),
    )


def recognise_sacrum(
    walk: stage2.WalkResult,
    votes: list,
    evidence: SacrumEvidence | None,
    max_relative: float,
    min_width_ratio: float,
    in_line_relative: float,
) -> bool:
    """Drop the bottom mask of the column when it is the top of the sacrum (in place), and
    make the sacrum the column's lower end: an anchor for the names (identify rule 3).

    Stage 2 segments the sacrum's top like a vertebra, and counted as one it names every
    vertebra a level too high (real case verse005: "L5" over S1). Two things tell it from
    the last lumbar vertebra, and it takes both. Its alae make it wider than the vertebrae
    above where its body is (``front_bone_widths_mm`` over ``min_width_ratio`` times the
    median of theirs): lateral to a lumbar body lies muscle, and its transverse processes
    start further back. The width is read off the CT's bone, not the mask: the walking net's
    outline of the alae came and went with the grid (verse005's sacrum 92 mm wide on its own
    grid, 71 mm on one moved half a voxel, and every name a level high). And stage 1, trained
    to call the sacrum background, calls less of it spine than of the vertebrae above (under
    ``max_relative`` of their median share; on real CT the lumbar vertebrae's own shares run
    from 0.3 to 0.8). It keeps a vertebra that bone beside it makes wide a vertebra: an L5 with
    contrast in the iliac arteries or an ilium it touches, and the piece of the next vertebra a
    short view cuts off behind its body, its arch, whose front lies so far back that its
    transverse processes count as its width (phantoms' L2-L3 views: up to 2.1 times).

    Sliced thick, the sacrum's top comes as a thin piece that stage 1 calls more of spine
    (both real cases at 3 mm: 0.72 and 0.63 of the median), as much as it calls of those cut
    arches (0.46-1.02). Between ``max_relative`` and ``in_line_relative`` it is the sacrum
    only if it has a body in line with the bodies above: its front within ``IN_LINE_STEP``
    of a body's depth behind the front of the body above (body_line.py), where an arch
    starts a body's depth back. Only below a lumbar vertebra (stage 1's majority): the
    sacrum lies nowhere else. ``evidence``: ``sacrum_evidence`` of this walk and votes.
    """
    if evidence is None or evidence.share >= in_line_relative:
        return False
    if evidence.width <= min_width_ratio:
        return False
    in_line = evidence.step is not None and evidence.step < IN_LINE_STEP
    if evidence.share >= max_relative and not in_line:
        return False
    _drop(walk, votes, len(walk.vertebrae) - 1)
    walk.end_below = "spine"
    return True


# Vertebrae above the bottom mask whose widths recognise_sacrum compares it with (lumbar ones
# above a sacrum; further up, rib heads beside the bodies would count as their width).
SACRUM_WINDOW = 4
# How far behind the front of the body above, in depths of the bodies above, a thin sacrum's
# top may start and still count as in line (body_line.py): the phantoms' and real cut arches
# that its bone makes wide lay 0.67-1.06 depths back, the real sacra at 3 mm 0.41 and 0.08.
IN_LINE_STEP = 0.5
# How far behind a vertebra's front front_bone_widths_mm looks: in front of a lumbar body's
# pedicles (at 30 mm the development phantoms' L5 took its transverse processes and the ilium
# they touch); and what it counts as bone there, smoothed (the alae's cancellous bone is above).
FRONT_DEPTH_MM = 25.0
FRONT_BONE_HU = 200.0


def front_bone_widths_mm(
    ct_norm: np.ndarray,
    instances: np.ndarray,
    indices: Sequence[int],
    spacing_mm: Sequence[float],
    depth_mm: float = FRONT_DEPTH_MM,
    bone_hu: float = FRONT_BONE_HU,
) -> list[float]:
    """Per vertebra of ``indices`` (values in ``instances``, ``(K, J, I)`` on the canonical LPS
    grid, j towards the back): the widest left-right extent, over its axial slices, of the bone
    that touches it within ``depth_mm`` behind its front, mm.

    The CT's bone, not the mask, so that a net's outline does not decide it; other vertebrae's
    voxels are no bone of its own; the bone is smoothed (1 mm) so that noise alone does not
    join soft tissue to it. At the sacrum's top that bone runs out along the alae to the view's
    or the ilium's edge; at a lumbar vertebra it is the body (the transverse processes start
    behind it)."""
    if not len(indices):
        return []
    sk, sj, si = (float(v) for v in spacing_mm[::-1])  # (x, y, z) = (i, j, k)
    boxes = ndimage.find_objects(instances)
    present = [boxes[i - 1] for i in indices if i <= len(boxes) and boxes[i - 1] is not None]
    if not present:
        return [0.0] * len(indices)
    k0 = max(min(b[0].start for b in present) - 3, 0)
    k1 = min(max(b[0].stop for b in present) + 3, instances.shape[0])
    smooth = ndimage.gaussian_filter(
        np.asarray(ct_norm[k0:k1], np.float32), (1.0 / sk, 1.0 / sj, 1.0 / si)
    )
    bone = smooth > float(normalize_hu(np.array([bone_hu]))[0])
    labels = instances[k0:k1]
    depth = max(int(round(depth_mm / sj)), 1)
    widths = []
    for index in indices:
        mine = labels == index
        front = _front_row(mine)
        if front is None:
            widths.append(0.0)
            continue
        widest = 0
        for k in np.nonzero(mine.any(axis=(1, 2)))[0]:
            own_bone = bone[k] & ((labels[k] == 0) | mine[k])
            pieces, _ = ndimage.label(own_bone)
            touching = np.unique(pieces[ndimage.binary_dilation(mine[k], iterations=2)])
            kept = np.isin(pieces[front : front + depth], touching[touching > 0])
            columns = np.nonzero(kept.any(axis=0))[0]
            if len(columns):
                widest = max(widest, int(columns[-1] - columns[0] + 1))
        widths.append(widest * si)
    return widths


def _front_row(mask: np.ndarray) -> int | None:
    """The foremost j row of ``mask`` (``(K, J, I)``, j towards the back), None if empty."""
    rows = np.nonzero(mask.any(axis=(0, 2)))[0]
    return int(rows[0]) if len(rows) else None


def drop_off_line_sliver(
    walk: stage2.WalkResult, votes: list, sliver_fraction: float, min_offset_mm: float
) -> bool:
    """Drop the bottom mask (in place) when it is a sliver the view cut (under
    ``sliver_fraction`` of the column's median volume) below lumbar vertebrae and lies more
    than ``min_offset_mm`` left or right of the line through the two vertebrae above it.

    On 3 mm slices of the real cases (verse005, verse008) the sacrum's top at the view's
    edge came as a 5-6 ml piece 10-12 mm to one side of the column's line: too small and
    too little wider than a vertebra for ``recognise_sacrum``, it was named L5 or L6. A
    vertebra the view cuts across leaves its piece on the line (the development phantoms'
    bottom slivers: within 2 mm). The end is not made an anchor: that the piece is the
    sacrum is likely, not shown (at the top, slivers of a rib head or one process lie off
    the line too).
    """
    column = walk.vertebrae
    if len(column) < 3 or sum(votes[-2]) <= 0:
        return False
    end, last, before = (np.asarray(v.centroid_lps, float) for v in column[-1:-4:-1])
    median_ml = float(np.median([v.volume_ml for v in column]))
    cut_sliver = column[-1].partial and column[-1].volume_ml < sliver_fraction * median_ml
    lumbar_above = int(np.argmax(votes[-2])) == 2
    if not (cut_sliver and lumbar_above) or last[2] == before[2]:
        return False
    steps_beyond = (end[2] - last[2]) / (last[2] - before[2])
    expected_x = last[0] + (last[0] - before[0]) * steps_beyond
    if abs(end[0] - expected_x) <= min_offset_mm:
        return False
    _drop(walk, votes, len(column) - 1)
    return True


def trim_unsupported_ends(
    walk: stage2.WalkResult, votes: list, min_support: float, sliver_fraction: float
) -> None:
    """Drop vertebrae at either end of the column that stage 1 hardly calls spine (in place).

    Stage 2 segments whatever vertebra-like bone is near its patch (the sacrum, say);
    stage 1 says where the spine is. An end vertebra with under ``min_support`` of its
    voxels called spine by stage 1 goes, and that end becomes a "spine" end (the spine
    ended there as stage 1 sees it) unless the field of view had cut it. A sliver the
    field of view cut (partial, under ``sliver_fraction`` of the column's median volume)
    stays: stage 1's coarse grid hardly sees a few slices at the edge of the view, and the
    top of the sacrum is as large as a vertebra.
    """
    if not walk.vertebrae:
        return
    voxel_ml = float(np.prod(walk.instances.spacing_mm)) / 1000.0
    small_ml = sliver_fraction * float(np.median([v.volume_ml for v in walk.vertebrae]))

    def unsupported(vote: tuple, v: stage2.WalkedVertebra) -> bool:
        small_and_cut = v.partial and v.volume_ml < small_ml
        return not small_and_cut and _stage1_share(vote, v, voxel_ml) < min_support

    while walk.vertebrae and unsupported(votes[-1], walk.vertebrae[-1]):
        votes.pop()
        walk.end_below = "fov" if walk.vertebrae.pop().partial else "spine"
    while walk.vertebrae and unsupported(votes[0], walk.vertebrae[0]):
        votes.pop(0)
        walk.end_above = "fov" if walk.vertebrae.pop(0).partial else "spine"


def _stage1_share(
    vote: tuple[float, float, float], v: stage2.WalkedVertebra, voxel_ml: float
) -> float:
    """The share of a walked vertebra's voxels that stage 1 called spine."""
    return sum(vote) / max(v.volume_ml / voxel_ml, 1.0)


def _stage1_shares(walk: stage2.WalkResult, votes: list) -> list[float]:
    """``_stage1_share`` of every vertebra of the column."""
    voxel_ml = float(np.prod(walk.instances.spacing_mm)) / 1000.0
    return [_stage1_share(vote, v, voxel_ml) for vote, v in zip(votes, walk.vertebrae)]


def is_sacrum_called_l6(
    walk: stage2.WalkResult, votes: list, names: identify.Identification, max_relative: float
) -> bool:
    """Whether the bottom vertebra, named L6, is the top of the sacrum.

    How much of a vertebra stage 1 calls spine varies with the scanner and the patient, so a
    fixed threshold (``trim_unsupported_ends``) cannot tell a faintly seen vertebra from the
    sacrum; but the sacrum keeps only a fraction of what its neighbours get. A share under
    ``max_relative`` times the column's median is not enough on its own (a sliver of a
    vertebra cut by the field of view gets as little), so it decides only for a bottom
    vertebra that identification called L6, a rare level (the L6 prior) where a sacrum
    counted as a vertebra lands.
    """
    if len(walk.vertebrae) < 3 or names.names[-1] != "L6":
        return False
    shares = _stage1_shares(walk, votes)
    return shares[-1] < max_relative * float(np.median(shares))


def anchoring_ends(walk: stage2.WalkResult, votes: list) -> tuple[bool, bool]:
    """Whether the walk's ends on the spine ("spine") anchor the names, above and below: the
    skull lies only above a cervical vertebra and the sacrum only below a lumbar one (stage
    1's majority in the end vertebra). Stage 1 calls the edge of a short view no spine: on
    three-vertebra views of the development phantoms the walk ended "spine" below C5 and
    above T5, and read as the sacrum and the skull these ends anchored wrong names."""
    above = walk.end_above == "spine" and identify.majority_region(votes[0]) == 0
    below = walk.end_below == "spine" and identify.majority_region(votes[-1]) == 2
    return above, below


# The column's ends past which no vertebra can be missing (the skull, the sacrum).
LAST_LEVELS = {"above": "C1", "below": "L6"}


# Why the walk stopped where levels may be missing: only pieces found past the end
# (``drop_end_fragments``), or nothing where the CT goes on below (stage2 "unseen").
_LOST = {
    "lost": "its vertebrae there were only found in pieces",
    "unseen": "no vertebra was found there though the CT goes on",
}


def lost_ends(walk_ends: tuple[str, str], names: Sequence[str]) -> list[tuple[str, str]]:
    """(end, name of the vertebra there) for each end ("above", "below") where the walk lost
    the spine and a level can still be missing: pieces lost past C1 are the skull's, past
    L6 the sacrum's; nothing found past L5 is the usual spine's end. The report's notes and
    a batch's review column both read it."""
    if not names:
        return []
    ends = []
    for end, why in zip(("above", "below"), walk_ends):
        name = names[0 if end == "above" else -1]
        last = ("L5", "L6") if why == "unseen" else (LAST_LEVELS[end],)  # most spines end at L5
        if why in _LOST and name not in last:
            ends.append((end, name))
    return ends


def lost_spine_notes(walk: stage2.WalkResult, names: identify.Identification) -> list[str]:
    """A message per end of ``lost_ends``."""
    walk_ends = (walk.end_above, walk.end_below)
    why = dict(zip(("above", "below"), walk_ends))
    return [
        f"the spine goes on {end} {name}, but {_LOST[why[end]]}: levels may be missing; "
        "check the result there"
        for end, name in lost_ends(walk_ends, names.names)
    ]


def count_check(
    evidence: list[identify.VertebraEvidence], names: identify.Identification, min_nats: float
) -> dict[str, Any] | None:
    """Where the level head alone would place the column when it prefers that by at least
    ``min_nats`` (identify.py rule 6): a transitional vertebra or a miscount, which a person
    should count; None when it agrees (or did not read). Kept in the report as it is, so that
    a reader (the benchmarks, a batch summary) needs no message text."""
    shift, nats = identify.level_head_shift(evidence, names.start_level)
    if shift == 0 or nats < min_nats:
        return None
    first = names.start_level + shift
    other = (identify.LEVELS[first].name, identify.LEVELS[first + len(evidence) - 1].name)
    return {
        "shift_levels": shift,
        "nats": round(nats, 3),
        "named": f"{names.names[0]}-{names.names[-1]}",
        "head_prefers": f"{other[0]}-{other[1]}",
    }


def count_check_note(check: dict[str, Any], anchored: bool = True) -> str:
    """The message for a ``count_check`` that spoke. Where something in view anchors the
    count the disagreement points at the column (a transitional or a missed vertebra); where
    nothing does, the names and the head's reading are two guesses (on the short phantom
    views the head's was right on 34 of 46 such views, on the real CTs at hand on none of
    three), so the note does not claim a cause."""
    shift = check["shift_levels"]
    looks = (
        f"the vertebrae look {abs(shift)} level{'s' if abs(shift) > 1 else ''} "
        f"{'lower' if shift > 0 else 'higher'} than named ({check['head_prefers']} rather than "
        f"{check['named']})"
    )
    if not anchored:
        return f"{looks} to the level head; with nothing in view to anchor the count, either may be off"
    return (
        f"{looks}: a transitional vertebra (L6, a sacralized L5, 11 or 13 rib pairs) "
        "or a missed one; check the count"
    )


def unanchored_notes(names: identify.Identification) -> list[str]:
    """The message where nothing in view anchors the count (identify.count_anchors)."""
    if names.anchors:
        return []
    return [
        "nothing in view anchors the count (neither C1 under the skull, the sacrum nor the "
        "end of the ribs): the names follow the regions stage 1 sees and may be off by a "
        f"level or more (confidence at most {identify.UNANCHORED_CONFIDENCE:.1f}); check the count"
    ]
