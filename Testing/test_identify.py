"""identify.py: each rule on hand-built columns (no networks)."""

from dataclasses import replace

import pytest

from SpineLabelerLib import anatomy
from SpineLabelerLib.identify import (
    _TYPICAL_STEP_MM,
    ColumnEnds,
    IdentifyWeights,
    VertebraEvidence,
    identify,
    level_head_shift,
    level_read,
)

VOTE = {"cervical": (1.0, 0.0, 0.0), "thoracic": (0.0, 1.0, 0.0), "lumbar": (0.0, 0.0, 1.0)}


def column(names, looks_like=None, ribs=True):
    """Evidence for a column of levels, cranial to caudal, with typical steps between them.

    ``looks_like`` overrides the stage-1 region of some levels (e.g. {"T12": "lumbar"}).
    """
    looks_like = looks_like or {}
    z = 0.0
    out = []
    for name in names:
        region = looks_like.get(name, anatomy.vertebra(name).region)
        rib = (1.0 if region == "thoracic" else 0.0) if ribs else None
        out.append(VertebraEvidence(VOTE[region], (0.0, 0.0, z), rib))
        z -= _TYPICAL_STEP_MM[name]
    return out


def names(first, last):
    levels = [v.name for v in anatomy.VERTEBRAE]
    return levels[levels.index(first) : levels.index(last) + 1]


def test_whole_spine_is_counted_from_c1():
    col = names("C1", "L5")
    result = identify(column(col), ColumnEnds(ends_above=True, ends_below=True))
    assert list(result.names) == col
    assert min(result.confidences) > 0.9


def test_thoracolumbar_boundary_fixes_the_count_without_anchors():
    col = names("T7", "L3")
    result = identify(column(col), ColumnEnds())
    assert list(result.names) == col
    assert result.labels[0] == anatomy.vertebra("T7").label


def test_cervicothoracic_boundary_fixes_the_count():
    col = names("C4", "T5")
    assert list(identify(column(col)).names) == col


def test_c1_under_the_skull_anchors_a_head_scan():
    col = names("C1", "C5")
    # Only cervical votes, no boundary: the skull above is the anchor.
    assert list(identify(column(col), ColumnEnds(ends_above=True)).names) == col


def test_lumbar_only_field_of_view_counts_up_from_the_sacrum():
    col = names("L2", "L5")
    result = identify(column(col), ColumnEnds(ends_below=True))
    assert list(result.names) == col


def test_l6_spine_is_named_when_c1_and_sacrum_are_both_seen():
    col = names("C1", "L6")
    result = identify(column(col), ColumnEnds(ends_above=True, ends_below=True))
    assert list(result.names) == col


def test_t12_without_ribs_does_not_shift_the_column():
    col = names("C1", "L5")
    ev = column(col, looks_like={"T12": "lumbar"})
    result = identify(ev, ColumnEnds(ends_above=True, ends_below=True))
    assert list(result.names) == col
    t12 = col.index("T12")
    # The odd vertebra is named right but with lower confidence than its neighbours.
    assert result.confidences[t12] < result.confidences[t12 - 1]
    assert result.confidences[t12] < result.confidences[t12 + 1]


def test_t12_without_ribs_in_a_chest_scan_seen_from_c7():
    # Thoracic scan from C7 down to L2, T12 rib-less: the C/T boundary fixes the count.
    col = names("C7", "L2")
    result = identify(column(col, looks_like={"T12": "lumbar"}), ColumnEnds())
    assert list(result.names) == col


def test_cervical_rib_on_c7_does_not_shift_the_column():
    col = names("C1", "T6")
    result = identify(column(col, looks_like={"C7": "thoracic"}), ColumnEnds(ends_above=True))
    assert list(result.names) == col


def test_wrong_region_vote_on_one_mid_vertebra_is_outvoted():
    col = names("T3", "L4")
    ev = column(col)
    ev[4] = VertebraEvidence((0.0, 0.2, 0.8), ev[4].centroid_lps, ev[4].rib_score)  # T7 voted L
    assert list(identify(ev).names) == col


def test_sacrum_anchor_beats_a_missing_boundary_in_the_lower_thoracics():
    col = names("T9", "L5")
    result = identify(column(col, ribs=False), ColumnEnds(ends_below=True))
    assert list(result.names) == col


def test_confidence_drops_when_placement_is_ambiguous():
    # Three lumbar vertebrae, no boundary, no sacrum: only sizes speak, weakly.
    result = identify(column(names("L2", "L4")))
    sure = identify(column(names("L2", "L5")), ColumnEnds(ends_below=True))
    assert max(result.confidences) < min(sure.confidences)
    assert all(anatomy.vertebra(n).region == "lumbar" for n in result.names)


def test_bad_columns_are_clear_errors():
    with pytest.raises(ValueError, match="no vertebrae"):
        identify([])
    with pytest.raises(ValueError, match="more than the 25 levels"):
        identify(column(names("C1", "L6")) + column(["L1"]))


def test_l6_in_an_abdomen_scan_above_the_sacrum():
    col = names("T10", "L6")
    result = identify(column(col), ColumnEnds(ends_below=True))
    assert list(result.names) == col


def test_sacralized_l5_leaves_l4_above_the_sacrum():
    for first in ("C1", "T10"):
        col = names(first, "L4")
        ends = ColumnEnds(ends_above=first == "C1", ends_below=True)
        assert list(identify(column(col), ends).names) == col


def test_lumbar_rib_on_l1_does_not_shift_the_column():
    # Abdomen scan: L1 carries a rib but stage 1 (trained on labels) still calls it lumbar.
    col = names("T9", "L5")
    ev = column(col)
    l1 = col.index("L1")
    ev[l1] = VertebraEvidence(ev[l1].region_votes, ev[l1].centroid_lps, rib_score=1.0)
    assert list(identify(ev, ColumnEnds(ends_below=True)).names) == col
    # Whole spine: even an L1 that looks thoracic in every way is named L1.
    col = names("C1", "L5")
    result = identify(column(col, looks_like={"L1": "thoracic"}), ColumnEnds(True, True))
    assert list(result.names) == col


def test_documented_limit_rib_less_t12_seen_lumbar_without_c1_reads_as_l6():
    # T12 without ribs AND called lumbar by stage 1, seen from T9 down to the sacrum: the
    # column is indistinguishable from an L6 spine; the rule names an L6 (off by one) and
    # says so with a low confidence at the boundary.
    col = names("T9", "L5")
    result = identify(column(col, looks_like={"T12": "lumbar"}), ColumnEnds(ends_below=True))
    assert list(result.names) == names("T10", "L6")
    typical = identify(column(col), ColumnEnds(ends_below=True))
    assert result.confidences[col.index("T12")] < min(typical.confidences) - 0.2


def test_one_odd_step_does_not_outweigh_votes_and_anchor():
    # Cervical vertebrae segmented two-as-one give 35-40 mm steps where 16 mm are typical.
    ev = column(names("C1", "C5"))
    z = [0.0, -22.0, -61.0, -99.0, -122.0]
    ev = [VertebraEvidence(e.region_votes, (0.0, 0.0, zz), e.rib_score) for e, zz in zip(ev, z)]
    assert list(identify(ev, ColumnEnds(ends_above=True)).names) == names("C1", "C5")


def test_a_thoracolumbar_boundary_in_view_outweighs_the_usual_count_above_the_sacrum():
    # A tight lumbar crop (no ribs measured) down to the sacrum with the boundary in view:
    # four lumbar-looking vertebrae under it are L1-L4 above a sacralized L5, six are L1-L6;
    # the votes, not the usual five-lumbar count, place the boundary, also where stage 1
    # gives a tenth of T12 to the lumbar region. Steps of 28 mm (a short spine's; the
    # typical lumbar step is 33) leave the sizes undecided.
    for first, last, votes in (("T11", "L4", {"T12": (0.0, 0.9, 0.1)}), ("T12", "L6", {})):
        col = names(first, last)
        ev = [
            VertebraEvidence(votes.get(name, e.region_votes), (0.0, 0.0, -28.0 * n), None)
            for n, (name, e) in enumerate(zip(col, column(col)))
        ]
        result = identify(ev, ColumnEnds(ends_below=True))
        assert list(result.names) == col


def with_level_ratios(evidence, levels, strength=2.0):
    """The column with a level head that reads each vertebra as the level given for it."""
    out = []
    for ev, name in zip(evidence, levels):
        ratios = [-strength] * len(anatomy.VERTEBRAE)
        ratios[anatomy.vertebra(name).label - 1] = strength
        out.append(VertebraEvidence(ev.region_votes, ev.centroid_lps, ev.rib_score, tuple(ratios)))
    return out


HEAD_VOTES = IdentifyWeights(level_head=1.0)  # rule 6 measured as a vote (default: 0)


def test_level_head_as_a_vote_decides_a_column_without_boundary_or_anchor():
    col = names("L2", "L4")  # lumbar votes only, no sacrum: sizes alone cannot place it
    looks = with_level_ratios(column(col), col)
    assert list(identify(looks, weights=HEAD_VOTES).names) == col
    shifted = names("L1", "L3")
    looks_shifted = with_level_ratios(column(col), shifted)
    assert list(identify(looks_shifted, weights=HEAD_VOTES).names) == shifted
    assert identify(looks_shifted).scores == identify(column(col)).scores  # default: no vote


def test_level_head_as_a_vote_does_not_outvote_a_visible_boundary_and_anchor():
    col = names("T10", "L5")
    wrong = names("T11", "L6")  # a head one level off on every vertebra, weakly
    result = identify(
        with_level_ratios(column(col), wrong, strength=0.3),
        ColumnEnds(ends_below=True),
        HEAD_VOTES,
    )
    assert list(result.names) == col


def test_vertebrae_without_level_ratios_count_nothing():
    col = names("T7", "L3")
    evidence = column(col)
    same = identify(with_level_ratios(evidence, col, 0.0), weights=HEAD_VOTES)
    assert identify(evidence, weights=HEAD_VOTES).scores == same.scores


def test_level_head_shift_says_where_the_head_alone_would_put_the_column():
    col = names("T11", "L4")
    looks_lower = with_level_ratios(column(col), names("T12", "L5"))
    result = identify(looks_lower, ColumnEnds(ends_below=True))
    shift, nats = level_head_shift(looks_lower, result.start_level)
    assert list(result.names) == col  # weight 0: the head does not vote
    assert shift == 1 and nats == pytest.approx(2 * 2.0 * len(col))
    assert level_head_shift(column(col), result.start_level) == (0, 0.0)
    agree = with_level_ratios(column(col), col)
    assert level_head_shift(agree, result.start_level) == (0, 0.0)


def test_level_read_is_the_head_s_likeliest_level():
    col = names("T11", "L1")
    read = with_level_ratios(column(col), names("T12", "L2"))
    assert [level_read(ev) for ev in read] == ["T12", "L1", "L2"]
    assert level_read(column(col)[0]) is None


def test_level_head_shift_stays_where_stage_1_allows():
    """A cervical column the head reads as lumbar (seen on a 3 mm phantom view of C4-C6):
    no check across a region stage 1 clearly sees; a level within it is still said."""
    col = names("C4", "C6")
    start = anatomy.vertebra("C4").label - 1
    read_as_lumbar = with_level_ratios(column(col), names("L1", "L3"))
    assert level_head_shift(read_as_lumbar, start) == (0, 0.0)
    read_one_lower = with_level_ratios(column(col), names("C5", "C7"))
    assert level_head_shift(read_one_lower, start)[0] == 1
    unclear = [replace(ev, region_votes=(0.6, 0.0, 0.4)) for ev in read_as_lumbar]
    assert level_head_shift(unclear, start)[0] == anatomy.vertebra("L1").label - 1 - start


def test_a_column_nothing_in_view_anchors_is_named_with_low_confidence():
    """Regions alone (no skull, no sacrum, no end of the ribs in view) fix no count on real
    CT: stage 1 tells thoracic by ribs it cannot see in a tight crop."""
    from SpineLabelerLib.identify import UNANCHORED_CONFIDENCE, count_anchors

    unanchored = column(names("T11", "L3"), ribs=False)
    result = identify(unanchored)
    assert result.names == tuple(names("T11", "L3"))  # the votes still give the names
    assert result.anchors == () and count_anchors(unanchored, ColumnEnds()) == ()
    assert max(result.confidences) <= UNANCHORED_CONFIDENCE
    with_ribs = column(names("T11", "L3"))  # ribs on T11-T12, none measured below
    assert identify(with_ribs).anchors == ("rib ends",)
    assert max(identify(with_ribs).confidences) > UNANCHORED_CONFIDENCE
    sacrum = identify(column(names("L1", "L5"), ribs=False), ColumnEnds(ends_below=True))
    assert sacrum.anchors == ("sacrum",) and max(sacrum.confidences) > UNANCHORED_CONFIDENCE
    skull = identify(column(names("C1", "C5"), ribs=False), ColumnEnds(ends_above=True))
    assert skull.anchors == ("skull",)
    all_ribbed = column(names("T3", "T8"))  # ribs everywhere: no end of them in view
    assert identify(all_ribbed).anchors == ()


def test_ribs_beside_a_vertebra_stage_1_calls_cervical_anchor_nothing():
    """A 3 mm view of C3-C5 (dev026): the walk's top find, by C2 and the mandible, scored
    0.84 on the rib measure; with the rib-less ones below it "anchored" the names C6-T1 at
    0.72-0.75. Ribs count as the ribs' end only beside a vertebra stage 1 calls mostly
    thoracic."""
    from SpineLabelerLib.identify import UNANCHORED_CONFIDENCE

    cervical = column(names("C2", "C6"), ribs=True)  # measured: no ribs beside any
    mandible = [replace(cervical[0], rib_score=0.84), *cervical[1:]]
    result = identify(mandible)
    assert result.anchors == ()
    assert max(result.confidences) <= UNANCHORED_CONFIDENCE
    ribbed_t1 = column(names("C5", "T2"))  # ribs beside T1-T2, which stage 1 calls thoracic
    assert identify(ribbed_t1).anchors == ("rib ends",)


def _upper_lumbar_called_thoracic(rib_l1_l2):
    """A lumbar crop as real CTs give it (verse005): the cut T12 above, L1-L5, the sacrum
    below; stage 1 calls L1 and L2 thoracic (no ribs in view to tell it otherwise)."""
    col = names("T12", "L5")
    ev = column(col, looks_like={"L1": "thoracic", "L2": "thoracic"})
    ribs = {"T12": None, "L1": rib_l1_l2, "L2": rib_l1_l2}
    return col, [replace(e, rib_score=ribs.get(n, 0.0)) for e, n in zip(ev, col)]


def test_measured_ribs_outweigh_stage_1_calling_rib_less_lumbar_vertebrae_thoracic():
    col, ev = _upper_lumbar_called_thoracic(rib_l1_l2=0.0)
    result = identify(ev, ColumnEnds(ends_below=True))
    assert list(result.names) == col
    # Unmeasured, the same votes would make L5 a sacralized L4 (the rule trusts stage 1 there).
    col, ev = _upper_lumbar_called_thoracic(rib_l1_l2=None)
    assert list(identify(ev, ColumnEnds(ends_below=True)).names) != col
    # Softness 0 gives stage 1's call full weight again.
    col, ev = _upper_lumbar_called_thoracic(rib_l1_l2=0.0)
    strict = identify(ev, ColumnEnds(ends_below=True), IdentifyWeights(ribless_softness=0.0))
    assert list(strict.names) != col
