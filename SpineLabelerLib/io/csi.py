"""Iterate the CSI 2014 spine segmentation data (or any folder in its naming scheme).

Accepted pattern: a volume ``<case>.<ext>`` and its mask ``<case>_label.<ext2>``, anywhere
under the root (same folder or e.g. ``images/`` and ``labels/``), where ext and ext2 are
any of .mhd, .mha, .nii, .nii.gz, .nrrd (e.g. ``case1.mhd`` + ``case1_label.mhd``, or
``case1.nii.gz`` + ``case1_label.nii.gz``). Mask values are passed through unchanged
unless ``value_map`` (mask value -> VerSe value) is given; CSI 2014 has no centroid files,
so centroids are None.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SpineLabelerLib.image import Image
from SpineLabelerLib.io.datasets import LabelledCase, index_files, pick
from SpineLabelerLib.io.reader import read_ct, read_labelmap

log = logging.getLogger(__name__)

CSI_SUFFIXES = (".nii.gz", ".mhd", ".mha", ".nii", ".nrrd")
LABEL_TAG = "_label"


def _split(name: str) -> tuple[str, str] | None:
    for suffix in CSI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], suffix
    return None


def find_csi_cases(root: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """``(case, image path, mask path)`` for every image with a mask, sorted by case."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    images: dict[str, list[Path]] = {}
    masks: dict[str, list[Path]] = {}
    for name, paths in index_files(root).items():
        parts = _split(name)
        if parts is None:
            continue
        stem = parts[0]
        if stem.endswith(LABEL_TAG):
            masks.setdefault(stem[: -len(LABEL_TAG)], []).extend(paths)
        else:
            images.setdefault(stem, []).extend(paths)
    cases = []
    for case in sorted(images):
        if case not in masks:
            log.warning("%s: no %s%s.* mask; case skipped", case, case, LABEL_TAG)
            continue
        image = images[case][0]
        cases.append((case, image, pick(masks[case], image)))
    return cases


@dataclass(frozen=True)
class CsiFiles:
    """The files of one case; nothing is read until :meth:`load` or :meth:`read`."""

    case_id: str
    image: Path
    mask: Path
    value_map: Mapping[int, int] | None = None

    @property
    def name(self) -> str:
        return self.case_id

    def load(self) -> tuple[Image, Image]:
        """(CT in HU, labels on its grid, remapped by ``value_map``), read and checked."""
        ct = read_ct(self.image)
        labels = read_labelmap(self.mask, reference=ct)
        if self.value_map:
            lut = np.arange(max(int(labels.array.max()), *self.value_map) + 1)
            for source, target in self.value_map.items():
                lut[source] = target
            labels = labels.with_array(lut[labels.array].astype(labels.array.dtype))
        return ct, labels

    def read(self) -> LabelledCase:
        return LabelledCase(self.case_id, *self.load(), None)


def iter_cases(
    root: str | os.PathLike, value_map: Mapping[int, int] | None = None
) -> Iterator[CsiFiles]:
    """Lazy: the cases' files, each read on demand with ``.load()`` / ``.read()``."""
    for case, image, mask in find_csi_cases(root):
        yield CsiFiles(case, image, mask, value_map)


def iter_csi2014(
    root: str | os.PathLike, value_map: Mapping[int, int] | None = None
) -> Iterator[LabelledCase]:
    """Yield ``(case, ct, labels, None)`` per case, read and checked."""
    for files in iter_cases(root, value_map):
        yield files.read()
