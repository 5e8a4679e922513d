"""Iterate a VerSe data set: CT, vertebra mask and (when present) centroids per case.

Accepted layouts (file names as VerSe'19/'20 publish them):

- BIDS-like: ``rawdata/sub-X/sub-X[_entity-...]_ct.nii.gz`` with
  ``derivatives/sub-X/sub-X[...]_seg-vert_msk.nii.gz`` and
  ``derivatives/sub-X/sub-X[...]_seg-subreg_ctd.json``;
- flat: ``sub-X_ct.nii.gz`` and ``sub-X_seg-vert_msk.nii.gz`` side by side (a ctd file
  beside them is used too).

The case id is the CT file name without ``_ct.nii.gz`` (e.g. ``sub-verse008``). A CT
without a mask is skipped with a warning. Masks hold VerSe values already.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from SpineLabelerLib.image import Image
from SpineLabelerLib.io.centroids import read_verse_centroids
from SpineLabelerLib.io.datasets import LabelledCase, index_files, pick, warn_if_centroids_disagree
from SpineLabelerLib.io.reader import read_ct, read_labelmap

log = logging.getLogger(__name__)

CT_SUFFIX = "_ct.nii.gz"
MASK_SUFFIX = "_seg-vert_msk.nii.gz"
CENTROID_SUFFIX = "_seg-subreg_ctd.json"


@dataclass(frozen=True)
class VerseFiles:
    """The files of one case; nothing is read until :meth:`load` or :meth:`read`."""

    case_id: str
    ct: Path
    mask: Path
    centroids: Path | None

    @property
    def name(self) -> str:
        return self.case_id

    def load(self) -> tuple[Image, Image]:
        """(CT in HU, labels on its grid), read and checked."""
        ct = read_ct(self.ct)
        return ct, read_labelmap(self.mask, reference=ct)

    def read(self) -> LabelledCase:
        """The whole case, centroids (LPS mm) included when the data set has them."""
        ct, labels = self.load()
        centroids = None
        if self.centroids is not None:
            centroids = read_verse_centroids(self.centroids, reference=ct)
            warn_if_centroids_disagree(self.case_id, centroids, labels)
        return LabelledCase(self.case_id, ct, labels, centroids)


def find_verse_cases(root: str | os.PathLike) -> list[VerseFiles]:
    """The cases under ``root`` (either layout), sorted by case id."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    files = index_files(root)
    cases = []
    for name in sorted(n for n in files if n.endswith(CT_SUFFIX)):
        case_id = name[: -len(CT_SUFFIX)]
        for ct in files[name]:
            masks = files.get(case_id + MASK_SUFFIX)
            if not masks:
                log.warning("%s: no %s%s; case skipped", ct, case_id, MASK_SUFFIX)
                continue
            ctds = files.get(case_id + CENTROID_SUFFIX)
            cases.append(VerseFiles(case_id, ct, pick(masks, ct), pick(ctds, ct) if ctds else None))
    return cases


def iter_cases(root: str | os.PathLike) -> Iterator[VerseFiles]:
    """Lazy: the cases' files, each read on demand with ``.load()`` / ``.read()``."""
    return iter(find_verse_cases(root))


def iter_verse(root: str | os.PathLike) -> Iterator[LabelledCase]:
    """Yield ``(case_id, ct, labels, centroids_lps or None)`` per case, read and checked."""
    for files in find_verse_cases(root):
        yield files.read()
