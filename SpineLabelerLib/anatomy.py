"""The one table of vertebrae: VerSe label values, names, regions, colours, codes.

Everything that names, colours or codes a vertebra reads it from here, so an off-by-one
label is visible at a glance in every viewer and export at once.

Label values follow the VerSe convention: 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6,
(28 T13 is VerSe's value for a thirteenth thoracic vertebra; it is not produced here).
Stage-1 region classes: 0 background, 1 cervical, 2 thoracic, 3 lumbar.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

REGIONS: tuple[str, ...] = ("cervical", "thoracic", "lumbar")
REGION_CLASS: dict[str, int] = {"background": 0, "cervical": 1, "thoracic": 2, "lumbar": 3}

# SNOMED CT codes of each vertebra (body structure). L6 has no concept of its own in
# SNOMED CT, so it carries the generic "Vertebra" code and is told apart by its name.
_SNOMED: dict[str, tuple[str, str]] = {
    "C1": ("14806007", "First cervical vertebra"),
    "C2": ("39976000", "Second cervical vertebra"),
    "C3": ("113205007", "Third cervical vertebra"),
    "C4": ("5329002", "Fourth cervical vertebra"),
    "C5": ("36978003", "Fifth cervical vertebra"),
    "C6": ("36054005", "Sixth cervical vertebra"),
    "C7": ("87391001", "Seventh cervical vertebra"),
    "T1": ("64864005", "First thoracic vertebra"),
    "T2": ("53733008", "Second thoracic vertebra"),
    "T3": ("1626008", "Third thoracic vertebra"),
    "T4": ("73071006", "Fourth thoracic vertebra"),
    "T5": ("56401006", "Fifth thoracic vertebra"),
    "T6": ("45296009", "Sixth thoracic vertebra"),
    "T7": ("62487009", "Seventh thoracic vertebra"),
    "T8": ("11068009", "Eighth thoracic vertebra"),
    "T9": ("82687006", "Ninth thoracic vertebra"),
    "T10": ("7610001", "Tenth thoracic vertebra"),
    "T11": ("12989004", "Eleventh thoracic vertebra"),
    "T12": ("23215003", "Twelfth thoracic vertebra"),
    "L1": ("66794005", "First lumbar vertebra"),
    "L2": ("14293000", "Second lumbar vertebra"),
    "L3": ("36470004", "Third lumbar vertebra"),
    "L4": ("11994002", "Fourth lumbar vertebra"),
    "L5": ("49668003", "Fifth lumbar vertebra"),
    "L6": ("51282000", "Vertebra"),
}

# Slicer terminology: category "Anatomical Structure" (SCT 123037004, as in Slicer's DICOM master list).
TERMINOLOGY_CATEGORY = ("123037004", "SCT", "Anatomical Structure")

# Hue ranges (degrees) of the three region families; neighbours alternate in lightness
# and step in hue so that two adjacent vertebrae never look alike.
_HUE_RANGE = {"cervical": (185.0, 250.0), "thoracic": (50.0, 140.0), "lumbar": (345.0, 395.0)}


@dataclass(frozen=True)
class Vertebra:
    """One level of the spine model."""

    label: int  # VerSe label value
    name: str  # "C1" ... "L6"
    region: str  # "cervical" | "thoracic" | "lumbar"
    color_rgb: tuple[int, int, int]  # 0-255
    snomed_code: str
    snomed_meaning: str

    @property
    def region_class(self) -> int:
        """Stage-1 class index of this vertebra's region."""
        return REGION_CLASS[self.region]

    @property
    def color_float(self) -> tuple[float, float, float]:
        return tuple(c / 255.0 for c in self.color_rgb)  # type: ignore[return-value]

    def terminology_string(self) -> str:
        """Slicer's segment terminology entry, as stored in .seg.nrrd headers."""
        cat_code, cat_scheme, cat_meaning = TERMINOLOGY_CATEGORY
        return (
            f"Segmentation category and type - 3D Slicer General Anatomy list"
            f"~{cat_scheme}^{cat_code}^{cat_meaning}"
            f"~SCT^{self.snomed_code}^{self.snomed_meaning}~^^"
            f"~Anatomic codes - DICOM master list~^^~^^"
        )


def _region_levels() -> list[tuple[str, str]]:
    levels = [(f"C{i}", "cervical") for i in range(1, 8)]
    levels += [(f"T{i}", "thoracic") for i in range(1, 13)]
    levels += [(f"L{i}", "lumbar") for i in range(1, 7)]
    return levels


def _level_color(index_in_region: int, count_in_region: int, region: str) -> tuple[int, int, int]:
    lo, hi = _HUE_RANGE[region]
    hue = (lo + (hi - lo) * index_in_region / max(count_in_region - 1, 1)) % 360.0
    light = 0.62 if index_in_region % 2 == 0 else 0.42
    r, g, b = colorsys.hls_to_rgb(hue / 360.0, light, 0.85)
    return (round(r * 255), round(g * 255), round(b * 255))


def _build_table() -> tuple[Vertebra, ...]:
    levels = _region_levels()
    counts = {region: sum(1 for _, r in levels if r == region) for region in REGIONS}
    seen = dict.fromkeys(REGIONS, 0)
    table = []
    for label, (name, region) in enumerate(levels, start=1):
        color = _level_color(seen[region], counts[region], region)
        seen[region] += 1
        code, meaning = _SNOMED[name]
        table.append(Vertebra(label, name, region, color, code, meaning))
    return tuple(table)


VERTEBRAE: tuple[Vertebra, ...] = _build_table()
BY_LABEL: dict[int, Vertebra] = {v.label: v for v in VERTEBRAE}
BY_NAME: dict[str, Vertebra] = {v.name: v for v in VERTEBRAE}
MAX_LABEL = max(BY_LABEL)


def vertebra(label_or_name: int | str) -> Vertebra:
    """Look a vertebra up by VerSe label value or by name ("T12")."""
    table = BY_LABEL if isinstance(label_or_name, int) else BY_NAME
    try:
        return table[label_or_name]  # type: ignore[index]
    except KeyError:
        raise KeyError(f"unknown vertebra {label_or_name!r}; expected 1-25 or C1..L6") from None
