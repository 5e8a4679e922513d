"""The fixed benchmark set: which phantoms every accuracy figure is quoted on.

Each entry is (case id, seed, fov, variant, spacing_mm). ``spacing_mm=None`` means the
clinical draw of ``generate_case`` for that seed (0.3-1.0 mm in-plane, 0.5-3 mm slices,
a share with flipped, permuted or oblique axes and tight crops), which the seed fixes,
so the benchmark can regenerate any case without the disk: ``generate_case(seed, fov,
variant, spacing_mm)``. 54 cases: every field of view, every variant (>= 6 each), 6 legs,
6 tight lumbar crops that cut the sacrum.
"""

from __future__ import annotations

from dataclasses import dataclass

BENCHMARK_SEED_BASE = 900_000
# The same plan drawn from other seeds: where a rule of the pipeline may be looked at and tuned,
# so that the benchmark's own cases stay unseen. Disjoint from training (0...), validation
# (100000...) and the model cards' held-out seeds (200000...).
DEVELOPMENT_SEED_BASE = 700_000

# variant -> fields of view its cases use, in order (the variant must be visible in them)
_PLAN: dict[str, tuple[str, ...]] = {
    "normal": ("whole", "head-neck", "chest", "abdomen", "lumbar", "whole", "chest", "lumbar",
               "head-neck", "abdomen", "chest", "lumbar"),
    "L6": ("lumbar", "abdomen", "whole", "lumbar", "abdomen", "whole"),
    "sacralized-L5": ("lumbar", "abdomen", "whole", "lumbar", "abdomen", "whole"),
    "11-ribs": ("chest", "abdomen", "whole", "lumbar", "chest", "abdomen"),
    "13-ribs": ("chest", "abdomen", "whole", "lumbar", "chest", "abdomen"),
    "cervical-rib": ("head-neck", "chest", "whole", "head-neck", "head-neck", "whole"),
    "leg": ("leg",) * 6,
}  # fmt: skip

# Added after the plan above (their seeds follow its 48): tight lumbar crops whose lower edge
# cuts the top of the sacrum, as VerSe's scans do, where a cut sacrum can pass for a vertebra.
_SACRUM_CUT: tuple[tuple[str, str], ...] = (
    ("normal", "lumbar-crop"), ("normal", "lumbar-crop"), ("normal", "lumbar-crop"),
    ("L6", "lumbar-crop"), ("sacralized-L5", "lumbar-crop"), ("normal", "lumbar-crop"),
)  # fmt: skip


@dataclass(frozen=True)
class CaseSpec:
    case_id: str
    seed: int
    fov: str
    variant: str
    spacing_mm: tuple[float, float, float] | None = None


def benchmark_set_specs(development: bool = False) -> list[CaseSpec]:
    """The fixed list of benchmark cases (54), in a stable order; ``development`` gives the
    same plan on development seeds (cases ``dev000``...)."""
    base, prefix = (DEVELOPMENT_SEED_BASE, "dev") if development else (BENCHMARK_SEED_BASE, "bench")
    specs = []
    pairs = [(variant, fov) for variant, fovs in _PLAN.items() for fov in fovs]
    for n, (variant, fov) in enumerate(pairs + list(_SACRUM_CUT)):
        specs.append(
            CaseSpec(f"{prefix}{n:03d}", base + n, fov, "normal" if variant == "leg" else variant)
        )
    return specs
