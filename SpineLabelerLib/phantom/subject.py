"""Draw one synthetic subject: which vertebrae, their sizes, curvature, pathology.

Sizes follow PHANTOM.md's level table (textbook morphometry, mm), scaled per subject
(body size) and jittered per level by a few percent; the transitional variants change
which levels exist and which carry ribs. Everything is drawn from one
``numpy.random.Generator`` so that a seed fixes the subject.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from SpineLabelerLib import anatomy

VARIANTS: tuple[str, ...] = ("normal", "L6", "11-ribs", "13-ribs", "cervical-rib", "sacralized-L5")


@dataclass
class LevelShape:
    """Shape parameters of one vertebra (mm, degrees), in its local frame
    (u left, v posterior, w superior; origin at the body centre)."""

    label: int
    name: str
    kind: str  # "C1" | "C2" | "cervical" | "C7" | "thoracic" | "lumbar"
    body_w: float
    body_d: float
    body_h: float
    canal_w: float
    canal_d: float
    pedicle_w: float
    lamina_t: float
    tp_span: float  # whole width across the transverse processes
    tp_r: float
    sp_len: float
    sp_slope_deg: float  # spinous process slope below horizontal
    sp_r: float
    gap_below: float = 5.0  # disc (or joint) height to the next vertebra down
    gap_above: float = 5.0
    rib: str | None = None  # None | "rib" | "cervical-rib" | "lumbar-rib"
    fracture: str | None = None
    fracture_loss: float = 0.0
    cortex_mm: float = 1.5
    tp_style: str | None = None  # transverse processes of another region (None: own kind)


@dataclass
class Subject:
    """Everything drawn about one synthetic patient that is not scanner physics."""

    variant: str
    levels: list[LevelShape]
    size_scale: float
    lordosis_cervical_deg: float
    kyphosis_thoracic_deg: float
    lordosis_lumbar_deg: float
    scoliosis: dict | None
    osteoporotic: bool
    fat_mm: float  # subcutaneous fat thickness
    body_width_scale: float
    arms_up: bool
    metal_levels: list[int] = field(default_factory=list)
    sacral_transitional: bool = False

    @property
    def labels(self) -> list[int]:
        return [lv.label for lv in self.levels]

    @property
    def rib_labels(self) -> list[int]:
        return [lv.label for lv in self.levels if lv.rib]

    @property
    def fractures(self) -> dict[str, str]:
        return {
            lv.name: f"{lv.fracture} {lv.fracture_loss:.0%}" for lv in self.levels if lv.fracture
        }


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _mean_shape(label: int) -> dict:
    """Population-mean shape of a level (PHANTOM.md table), before any jitter."""
    name = anatomy.vertebra(label).name
    if name == "C1":
        return dict(
            kind="C1",
            body_w=0,
            body_d=0,
            body_h=14,
            canal_w=28,
            canal_d=30,
            pedicle_w=7,
            lamina_t=6,
            tp_span=76,
            tp_r=4.5,
            sp_len=6,
            sp_slope_deg=0,
            sp_r=4,
        )
    if name == "C2":
        return dict(
            kind="C2",
            body_w=17,
            body_d=15,
            body_h=20,
            canal_w=24,
            canal_d=16,
            pedicle_w=7,
            lamina_t=5.5,
            tp_span=55,
            tp_r=4,
            sp_len=24,
            sp_slope_deg=20,
            sp_r=4.5,
        )
    if name in ("C3", "C4", "C5", "C6"):
        t = (label - 3) / 3
        return dict(
            kind="cervical",
            body_w=_lerp(15, 18, t),
            body_d=_lerp(15, 16, t),
            body_h=14,
            canal_w=23,
            canal_d=14.5,
            pedicle_w=5.5,
            lamina_t=4.5,
            tp_span=_lerp(47, 53, t),
            tp_r=3.5,
            sp_len=_lerp(14, 20, t),
            sp_slope_deg=25,
            sp_r=3.5,
        )
    if name == "C7":
        return dict(
            kind="C7",
            body_w=20,
            body_d=16,
            body_h=15,
            canal_w=22,
            canal_d=14.5,
            pedicle_w=6,
            lamina_t=5,
            tp_span=65,
            tp_r=4.5,
            sp_len=36,
            sp_slope_deg=25,
            sp_r=4.5,
        )
    if name.startswith("T"):
        n = int(name[1:])
        t = (n - 1) / 11
        # spinous processes slope most steeply at T5-T8
        slope = 30 + 32 * np.exp(-(((n - 6.5) / 3.0) ** 2))
        return dict(
            kind="thoracic",
            body_w=_lerp(25, 40, t),
            body_d=_lerp(17, 32, t),
            body_h=_lerp(15, 23, t),
            canal_w=_lerp(18, 20, t),
            canal_d=_lerp(15, 17, t),
            pedicle_w=_lerp(6, 8, t),
            lamina_t=6,
            tp_span=_lerp(72, 58, t**2),
            tp_r=_lerp(5, 4.5, t),
            sp_len=_lerp(38, 34, t) + 6 * np.exp(-(((n - 6) / 3.0) ** 2)),
            sp_slope_deg=slope,
            sp_r=4.5,
        )
    n = 5 if name == "L6" else int(name[1:])
    t = (n - 1) / 4
    span = [74, 80, 90, 86, 84][n - 1]
    return dict(
        kind="lumbar",
        body_w=_lerp(42, 50, t),
        body_d=_lerp(30, 35, t),
        body_h=_lerp(25, 27, t),
        canal_w=_lerp(21, 24, t),
        canal_d=_lerp(15.5, 16.5, t),
        pedicle_w=_lerp(9, 12, t),
        lamina_t=8.5,
        tp_span=span,
        tp_r=4.8,
        sp_len=30,
        sp_slope_deg=5,
        sp_r=4.0,
    )


def _gap_below(name: str) -> float:
    """Mean disc height (or joint space for C1-C2) below a level, mm."""
    if name == "C1":
        return 3.0
    if name[0] == "C":
        return 5.0
    if name[0] == "T":
        return _lerp(4.0, 6.0, (int(name[1:]) - 1) / 11) if name != "T12" else 7.0
    # at the rim; the concave endplates add ~2 mm at the centre (8-12 mm there)
    return {"L1": 7.0, "L2": 7.5, "L3": 8.5, "L4": 9.0, "L5": 9.0, "L6": 8.5}[name]


def level_names(variant: str) -> list[str]:
    """Names of the free (labelled) vertebrae of a variant, cranial to caudal."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    names = (
        [f"C{i}" for i in range(1, 8)]
        + [f"T{i}" for i in range(1, 13)]
        + [f"L{i}" for i in range(1, 6)]
    )
    if variant == "L6":
        names.append("L6")
    if variant == "sacralized-L5":
        names.remove("L5")
    return names


def rib_levels(variant: str) -> dict[str, str]:
    """Which levels carry ribs, and what kind."""
    ribs = {f"T{i}": "rib" for i in range(1, 13)}
    if variant == "11-ribs":
        del ribs["T12"]
    elif variant == "13-ribs":
        ribs["L1"] = "lumbar-rib"
    elif variant == "cervical-rib":
        ribs["C7"] = "cervical-rib"
    return ribs


# Share of subjects with pedicle screws (2-3 levels of T10-L5): the benchmark's draw.
METAL_PROBABILITY = 0.08


def draw_subject(
    rng: np.random.Generator, variant: str = "normal", metal_probability: float = METAL_PROBABILITY
) -> Subject:
    """Draw a subject of the given transitional variant (sizes, curvature, pathology).
    ``metal_probability`` > the default gives a training run more screws to learn (a
    subject's draws are the same for any value until its metal is drawn)."""
    names = level_names(variant)
    ribs = rib_levels(variant)
    scale = rng.uniform(0.9, 1.1)
    cortex = rng.uniform(0.5, 1.1)  # the body's shell is thin; thin processes are mostly cortex
    levels = []
    for name in names:
        label = anatomy.vertebra(name).label
        m = _mean_shape(label)
        jitter = {
            k: float(v) * scale * rng.uniform(0.95, 1.05)
            for k, v in m.items()
            if isinstance(v, (float, int)) and k != "sp_slope_deg"
        }
        m.update(jitter)
        m["sp_slope_deg"] = float(m["sp_slope_deg"] + rng.uniform(-5, 5))
        levels.append(
            LevelShape(
                label=label,
                name=name,
                rib=ribs.get(name),
                cortex_mm=cortex * rng.uniform(0.9, 1.1),
                gap_below=_gap_below(name) * scale * rng.uniform(0.85, 1.15),
                **m,
            )
        )
    # Bodies, discs and canals vary apart (discs narrow with age and degeneration; canals
    # differ between people): one draw per subject for each, on top of the size scale
    # (benchmarks/realism.py: shape per level).
    body_height, disc_height = rng.uniform(0.95, 1.15), rng.uniform(0.6, 1.1)
    canal = rng.uniform(0.95, 1.2)
    for lv in levels:
        lv.body_h *= body_height
        lv.gap_below *= disc_height
        lv.canal_w *= canal
        lv.canal_d *= canal
    for upper, lower in zip(levels, levels[1:]):
        lower.gap_above = upper.gap_below
    if variant == "11-ribs":  # a rib-less T12 looks lumbar: long flat transverse processes
        t12 = next(lv for lv in levels if lv.name == "T12")
        t12.tp_style, t12.tp_span = "lumbar", t12.tp_span * 1.15
    osteoporotic = bool(rng.random() < 0.3)  # clinical spine CT cohorts skew old
    # Fractures: ~15 % of subjects, 1-3 levels T4-L5, more likely when osteoporotic.
    if rng.random() < (0.35 if osteoporotic else 0.12):
        candidates = [
            lv
            for lv in levels
            if lv.kind in ("thoracic", "lumbar") and lv.name not in ("T1", "T2", "T3")
        ]
        for lv in rng.choice(candidates, size=int(rng.integers(1, 4)), replace=False):
            lv.fracture = str(rng.choice(["wedge", "biconcave", "crush"]))
            lv.fracture_loss = float(rng.uniform(0.2, 0.5))
    scoliosis = None
    if rng.random() < 0.2:
        scoliosis = {
            "cobb_deg": float(rng.uniform(10, 60)),
            "apex": str(rng.choice(["thoracic", "thoracolumbar", "lumbar", "double"])),
            "side": float(rng.choice([-1.0, 1.0])),
        }
    metal = []
    if rng.random() < metal_probability:
        lumbar = [lv.label for lv in levels if lv.kind in ("lumbar", "thoracic") and lv.label >= 17]
        first = int(rng.integers(0, max(len(lumbar) - 1, 1)))
        metal = lumbar[first : first + int(rng.integers(2, 4))]
    return Subject(
        variant=variant,
        levels=levels,
        size_scale=float(scale),
        lordosis_cervical_deg=float(rng.uniform(15, 40)),
        kyphosis_thoracic_deg=float(rng.uniform(20, 50)),
        lordosis_lumbar_deg=float(rng.uniform(35, 60)),
        scoliosis=scoliosis,
        osteoporotic=osteoporotic,
        fat_mm=float(rng.uniform(5, 40)),
        body_width_scale=float(rng.uniform(0.85, 1.2)),
        arms_up=bool(rng.random() < 0.5),
        metal_levels=metal,
        sacral_transitional=variant == "sacralized-L5",
    )
