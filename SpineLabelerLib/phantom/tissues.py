"""Tissue classes the generator draws and the Hounsfield units it gives them.

The tissue map (uint8, one class per voxel) is written next to the CT so that the
realism measures can compare a phantom's tissues with a real CT's. HU ranges follow
PHANTOM.md (population ranges, drawn a little beyond them so that a network never
learns one scanner's calibration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The real CT the cortex HU range below was matched to: a net or fit trained on phantoms was
# chosen by it in this way (SpineLabelerLib/provenance.py, role "phantom_hu").
HU_MATCHED_TO_CASE = "sub-verse008"

AIR, FAT, MUSCLE, ORGAN, LUNG, CORTEX, CANCELLOUS, DISC, CANAL = 0, 1, 2, 3, 4, 5, 6, 7, 8
BONE_CORTEX, BONE_MARROW, CARTILAGE, VESSEL, METAL, TABLE, GAS, BRAIN = (
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
)

TISSUE_NAMES: dict[int, str] = {
    AIR: "air", FAT: "fat", MUSCLE: "muscle", ORGAN: "organ", LUNG: "lung",
    CORTEX: "vertebra cortex", CANCELLOUS: "vertebra cancellous", DISC: "disc",
    CANAL: "spinal canal", BONE_CORTEX: "other bone cortex", BONE_MARROW: "other bone marrow",
    CARTILAGE: "cartilage", VESSEL: "vessel", METAL: "metal", TABLE: "table",
    GAS: "bowel gas", BRAIN: "brain",
}  # fmt: skip


@dataclass(frozen=True)
class TissueHU:
    """The mean HU of each tissue in one phantom (before noise and blur)."""

    air: float
    fat: float
    muscle: float
    organ: float
    liver: float
    kidney: float
    lung: float
    cortex: float
    cancellous: float
    disc: float
    canal: float
    marrow: float
    cartilage: float
    blood: float
    metal: float
    table: float
    brain: float
    contrast: bool

    @staticmethod
    def draw(rng: np.random.Generator, osteoporotic: bool) -> TissueHU:
        contrast = bool(rng.random() < 0.5)
        blood = rng.uniform(150, 350) if contrast else rng.uniform(35, 55)
        return TissueHU(
            air=rng.uniform(-1010, -980),
            fat=rng.uniform(-120, -50),
            muscle=rng.uniform(35, 65),
            organ=rng.uniform(20, 45),
            liver=rng.uniform(90, 130) if contrast else rng.uniform(50, 70),
            kidney=rng.uniform(140, 220) if contrast else rng.uniform(25, 40),
            lung=rng.uniform(-900, -720),
            # A real cortex is thinner than a voxel, so partial volume dims it; drawn below
            # PHANTOM.md's 700 so the rim's measured HU matches a real CT's (benchmarks/realism).
            cortex=rng.uniform(400, 1300),
            # clinical CT cohorts are mostly older adults: trabecular HU falls with age
            # (median L1 trabecular HU of adults over 50 is ~120-160; < 110 osteoporotic)
            cancellous=rng.uniform(30, 110) if osteoporotic else rng.uniform(60, 200),
            disc=rng.uniform(65, 115),
            canal=rng.uniform(5, 40),
            marrow=rng.uniform(-40, 120),
            cartilage=rng.uniform(80, 180),
            blood=blood,
            metal=rng.uniform(2800, 3071),
            table=rng.uniform(-300, 150),
            brain=rng.uniform(28, 42),
            contrast=contrast,
        )
