"""The arrays a phantom is painted into, and the two ways of painting a shape.

``Canvas`` holds, on one ``Grid``: the CT (float32 HU), the vertebra labelmap (uint8
VerSe values), the tissue map (uint8 ``tissues`` classes) and the rib map (uint8: the
VerSe label of the vertebra that carries each rib voxel). Shapes are painted with a
soft edge ``edge_mm`` wide (the shape covers a voxel by ``clip(0.5 - sdf / edge, 0, 1)``)
so that the CT shows partial-volume edges while the labels stay exact (sdf < 0 at the
voxel centre).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from SpineLabelerLib.phantom.field import Field, Grid


@dataclass
class Canvas:
    grid: Grid
    edge_mm: float
    hu: np.ndarray = field(init=False)
    labels: np.ndarray = field(init=False)
    tissue: np.ndarray = field(init=False)
    ribs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.hu = np.zeros(self.grid.shape, np.float32)
        self.labels = np.zeros(self.grid.shape, np.uint8)
        self.tissue = np.zeros(self.grid.shape, np.uint8)
        self.ribs = np.zeros(self.grid.shape, np.uint8)

    def _near(self, f: Field) -> tuple[tuple, np.ndarray]:
        """Global index arrays of the field's voxels that the shape at least partly covers,
        and the distances there."""
        near = f.sdf < 0.5 * self.edge_mm
        local = np.nonzero(near)
        idx = tuple(a + s.start for a, s in zip(local, f.box))
        return idx, f.sdf[near]

    def paint(self, f: Field, hu: float, tissue: int, *, protect_labels: bool = True) -> None:
        """Paint a homogeneous tissue (organ, disc, canal) where the field is inside.
        Voxels of a vertebra already painted stay untouched when ``protect_labels``."""
        idx, d = self._near(f)
        if protect_labels:
            keep = self.labels[idx] == 0
            idx, d = tuple(a[keep] for a in idx), d[keep]
        alpha = np.clip(0.5 - d / self.edge_mm, 0.0, 1.0)
        self.hu[idx] += alpha * (np.float32(hu) - self.hu[idx])
        self.tissue[idx[0][d < 0], idx[1][d < 0], idx[2][d < 0]] = tissue

    def paint_bone(
        self,
        f: Field,
        cortex_hu: float,
        core_hu: float | Callable[[tuple[np.ndarray, ...]], np.ndarray],
        cortex_mm: float,
        classes: tuple[int, int],
        *,
        label: int = 0,
        rib_owner: int = 0,
        protect_labels: bool = True,
    ) -> None:
        """Paint a bone: cortical shell ``cortex_mm`` thick around a cancellous core.
        ``core_hu``: HU, or a texture called with the painted voxels' (k, j, i) index
        arrays that returns their HU. ``classes``: (shell, core) tissue classes."""
        idx, d = self._near(f)
        if protect_labels:
            keep = self.labels[idx] == 0
            idx, d = tuple(a[keep] for a in idx), d[keep]
        core = core_hu(idx) if callable(core_hu) else np.float32(core_hu)
        shell = np.clip(
            (d + np.float32(cortex_mm)) / np.float32(max(self.edge_mm, 0.5)) + 0.5, 0.0, 1.0
        )
        value = core + shell * (np.float32(cortex_hu) - core)
        alpha = np.clip(0.5 - d / self.edge_mm, 0.0, 1.0)
        self.hu[idx] += alpha * (value - self.hu[idx])
        inside = d < 0
        where = tuple(a[inside] for a in idx)
        self.tissue[where] = np.where(d[inside] > -cortex_mm, classes[0], classes[1]).astype(
            np.uint8
        )
        if label:
            self.labels[where] = label
            self.ribs[where] = 0
        if rib_owner:
            self.ribs[where] = rib_owner
