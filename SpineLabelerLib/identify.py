"""Names for the vertebrae found: which level (C1..L6) each walked vertebra is.

Stage 2 hands over the vertebrae it found as one column, ordered cranial to caudal, with
what was seen about each. The paper counts labels from a region boundary that stage 1 found
(the first vertebra below the thoracic/lumbar boundary is L1, the one above it T12, and so
on). Counting from one boundary alone lets a single odd vertebra shift the whole column: a
T12 without ribs looks lumbar to stage 1 and would turn every lumbar vertebra into the next
level. So the count is made consistent with *everything* seen, by scoring every possible
placement of the column on the spine model and keeping the best one.

The rule
--------
The column of ``N`` vertebrae is placed on the 25 levels C1..C7, T1..T12, L1..L6 as a run of
consecutive levels starting at level ``s`` (``0 <= s <= 25 - N``). Each start ``s`` gets a
log-score, the sum of:

1. **Region votes** (the paper's boundary count, made soft). For each vertebra, the
   fractions of its voxels that stage 1 called cervical / thoracic / lumbar; its level
   explains them with the probability ``sum_r pi(level, r) * q(r)``, where ``q`` is the vote
   fraction (floored so one vertebra can never veto a placement) and ``pi`` says which
   region a level looks like. ``pi`` is pure for most levels; the levels where real spines
   vary are soft: C7 (cervical rib) may look thoracic, T12 (no ribs: the "11-rib" spine) may
   look lumbar, L1 (lumbar rib) may look thoracic. A boundary seen in the votes therefore
   fixes the count, but one odd vertebra at a boundary costs little. Stage 1 is trained to
   call each level by its region whatever its ribs (its classes come from the labels), so
   the soft levels are only mildly soft: 5 % the other region at the thoracolumbar
   boundary, 10 % at the cervicothoracic one, where stage 1 is weakest (validation Dice
   of its cervical class 0.84, against 0.91 and 0.93) and where C1 under the skull anchors
   the count anyway. Measured (benchmarks/stage1_votes.py, 23 calibration phantoms of
   every variant, none of the benchmark's): stage 1 gives a whole T12 or L1 on average 1 %
   or less to the neighbouring region (at worst 9 %), a C7 3 % (at worst 22 %), and never
   the majority; the margins leave room for the real CTs it has not seen. The
   thoracolumbar share decides between a visible boundary and a variant at the sacrum (an
   L1 called thoracic vs a sacralized L5, a T12 called lumbar vs an L6): at 10 % the
   boundary's shift cost (~2 nats) barely passed the variant's prior (1.5), and crisp,
   correct votes lost to the prior.
2. **Ribs** (measured by ribs.py on the stage-2 crop, 0..1 per vertebra, or None where the
   crop shows nothing beside the vertebra): thoracic levels expect ribs, the others do not;
   T12 and C7/L1 again only weakly. Weighted as much as the votes: where stage 1 calls the
   lowest cervical vertebrae thoracic, the ribs still put T1 where it is. And where a
   vertebra was measured without ribs, a lumbar level explains stage 1 calling it thoracic
   with ``ribless_softness`` (0.2) of its look instead of 5 % or less: stage 1 tells thoracic
   by the ribs, and on real crops tight round the spine, with no ribs in view to go by, it
   calls rib-less upper lumbar vertebrae thoracic (both real CTs at hand: their L1 at 84 and
   100 %, one's L2 at 77 %; every name one level high on verse005). Only that way: a vertebra
   measured with ribs, or not measured, keeps stage 1's call as it was. 0.2 is the largest
   softness (in steps of 0.1) that leaves every column of the phantom development set named
   as before with at least the smallest margin it had (0.41 nats); at 0.3 an 11-rib column's
   margin falls to 0.39, at 0.5 it is misnamed. The two real cases only confirmed it
   (margins 1.15 and 1.88 nats; 0.05 and 2.94 without it).
3. **Ends of the spine** (anchors). If the walk ended *inside* the field of view above the
   top vertebra (nothing more to segment though the CT goes on: the skull), the top vertebra
   is C1. If it ended inside the field of view below the bottom vertebra (the sacrum), the
   bottom vertebra is L5 - or L6 in a six-lumbar spine (costs the L6 prior below), or L4
   when L5 is fused into the sacrum (a sacralized L5, which costs ``sacralized_prior``).
4. **Expected sizes**: the cranio-caudal step from each vertebra to the next (mm) against the
   typical step of its level, a weak Gaussian term, capped per step so that one odd step
   (two vertebrae segmented as one) cannot outweigh the votes; it only decides when
   nothing else does (e.g. a few lumbar vertebrae with no boundary and no sacrum in view).
5. **L6 prior**: a six-lumbar spine is a variant; using L6 costs a fixed amount, so an L6 is
   only named when the evidence for it (a visible boundary or C1 above, the sacrum below,
   six lumbar-looking vertebrae between) outweighs it.
6. **Level head** (level_head.py): each vertebra's look read as a level, ``log p(level |
   look) / frequency(level)``, mixed with the frequencies so that no vertebra adds less than
   log 0.1. Its weight is 0: as a vote it cost more than it bought. On the development set
   (48 spine phantoms; the names above are right on 47) it agrees with the chosen placement
   on 42 columns and prefers one a level away on 6: the one misnamed (a sacralized-L5
   lumbar crop), two lumbar spines with vertebrae missing around pedicle screws, and three
   correctly named transitional spines (an L6, two sacralized L5s). Whatever its weight, a
   transitional spine's vertebrae look like the levels of the usual spine they resemble, and
   the sum over a column counts that one mistake once per vertebra. Every weight that
   changed a name broke more columns than it fixed: summed at 0.25 or 0.5, two broken and
   none fixed; summed at 1, three broken for the one fixed; averaged over the column at 2-4,
   one to three broken, none fixed; capped at 0.5 nats per placement, one broken; capped at
   1-3 nats, three broken for the one fixed (``python benchmarks/level_head.py``). So the
   head checks the count instead (:func:`level_head_shift`; the pipeline says when it
   disagrees), among the placements stage 1 does not contradict (:func:`regions_allow`).
   ``weights.level_head`` > 0 puts it in the scores, to measure.
   Nor where nothing in view anchors the count, though there the votes leave every
   placement within a region nearly tied and the most cranial one wins (a view of C3-C5
   is named from C1): measured at weight 0.5 in unanchored columns only, the development
   phantoms cut to three vertebrae (``benchmarks/short_views.py --development``, 33
   unanchored views) had 88 of 149 names right instead of 26, but on the real CTs (each
   case whole, at 3 mm, its L2-L3 alone) the head placed five of six columns a level off
   (verse008 whole alone right), and verse005's L2-L3 lost its two right names. What the
   head reads as a level is the phantoms' look.

The scores give a posterior over placements (softmax). A vertebra's confidence is the
posterior of the chosen placement times how well its own evidence fits its level relative
to the best evidence that level could show (1.0 for a typical vertebra, lower for the odd
one out, such as a rib-less T12). The posterior is only as good as the evidence it is
computed from, and the region votes, counted as independent per vertebra, make it sure of
itself: where nothing in view anchors the count (no skull above, no sacrum below, no end of
the ribs: :func:`count_anchors`) every confidence is capped at ``UNANCHORED_CONFIDENCE``,
and the pipeline says that the count could not be anchored.

Known limit: when neither C1 nor the cervicothoracic boundary is in view, a six-lumbar
spine and an 11-rib spine whose T12 stage 1 calls lumbar look the same (some thoracic
vertebrae, then six lumbar-looking ones above the sacrum). The rule trusts the votes and
names an L6 (an L6 prior of 1.5 against a T12-looks-lumbar cost of about 2.8); the
confidence of the vertebra at the boundary shows the call was close. Likewise an L1 that
stage 1 calls thoracic above the sacrum (a lumbar rib) against a sacralized L5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from SpineLabelerLib import anatomy

LEVELS: tuple[anatomy.Vertebra, ...] = anatomy.VERTEBRAE  # C1..L6, label = index + 1
_N_LEVELS = len(LEVELS)

# Typical cranio-caudal centroid step (mm) from each level to the next, adult, from
# published vertebral body heights plus disc heights (rounded; only used as a weak prior).
_TYPICAL_STEP_MM: dict[str, float] = {
    **{f"C{i}": 16.0 for i in range(1, 8)},
    **{f"T{i}": 18.0 + (i - 1) * (28.0 - 18.0) / 11.0 for i in range(1, 13)},
    **{f"L{i}": 33.0 for i in range(1, 7)},
}


# Share of a boundary level's look given to the next region (see the module doc).
CERVICOTHORACIC_SOFTNESS = 0.1
THORACOLUMBAR_SOFTNESS = 0.05


def _region_prior(name: str) -> tuple[float, float, float]:
    """pi(level, region): how likely a level looks cervical / thoracic / lumbar to stage 1."""
    c, t = CERVICOTHORACIC_SOFTNESS, THORACOLUMBAR_SOFTNESS
    soft = {"C7": (1.0 - c, c, 0.0), "T12": (0.0, 1.0 - t, t), "L1": (0.0, t, 1.0 - t)}
    if name in soft:
        return soft[name]
    region = anatomy.vertebra(name).region
    return tuple(1.0 if r == region else 0.0 for r in anatomy.REGIONS)  # type: ignore[return-value]


def _rib_prior(name: str) -> float:
    """P(ribs seen | level)."""
    soft = {"C7": 0.1, "T12": 0.6, "L1": 0.1}
    if name in soft:
        return soft[name]
    return 0.95 if anatomy.vertebra(name).region == "thoracic" else 0.05


@dataclass(frozen=True)
class VertebraEvidence:
    """What was seen about one walked vertebra.

    ``region_votes``: stage-1 voxel counts (or fractions) inside its mask for
    (cervical, thoracic, lumbar). ``rib_score``: 0..1, how much rib-like bone sits beside it
    (None: not measured). ``centroid_lps``: its centroid, LPS mm.
    """

    region_votes: tuple[float, float, float]
    centroid_lps: tuple[float, float, float]
    rib_score: float | None = None
    # level_head.py: log p(level | looks) / frequency(level) for the 25 levels (None: not read)
    level_ratios: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ColumnEnds:
    """How the walk ended at each end: True when the spine ended inside the field of view
    (skull above the top vertebra / sacrum below the bottom one), False when the field of
    view (or the stage-1 box) cut it."""

    ends_above: bool = False
    ends_below: bool = False


@dataclass(frozen=True)
class IdentifyWeights:
    """Weights of the score terms (log units). Set from anatomy, not fitted to any case."""

    votes: float = 1.0
    ribs: float = 1.0  # measured rib evidence (ribs.py) is as direct as the region votes
    anchor: float = 4.0
    size: float = 0.5
    size_sigma_rel: float = 0.25
    size_cap: float = 1.0  # one odd step (a merged or missed vertebra) costs at most this
    l6_prior: float = 1.5
    sacralized_prior: float = 1.5
    vote_floor: float = 0.05
    level_head: float = 0.0  # the level head's ratios, summed per placement (rule 6)
    # a lumbar level's share that stage 1 calls thoracic, its ribs measured absent (rule 2)
    ribless_softness: float = 0.2


@dataclass(frozen=True)
class Identification:
    """Labels (VerSe values, cranial to caudal) with per-vertebra confidences 0..1."""

    labels: tuple[int, ...]
    confidences: tuple[float, ...]
    start_level: int  # index into LEVELS of the top vertebra
    placement_posterior: float
    scores: dict[int, float] = field(default_factory=dict)  # start level -> log-score
    anchors: tuple[str, ...] = ()  # what in view fixes the count (count_anchors)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(anatomy.vertebra(label).name for label in self.labels)


def _vote_fractions(votes: Sequence[float], floor: float) -> np.ndarray:
    v = np.asarray(votes, float).clip(min=0)
    total = v.sum()
    frac = v / total if total > 0 else np.full(3, 1.0 / 3.0)
    return (frac + floor) / (1.0 + 3.0 * floor)


def _vote_prior(name: str, rib_score: float | None, w: IdentifyWeights) -> np.ndarray:
    """How a level explains stage 1's votes: ``_region_prior``; for a lumbar level, where
    ribs.py measured the vertebra without ribs, ``w.ribless_softness`` of its look moves to
    thoracic (rule 2)."""
    cervical, thoracic, lumbar = _region_prior(name)
    ribless = rib_score is not None and rib_score <= RIBS_ABSENT
    if ribless and anatomy.vertebra(name).region == "lumbar":
        thoracic += w.ribless_softness * lumbar
        lumbar *= 1.0 - w.ribless_softness
    return np.array([cervical, thoracic, lumbar])


def _vertebra_loglik(ev: VertebraEvidence, level: int, w: IdentifyWeights) -> float:
    """Log-likelihood of one vertebra's own evidence (votes, ribs) under one level."""
    name = LEVELS[level].name
    q = _vote_fractions(ev.region_votes, w.vote_floor)
    pi = _vote_prior(name, ev.rib_score, w)
    score = w.votes * float(np.log(np.dot(pi, q) + 1e-9))
    if ev.rib_score is not None:
        r = float(np.clip(ev.rib_score, 0.0, 1.0))
        p = _rib_prior(name)
        score += w.ribs * float(np.log(p * r + (1 - p) * (1 - r) + 1e-3))
    return score


def _ideal_loglik(level: int, w: IdentifyWeights, rib_score: float | None) -> tuple[float, float]:
    """The best log-likelihood any evidence could reach under ``level`` (for confidences):
    votes all of one region, ribs as clear as can be."""
    pi = _vote_prior(LEVELS[level].name, rib_score, w)
    best_vote = max(float(np.dot(pi, _vote_fractions(one, w.vote_floor))) for one in np.eye(3))
    p = _rib_prior(LEVELS[level].name)
    return w.votes * float(np.log(best_vote + 1e-9)), w.ribs * float(np.log(max(p, 1 - p) + 1e-3))


def _size_loglik(evidence: Sequence[VertebraEvidence], start: int, w: IdentifyWeights) -> float:
    score = 0.0
    for i in range(len(evidence) - 1):
        step = float(
            np.linalg.norm(np.subtract(evidence[i].centroid_lps, evidence[i + 1].centroid_lps))
        )
        typical = _TYPICAL_STEP_MM[LEVELS[start + i].name]
        z = (step - typical) / (w.size_sigma_rel * typical)
        score -= w.size * min(0.5 * z * z, w.size_cap)
    return score


def _placement_score(
    evidence: Sequence[VertebraEvidence], ends: ColumnEnds, start: int, w: IdentifyWeights
) -> float:
    n = len(evidence)
    last = start + n - 1
    score = sum(_vertebra_loglik(ev, start + i, w) for i, ev in enumerate(evidence))
    if w.level_head:
        score += w.level_head * level_head_sum(evidence, start)
    score += _size_loglik(evidence, start, w)
    if ends.ends_above and start != 0:
        score -= w.anchor
    if ends.ends_below:
        if LEVELS[last].name == "L4":
            score -= w.sacralized_prior
        elif LEVELS[last].name not in ("L5", "L6"):
            score -= w.anchor
    if LEVELS[last].name == "L6":
        score -= w.l6_prior
    return score


def level_head_sum(evidence: Sequence[VertebraEvidence], start: int) -> float:
    """The level head's ratios summed over the column placed from level ``start`` (rule 6)."""
    return sum(
        ev.level_ratios[start + i] for i, ev in enumerate(evidence) if ev.level_ratios is not None
    )


def level_read(ev: VertebraEvidence) -> str | None:
    """The level the level head finds likeliest for this vertebra alone (None: not read)."""
    if ev.level_ratios is None:
        return None
    return LEVELS[int(np.argmax(ev.level_ratios))].name


def level_head_shift(evidence: Sequence[VertebraEvidence], start: int) -> tuple[int, float]:
    """Where the level head alone would place the column, among the placements stage 1
    leaves possible (:func:`regions_allow`), against ``start`` (the chosen top level):
    (levels it would move the names by, how many nats it prefers that). (0, 0.0) when it
    agrees or read no vertebra."""
    if all(ev.level_ratios is None for ev in evidence):
        return 0, 0.0
    sums = {
        s: level_head_sum(evidence, s)
        for s in range(_N_LEVELS - len(evidence) + 1)
        if s == start or regions_allow(evidence, s)
    }
    best = max(sums, key=lambda s: (sums[s], s == start, -s))
    return best - start, float(sums[best] - sums[start])


# The share of a vertebra's voxels stage 1 gives one region that makes it a clear call
CLEAR_REGION_SHARE = 0.9


def regions_allow(evidence: Sequence[VertebraEvidence], start: int) -> bool:
    """Whether the column placed from level ``start`` puts no vertebra that stage 1 clearly
    calls one region (``CLEAR_REGION_SHARE`` of its voxels) on a level that never looks so
    (pi = 0; the soft boundary levels C7, T12 and L1 look either way).

    Why: the level head reads a vertebra's look alone and, on short phantom views, has
    preferred placements that jump across regions: a 3 mm view of C4-C6 that stage 1 calls
    wholly cervical read as L1-L4 ("15 levels lower"), a T6-T8 view as L5-L6, and on two
    T11-L1 views named right a placement putting a wholly thoracic T12 at L2: five such
    checks on the short views (benchmarks/short_views.py), all wrong. Within what stage 1
    allows, the first is right (C4-C7) and the others a level off instead of two to eleven.
    A transitional vertebra or a missed one moves the names by a level or two, not across a
    region stage 1 sees."""
    for i, ev in enumerate(evidence):
        total = sum(ev.region_votes)
        if total <= 0:
            continue
        region = majority_region(ev.region_votes)
        clear = ev.region_votes[region] >= CLEAR_REGION_SHARE * total
        if clear and _region_prior(LEVELS[start + i].name)[region] == 0.0:
            return False
    return True


# ribs.py scores at which a vertebra counts as carrying ribs, or as measured without any
RIBS_SEEN = 0.5
RIBS_ABSENT = 0.2
# A name given with at least this confidence is meant to be right (issue 22's measure of a
# confidence that means something; benchmarks/accuracy.py and real.py count the misses) ...
TRUSTED_CONFIDENCE = 0.7
# ... and the highest confidence a name gets where nothing in view anchors the count
UNANCHORED_CONFIDENCE = 0.5


def count_anchors(evidence: Sequence[VertebraEvidence], ends: ColumnEnds) -> tuple[str, ...]:
    """What in the field of view fixes the count, whatever the names: the skull above the
    top vertebra (C1), the sacrum below the bottom one, the end of the ribs (a vertebra
    carrying ribs that stage 1 calls mostly thoracic, and another measured without any: the
    T12/L1 or C7/T1 boundary lies between them).

    Stage 1's region votes alone are no anchor: it tells thoracic vertebrae by their ribs,
    and in a crop tight around the spine, where neither ribs nor the ends of the spine are
    in view, it has been seen to call two lumbar vertebrae of a real CT thoracic (verse005):
    every name came out two levels off, with confidence 0.8. Nor are ribs beside a vertebra
    stage 1 calls cervical or lumbar: a cervical or lumbar rib, or other bone beside it (on a
    3 mm phantom view of C3-C5, the walk's top find, by C2 and the mandible, scored 0.84 and
    anchored the names C6-T1 at 0.72-0.75; on a lumbar crop the ilium beside L5 scored 1.0);
    either way no end of the ribs to count from.
    """
    anchors = []
    if ends.ends_above:
        anchors.append("skull")
    if ends.ends_below:
        anchors.append("sacrum")
    if any(_carries_thoracic_ribs(ev) for ev in evidence) and any(
        ev.rib_score is not None and ev.rib_score <= RIBS_ABSENT for ev in evidence
    ):
        anchors.append("rib ends")
    return tuple(anchors)


def _carries_thoracic_ribs(ev: VertebraEvidence) -> bool:
    """Ribs measured beside a vertebra that stage 1 calls mostly thoracic."""
    ribbed = ev.rib_score is not None and ev.rib_score >= RIBS_SEEN
    return ribbed and majority_region(ev.region_votes) == 1


def majority_region(votes: Sequence[float]) -> int | None:
    """The region (0 cervical, 1 thoracic, 2 lumbar) stage 1 gives most of a vertebra's
    voxels; None where it gives none."""
    return int(np.argmax(votes)) if sum(votes) > 0 else None


def identify(
    evidence: Sequence[VertebraEvidence],
    ends: ColumnEnds = ColumnEnds(),
    weights: IdentifyWeights = IdentifyWeights(),
) -> Identification:
    """Name a column of vertebrae ordered cranial to caudal (see the module doc for the rule).

    Raises ValueError for an empty column or one longer than the 25-level spine model.
    """
    n = len(evidence)
    if n == 0:
        raise ValueError("no vertebrae to identify")
    if n > _N_LEVELS:
        raise ValueError(
            f"{n} vertebrae found, more than the {_N_LEVELS} levels of the spine model"
        )
    scores = {s: _placement_score(evidence, ends, s, weights) for s in range(_N_LEVELS - n + 1)}
    starts = np.array(list(scores))
    values = np.array([scores[s] for s in starts])
    best = int(starts[int(np.argmax(values))])  # ties: the most cranial start, deterministic
    posterior = np.exp(values - values.max())
    posterior /= posterior.sum()
    p_best = float(posterior[int(np.argmax(values))])
    confidences = []
    for i, ev in enumerate(evidence):
        own = _vertebra_loglik(ev, best + i, weights)
        ideal_votes, ideal_ribs = _ideal_loglik(best + i, weights, ev.rib_score)
        ideal = ideal_votes + (ideal_ribs if ev.rib_score is not None else 0.0)
        confidences.append(p_best * min(1.0, float(np.exp(own - ideal))))
    anchors = count_anchors(evidence, ends)
    cap = 1.0 if anchors else UNANCHORED_CONFIDENCE
    confidences = [round(min(c, cap), 4) for c in confidences]
    labels = tuple(LEVELS[best + i].label for i in range(n))
    return Identification(labels, tuple(confidences), best, p_best, scores, anchors)
