"""A tiny stand-in for a phantom: a column of box 'vertebrae' in soft tissue (tests only).

Case n: CT (K, J, I) = (48, 20, 20) at 1.5 mm, identity direction; vertebrae T10-L3 (VerSe
17-22) as 600 HU boxes 5 slices high with 2-slice discs between them; the column starts
n slices higher for each n (mod 4) so that cases differ.
"""

from __future__ import annotations

import numpy as np

from SpineLabelerLib.image import Image
from SpineLabelerLib.training.data import FunctionSource

SHAPE_KJI = (48, 20, 20)
SPACING_MM = (1.5, 1.5, 1.5)


def tiny_case(n: int) -> tuple[Image, Image]:
    ct = np.full(SHAPE_KJI, 40.0, np.float32)
    ct[:, :, :3] = ct[:, :, -3:] = -1000.0  # air at the sides
    labels = np.zeros(SHAPE_KJI, np.uint8)
    k = 2 + n % 4
    for label in range(22, 16, -1):  # L3 at the bottom (k small = inferior) up to T10
        ct[k : k + 5, 6:14, 7:13] = 600.0
        labels[k : k + 5, 6:14, 7:13] = label
        k += 7
    return (
        Image(ct, SPACING_MM, (0.0, 0.0, 0.0)),
        Image(labels, SPACING_MM, (0.0, 0.0, 0.0)),
    )


def tiny_source(count: int = 4, name: str = "tiny") -> FunctionSource:
    return FunctionSource(tiny_case, count, name)
