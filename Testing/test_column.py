"""column.py: the rules that judge the walked column, on hand-built walks."""

from dataclasses import replace

import numpy as np
import pytest

from SpineLabelerLib import anatomy, column
from SpineLabelerLib.image import Image


def test_end_vertebrae_stage_one_does_not_call_spine_are_dropped():
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    grid = Image(np.zeros((4, 4, 4), np.int16))  # 1 mm voxels: 1 ml = 1000 voxels
    walked = [WalkedVertebra(n, np.zeros(3), 10.0, n == 4, 1, True) for n in range(1, 5)]
    walk = WalkResult(grid, list(walked), end_above="fov", end_below="fov")
    votes = [(0, 0, 500), (0, 0, 9000), (0, 9000, 0), (0, 0, 800)]  # supports .05 .9 .9 .08
    column.trim_unsupported_ends(walk, votes, 0.1, sliver_fraction=0.25)
    assert [v.index for v in walk.vertebrae] == [2, 3] and len(votes) == 2
    assert walk.end_above == "spine"  # a whole vertebra that is no spine: e.g. the skull base
    assert walk.end_below == "fov"  # the dropped one was cut by the field of view


def test_a_sliver_the_field_of_view_cut_stays_though_stage_one_hardly_sees_it():
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    grid = Image(np.zeros((4, 4, 4), np.int16))
    walked = [WalkedVertebra(n, np.zeros(3), 10.0, False, 1, True) for n in range(1, 4)]
    walked.append(WalkedVertebra(4, np.zeros(3), 1.2, True, 1, True))  # cut to 1.2 ml
    walk = WalkResult(grid, list(walked), end_above="spine", end_below="fov")
    votes = [(0, 0, 9000), (0, 0, 9000), (0, 0, 9000), (0, 0, 0)]
    column.trim_unsupported_ends(walk, votes, 0.1, sliver_fraction=0.25)
    assert [v.index for v in walk.vertebrae] == [1, 2, 3, 4]
    whole_but_unsupported = WalkedVertebra(4, np.zeros(3), 1.2, False, 1, True)
    walk = WalkResult(grid, walked[:3] + [whole_but_unsupported], end_below="spine")
    column.trim_unsupported_ends(walk, list(votes), 0.1, sliver_fraction=0.25)
    assert [v.index for v in walk.vertebrae] == [1, 2, 3]


def test_a_piece_cut_off_a_vertebra_is_folded_back_not_counted():
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    inst = np.zeros((60, 20, 20), np.int16)  # 1 mm voxels
    inst[40:55, 2:12, 2:12] = 1  # 1.5 ml
    inst[22:36, 2:12, 2:12] = 3  # 1.4 ml
    inst[20:24, 12:16, 5:9] = 2  # 0.064 ml: a process tip hanging off vertebra 3's arch
    inst[2:16, 2:12, 2:12] = 4
    vol = {i: float((inst == i).sum()) / 1000 for i in range(1, 5)}
    walked = [
        WalkedVertebra(i, np.array([0.0, 0.0, float(i)]), vol[i], False, 1, True)
        for i in range(1, 5)
    ]
    walk = WalkResult(Image(inst.copy()), list(walked))
    votes = [(0, 0, 100), (0, 5, 7), (0, 0, 90), (0, 0, 80)]
    assert column.merge_fragments(walk, votes, 0.25) == 1
    assert [v.index for v in walk.vertebrae] == [1, 3, 4] and votes[1] == (0, 5, 97)
    owner = walk.vertebrae[1]
    assert owner.volume_ml == pytest.approx(vol[3] + vol[2])
    np.testing.assert_array_equal(walk.instances.array == 3, (inst == 3) | (inst == 2))
    # loose in the gap (touching no neighbour): dropped
    loose = inst.copy()
    loose[loose == 2] = 0
    loose[37:39, 5:7, 5:7] = 2
    walk = WalkResult(Image(loose), list(walked))
    assert column.merge_fragments(walk, list(votes), 0.25) == 1
    assert not (walk.instances.array == 2).any() and len(walk.vertebrae) == 3
    # one broken neighbour (thick slices: 0.2 ml of a vertebra) does not shield the piece:
    # the median of the vertebrae around it decides
    broken_neighbour = [replace(v, volume_ml=0.2) if v.index == 1 else v for v in walked]
    walk = WalkResult(Image(inst.copy()), broken_neighbour)
    assert column.merge_fragments(walk, list(votes), 0.25) == 1
    # cut by the field of view, or not small against those around it: a vertebra
    cut = [replace(v, partial=v.index == 2) for v in walked]
    assert column.merge_fragments(WalkResult(Image(inst.copy()), cut), list(votes), 0.25) == 0
    small_column = [v if v.index == 2 else replace(v, volume_ml=0.1) for v in walked]
    walk = WalkResult(Image(inst.copy()), small_column)
    assert column.merge_fragments(walk, list(votes), 0.25) == 0
    # a tight lumbar view cuts every vertebra's processes: cut neighbours still count
    tight = [v if v.index == 2 else replace(v, partial=True, volume_ml=0.2) for v in walked]
    walk = WalkResult(Image(inst.copy()), tight)
    assert column.merge_fragments(walk, list(votes), 0.25) == 0


def test_a_piece_at_the_end_of_the_column_is_dropped_and_that_end_is_lost():
    """Where stage 2 lost the spine it walks on over spinous processes; the last piece would
    take the next level's name however far down it lies (seen on a development phantom with
    bodies as faint as its discs: "L3" named 120 mm below L2)."""
    from SpineLabelerLib import identify
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    inst = np.zeros((40, 4, 4), np.int16)
    for n in range(1, 6):
        inst[8 * (n - 1) : 8 * n - 2] = n
    volumes = [3.0, 40.0, 45.0, 50.0, 2.6]
    walked = [WalkedVertebra(n, np.zeros(3), ml, False, 1, True) for n, ml in enumerate(volumes, 1)]
    walk = WalkResult(Image(inst.copy()), list(walked), end_above="fov", end_below="spine")
    votes = [(0, 0, n) for n in range(5)]
    assert column.drop_end_fragments(walk, votes, 0.25) == ["above", "below"]
    assert [v.index for v in walk.vertebrae] == [2, 3, 4] and votes == [
        (0, 0, n) for n in (1, 2, 3)
    ]
    assert (walk.end_above, walk.end_below) == ("lost", "lost")
    assert set(np.unique(walk.instances.array)) == {0, 2, 3, 4}
    names = identify.Identification((21, 22, 23), (1.0,) * 3, 20, 1.0)
    notes = column.lost_spine_notes(walk, names)
    assert len(notes) == 2 and "above L2" in notes[0] and "below L4" in notes[1]
    whole = identify.Identification((1, 2, 3), (1.0,) * 3, 0, 1.0)  # C1-C3: nothing above C1
    assert [n.split(",")[0] for n in column.lost_spine_notes(walk, whole)] == [
        "the spine goes on below C3"
    ]
    to_l6 = identify.Identification((23, 24, 25), (1.0,) * 3, 22, 1.0)  # L4-L6: the sacrum below
    assert [n.split(",")[0] for n in column.lost_spine_notes(walk, to_l6)] == [
        "the spine goes on above L4"
    ]
    # cut by the field of view, or as large as those next to it: a vertebra; one alone stays
    cut = [replace(v, partial=True) if v.index in (1, 5) else v for v in walked]
    walk = WalkResult(Image(inst.copy()), cut, end_above="fov", end_below="fov")
    assert column.drop_end_fragments(walk, [(0, 0, 1)] * 5, 0.25) == []
    small_c1 = [replace(v, volume_ml=12.0) if v.index == 1 else v for v in walked[:4]]
    assert column.drop_end_fragments(WalkResult(Image(inst), small_c1), [()] * 4, 0.25) == []
    alone = WalkResult(Image(inst), walked[4:], end_below="spine")
    assert column.drop_end_fragments(alone, [()], 0.25) == [] and alone.end_below == "spine"
    # three pieces side by side below whole vertebrae (a body lost around screws, arches):
    # the median of their neighbours is a piece too, but the walk flagged them beside a whole one
    volumes = [40.0, 45.0, 5.5, 7.1, 5.4]
    pieces = [
        WalkedVertebra(n, np.zeros(3), ml, False, 1, True, piece=n > 2)
        for n, ml in enumerate(volumes, 1)
    ]
    walk = WalkResult(Image(inst.copy()), pieces, end_above="spine", end_below="spine")
    unflagged = WalkResult(Image(inst.copy()), [replace(v, piece=False) for v in pieces])
    assert column.drop_end_fragments(unflagged, [()] * 5, 0.25) == []  # they shield each other
    assert column.drop_end_fragments(walk, [()] * 5, 0.25) == ["below"]
    assert [v.index for v in walk.vertebrae] == [1, 2] and walk.end_below == "lost"


def test_a_bottom_l6_with_a_fraction_of_the_column_s_support_is_the_sacrum():
    from SpineLabelerLib import identify
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    grid = Image(np.zeros((4, 4, 4), np.int16))  # 1 mm voxels: 1 ml = 1000 voxels
    walked = [WalkedVertebra(n, np.zeros(3), 10.0, False, 1, True) for n in range(1, 6)]
    walk = WalkResult(grid, walked)
    votes = [(0, 0, 6000), (0, 0, 7000), (0, 0, 7000), (0, 0, 6500), (0, 0, 2200)]

    def named(*names):
        labels = tuple(anatomy.vertebra(n).label for n in names)
        return identify.Identification(labels, (1.0,) * 5, 0, 1.0)

    # .22 is under .35 x the median .65: the sacrum when named L6 ...
    assert column.is_sacrum_called_l6(walk, votes, named("L2", "L3", "L4", "L5", "L6"), 0.35)
    # ... but a sliver cut by the field of view gets as little: any other name stays
    assert not column.is_sacrum_called_l6(walk, votes, named("L1", "L2", "L3", "L4", "L5"), 0.35)
    votes[-1] = (0, 0, 6000)  # a true L6, as much spine as its neighbours
    assert not column.is_sacrum_called_l6(walk, votes, named("L2", "L3", "L4", "L5", "L6"), 0.35)


def _lumbar_column_that_looks_from(looks_first: str, strength: float):
    """Five lumbar-voted vertebrae above the sacrum, which a level head reads from ``looks_first``."""
    from SpineLabelerLib.identify import VertebraEvidence

    start = anatomy.vertebra(looks_first).label - 1
    out = []
    for i in range(5):
        ratios = [-strength] * len(anatomy.VERTEBRAE)
        ratios[start + i] = strength
        centroid = (0.0, 0.0, -33.0 * i)
        out.append(VertebraEvidence((0.0, 0.0, 1.0), centroid, None, tuple(ratios)))
    return out


def test_count_check_says_when_the_level_head_prefers_another_count():
    from SpineLabelerLib import identify

    sacrum_below = identify.ColumnEnds(ends_below=True)
    evidence = _lumbar_column_that_looks_from("T12", 1.0)
    names = identify.identify(evidence, sacrum_below)
    assert names.names == ("L1", "L2", "L3", "L4", "L5")  # the head does not vote
    check = column.count_check(evidence, names, 0.5)
    assert check["shift_levels"] == -1 and check["nats"] >= 0.5
    assert (check["named"], check["head_prefers"]) == ("L1-L5", "T12-L4")
    note = column.count_check_note(check)
    assert "look 1 level higher than named (T12-L4 rather than L1-L5)" in note
    assert "check the count" in note
    unanchored = column.count_check_note(check, anchored=False)
    assert "(T12-L4 rather than L1-L5) to the level head" in unanchored
    assert "nothing in view to anchor the count" in unanchored
    assert "transitional" not in unanchored
    weak = _lumbar_column_that_looks_from("T12", 0.01)
    assert column.count_check(weak, identify.identify(weak, sacrum_below), 0.5) is None
    agree = _lumbar_column_that_looks_from("L1", 1.0)
    assert column.count_check(agree, identify.identify(agree, sacrum_below), 0.5) is None


def _blocks(spans: dict[int, tuple[int, int]], width: int = 10):
    """Instances on a 1 mm grid: vertebra ``index`` fills k in [a, b) of a ``width``-wide
    square; returns the map and walked vertebrae in the order given (k is the S axis)."""
    from SpineLabelerLib.stage2 import WalkedVertebra

    inst = np.zeros((max(b for _, b in spans.values()) + 2, width + 4, width + 4), np.int16)
    walked = []
    for index, (a, b) in spans.items():
        inst[a:b, 2 : 2 + width, 2 : 2 + width] = index
        ml = (b - a) * width * width / 1000.0
        walked.append(
            WalkedVertebra(index, np.array([7.0, 7.0, (a + b - 1) / 2]), ml, False, 1, True)
        )
    return inst, walked


def test_two_halves_of_one_vertebra_become_one():
    """verse005's L3 came as two masks 14 mm apart along a column stepping 31-33 mm: every
    name below it moved by one."""
    from SpineLabelerLib.stage2 import WalkResult

    spans = {1: (2, 26), 2: (32, 56), 3: (62, 74), 4: (74, 86), 5: (92, 116), 6: (122, 146)}
    inst, walked = _blocks(spans)
    walk = WalkResult(Image(inst.copy()), list(walked))
    votes = [(0, 0, n) for n in range(6)]
    assert column.merge_split_vertebrae(walk, votes, 0.6, 1.3) == 1
    assert [v.index for v in walk.vertebrae] == [1, 2, 3, 5, 6] and votes[2] == (0, 0, 5)
    joined = walk.vertebrae[2]
    assert joined.volume_ml == pytest.approx(2.4) and joined.centroid_lps[2] == pytest.approx(73.5)
    assert set(np.unique(walk.instances.array)) == {0, 1, 2, 3, 5, 6}
    # two whole vertebrae close together are too large together to be one
    whole = [replace(v, volume_ml=2.0) if v.index in (3, 4) else v for v in walked]
    assert (
        column.merge_split_vertebrae(WalkResult(Image(inst.copy()), whole), [()] * 6, 0.6, 1.3) == 0
    )
    # a half cut by the field of view: its centroid moved with the cut, nothing to compare
    cut = [replace(v, partial=v.index == 4) for v in walked]
    assert (
        column.merge_split_vertebrae(WalkResult(Image(inst.copy()), cut), [()] * 6, 0.6, 1.3) == 0
    )
    # masks that do not touch are two things, however close
    apart = inst.copy()
    apart[74:76][apart[74:76] == 4] = 0
    assert (
        column.merge_split_vertebrae(WalkResult(Image(apart), list(walked)), [()] * 6, 0.6, 1.3)
        == 0
    )


def _recognise(walk, votes: list, ct: np.ndarray) -> bool:
    """column.recognise_sacrum with the pipeline's thresholds, on its own readings."""
    evidence = column.sacrum_evidence(walk, votes, ct)
    return column.recognise_sacrum(walk, votes, evidence, 0.6, 1.4, 0.85)


def _lumbar_column_over_a_sacrum():
    """Four 30 mm deep, 20 mm wide bodies (HU 700) on a canonical 1 mm grid, the bottom one
    the sacrum's top: its walked mask is the body alone (the net missed the alae, as on
    verse005 moved half a voxel), the CT holds its alae, 70 mm of bone beside the body's front.
    Returns (CT normalized, instances, walked vertebrae)."""
    from SpineLabelerLib.preprocess import normalize_hu
    from SpineLabelerLib.stage2 import WalkedVertebra

    hu = np.full((128, 60, 90), -50.0, np.float32)
    inst = np.zeros(hu.shape, np.int16)
    walked = []
    for index, (a, b) in {1: (96, 120), 2: (66, 90), 3: (36, 60), 4: (2, 30)}.items():
        inst[a:b, 10:40, 35:55] = index
        ml = (b - a) * 30 * 20 / 1000.0
        centroid = np.array([45.0, 25.0, (a + b - 1) / 2])
        walked.append(WalkedVertebra(index, centroid, ml, index == 4, 1, True))
    hu[inst > 0] = 700.0
    hu[10:24, 14:30, 10:80] = 400.0  # the alae, in front of where pedicles would be
    return normalize_hu(hu), inst, walked


def test_a_bottom_mask_stage_one_calls_little_spine_with_alae_beside_its_body_is_the_sacrum():
    """verse005: stage 2 took S1 as "L5"; stage 1 called a quarter of it spine (the column's
    median 0.6), and the CT's bone beside its body's front ran 92-96 mm wide against 52-55 mm
    of the lumbar bodies above, on its own grid and moved half a voxel alike (the walked mask's
    width went from 92 to 71 mm)."""
    from SpineLabelerLib.stage2 import WalkResult

    ct, inst, walked = _lumbar_column_over_a_sacrum()
    widths = column.front_bone_widths_mm(ct, inst, [1, 2, 3, 4], (1.0, 1.0, 1.0))
    assert widths == pytest.approx([20.0, 20.0, 20.0, 70.0], abs=2.0)
    voxels = [v.volume_ml * 1000 for v in walked]
    supported = [(0, 0, 0.6 * n) for n in voxels]
    sacrum_votes = supported[:3] + [(0, 0, 0.25 * voxels[3])]
    walk = WalkResult(Image(inst.copy()), list(walked), end_below="fov")
    assert _recognise(walk, list(sacrum_votes), ct)
    assert [v.index for v in walk.vertebrae] == [1, 2, 3] and walk.end_below == "spine"
    assert not (walk.instances.array == 4).any()
    # as much spine to stage 1 as the vertebrae above: a vertebra whose bone runs out sideways
    walk = WalkResult(Image(inst.copy()), list(walked), end_below="fov")
    assert not _recognise(walk, list(supported), ct)


def test_bone_behind_a_body_s_front_or_apart_from_it_does_not_make_it_wide():
    """A lumbar vertebra's transverse processes start behind its body (the development
    phantoms' L5 took them, and the ilium they touch, at 30 mm deep, not at 25), and bone that
    does not touch the vertebra (the ilium beside L5) is not its width: a cut bottom piece
    stage 1 hardly sees stays unless its own bone is wide."""
    from SpineLabelerLib.preprocess import normalize_hu
    from SpineLabelerLib.stage2 import WalkResult

    ct, inst, walked = _lumbar_column_over_a_sacrum()
    hu = np.full(inst.shape, -50.0, np.float32)
    hu[inst > 0] = 700.0
    hu[10:24, 36:40, 10:80] = 400.0  # processes 26-30 mm behind the front
    hu[10:24, 14:30, 2:30] = 400.0  # an ilium 5 mm apart from the body
    moved = normalize_hu(hu)
    assert column.front_bone_widths_mm(moved, inst, [4], (1.0, 1.0, 1.0)) == [20.0]
    voxels = [v.volume_ml * 1000 for v in walked]
    sliver_votes = [(0, 0, 0.6 * n) for n in voxels[:3]] + [(0, 0, 0.25 * voxels[3])]
    walk = WalkResult(Image(inst.copy()), list(walked), end_below="fov")
    assert not _recognise(walk, sliver_votes, moved)
    assert walk.end_below == "fov" and len(walk.vertebrae) == 4


def test_a_bottom_sliver_off_the_column_s_line_is_not_a_vertebra():
    """verse005 and verse008 at 3 mm: the sacrum's top at the view's edge came as a 5-6 ml
    piece 10-12 mm to one side of the column's line, and was named L5 or L6."""
    from SpineLabelerLib.stage2 import WalkResult

    inst, walked = _blocks({1: (2, 26), 2: (32, 56), 3: (62, 86), 4: (92, 96)})
    walked[3] = replace(walked[3], volume_ml=0.4, partial=True)  # under 0.25 of 2.4 ml
    lumbar = [(0, 0, 100)] * 4

    def column_with_end_at(x_mm: float, votes=lumbar, **change) -> WalkResult:
        ends = [replace(walked[3], centroid_lps=np.array([x_mm, 7.0, 93.5]), **change)]
        return WalkResult(Image(inst.copy()), walked[:3] + ends, end_below="fov")

    walk = column_with_end_at(7.0 + 10.0)
    assert column.drop_off_line_sliver(walk, list(lumbar), 0.25, 6.0)
    assert [v.index for v in walk.vertebrae] == [1, 2, 3] and not (walk.instances.array == 4).any()
    assert walk.end_below == "fov"  # likely the sacrum, not shown: no anchor
    kept = {
        "on the line": column_with_end_at(7.0 + 2.0),
        "not cut by the view": column_with_end_at(17.0, partial=False),
        "a cut vertebra, not a sliver": column_with_end_at(17.0, volume_ml=1.2),
    }
    for why, walk in kept.items():
        assert not column.drop_off_line_sliver(walk, list(lumbar), 0.25, 6.0), why
        assert len(walk.vertebrae) == 4, why
    thoracic = [(0, 100, 0)] * 4  # below thoracic vertebrae: a rib head or a process
    assert not column.drop_off_line_sliver(column_with_end_at(17.0), thoracic, 0.25, 6.0)
    # the line follows the column: a spine that drifts 5 mm a level keeps its sliver
    drifting = [
        replace(v, centroid_lps=v.centroid_lps + [5.0 * n, 0, 0]) for n, v in enumerate(walked[:3])
    ]
    end = replace(walked[3], centroid_lps=np.array([7.0 + 15.0, 7.0, 93.5]))
    walk = WalkResult(Image(inst.copy()), drifting + [end])
    assert not column.drop_off_line_sliver(walk, list(lumbar), 0.25, 6.0)


def test_the_report_says_when_nothing_anchors_the_count():
    from SpineLabelerLib import identify

    free = identify.Identification((20, 21), (0.5, 0.5), 19, 0.9)
    assert "nothing in view anchors the count" in column.unanchored_notes(free)[0]
    anchored = replace(free, anchors=("sacrum",))
    assert column.unanchored_notes(anchored) == []


def test_a_walk_that_found_nothing_below_where_the_ct_goes_on_says_levels_may_be_missing():
    from SpineLabelerLib import identify
    from SpineLabelerLib.stage2 import WalkResult

    walk = WalkResult(Image(np.zeros((4, 4, 4), np.int16)), [], end_above="fov", end_below="unseen")
    l2_l3 = identify.Identification((21, 22), (0.5,) * 2, 20, 1.0)
    assert column.lost_ends(("fov", "unseen"), l2_l3.names) == [("below", "L3")]
    (note,) = column.lost_spine_notes(walk, l2_l3)
    assert note.startswith("the spine goes on below L3, but no vertebra was found there")
    for usual_end in ((23, 24), (24, 25)):  # nothing past L5 or L6: the spine may end there
        ending = identify.Identification(usual_end, (0.5,) * 2, usual_end[0] - 1, 1.0)
        assert column.lost_spine_notes(walk, ending) == []


def test_the_skull_and_the_sacrum_anchor_only_past_vertebrae_of_their_region():
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    walked = [WalkedVertebra(n, np.zeros(3), 30.0, False, 1, True) for n in range(1, 4)]
    walk = WalkResult(Image(np.zeros((4, 4, 4), np.int16)), walked, "spine", "spine")
    cervical, thoracic, lumbar, none = (9, 1, 0), (0, 9, 1), (0, 1, 9), (0, 0, 0)
    assert column.anchoring_ends(walk, [cervical, thoracic, lumbar]) == (True, True)
    # a short thoracic view whose edges stage 1 calls no spine: neither skull nor sacrum
    assert column.anchoring_ends(walk, [thoracic, thoracic, thoracic]) == (False, False)
    assert column.anchoring_ends(walk, [cervical, cervical, cervical]) == (True, False)
    assert column.anchoring_ends(walk, [none, lumbar, none]) == (False, False)
    walk.end_above = walk.end_below = "fov"
    assert column.anchoring_ends(walk, [cervical, thoracic, lumbar]) == (False, False)


def _column_over(bottom: str, wide_rows: slice):
    """body_line's lumbar column with ``bottom`` below it, as a walk, and a CT whose bone
    runs 60 mm wide beside the bottom mask over ``wide_rows`` (j)."""
    from test_body_line import lumbar_column

    from SpineLabelerLib.preprocess import normalize_hu
    from SpineLabelerLib.stage2 import WalkedVertebra, WalkResult

    inst = lumbar_column(bottom)
    hu = np.full(inst.shape, -50.0, np.float32)
    hu[inst > 0] = 700.0
    hu[4:12, wide_rows, 0:60] = np.where(inst[4:12, wide_rows] > 0, 700.0, 400.0)
    walked = [
        WalkedVertebra(i, np.zeros(3), float((inst == i).sum()) / 1000.0, i == 5, 1, True)
        for i in range(1, 6)
    ]
    return WalkResult(Image(inst), walked, end_below="fov"), normalize_hu(hu)


def _votes(walk, region: int, bottom_share: float) -> list:
    votes = []
    for v in walk.vertebrae:
        vote = [0.0, 0.0, 0.0]
        vote[region] = (bottom_share if v.partial else 1.0) * v.volume_ml * 1000.0
        votes.append(tuple(vote))
    return votes


def test_a_thin_sacrum_top_stage_one_half_sees_is_the_sacrum_only_with_its_body_in_line():
    """Both real cases sliced 3 mm: the sacrum's top came as a thin piece stage 1 called 0.72
    and 0.63 as much spine as the lumbar vertebrae (not under 0.6), its bone 1.8 and 1.7
    times as wide; so were the arches a short view cuts off the next vertebra (0.46-1.02,
    up to 2.1 times), a body's depth behind the body above where the sacrum started 0.41 and
    0.08 depths back. Under 0.6 the width alone decides, as before; and only below a lumbar
    vertebra."""
    walk, ct = _column_over("body", slice(14, 30))
    evidence = column.sacrum_evidence(walk, _votes(walk, 2, 0.7), ct)
    assert evidence.width > 2.0 and evidence.step == pytest.approx(4 / 30, abs=0.05)
    assert evidence.share == pytest.approx(0.7)
    assert _recognise(walk, _votes(walk, 2, 0.7), ct)
    assert walk.end_below == "spine" and [v.index for v in walk.vertebrae] == [1, 2, 3, 4]
    walk, ct = _column_over("body", slice(14, 30))
    assert not _recognise(walk, _votes(walk, 2, 0.9), ct)
    walk, ct = _column_over("body", slice(14, 30))
    assert column.sacrum_evidence(walk, _votes(walk, 1, 0.5), ct) is None
    assert not _recognise(walk, _votes(walk, 1, 0.5), ct)
    walk, ct = _column_over("arch", slice(40, 56))
    evidence = column.sacrum_evidence(walk, _votes(walk, 2, 0.7), ct)
    assert evidence.width > 2.0 and evidence.step == pytest.approx(1.0, abs=0.05)
    assert not _recognise(walk, _votes(walk, 2, 0.7), ct)
    assert len(walk.vertebrae) == 5
    walk, ct = _column_over("arch", slice(40, 56))
    assert _recognise(walk, _votes(walk, 2, 0.5), ct)
