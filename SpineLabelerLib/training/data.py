"""Where training cases come from, and the step-indexed datasets that make runs reproducible.

A *source* hands out cases (CT in HU + VerSe labelmap, each an :class:`Image` on any grid):
phantoms drawn on the fly from seeds (:class:`PhantomSource`), a folder in the VerSe layout
(:class:`VerseSource`), label maps - real masks or phantom maps - rendered as CT with random
appearance (:class:`RenderedMaskSource`, see :mod:`.render`), several sources by weight
(:class:`MixedSource`), or any function (:class:`FunctionSource`, used by tests). Real cases
named as held out (:func:`held_out`) are left out of every real source, CT and mask alike. A
:class:`CasePreparer` puts a case on its stage's canonical grid (preprocess.py) and keeps the
result in memory and, optionally, on disk, so a phantom is drawn once per run.

:class:`StepSamples` is a map-style dataset whose item ``n`` is the ``n``-th sample of the run
on this rank: its random generator is seeded with ``(seed, rank, n)``, so what a step sees
does not depend on worker processes or on where a run was resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from SpineLabelerLib import preprocess
from SpineLabelerLib.image import Image, bounding_box, index_to_lps, subimage
from SpineLabelerLib.training.samples import (
    PreparedCase,
    Stage1Sampling,
    Stage2Sampling,
    stage1_sample,
    stage2_sample,
)

STAGE2_MARGIN_MM = 60.0  # stage-2 cases are kept only around the labelled spine
RENDER_MARGIN_MM = 80.0  # a real mask is kept only this far around its labels (background only)


class CaseSource(Protocol):
    def __len__(self) -> int: ...

    def key(self, index: int) -> str:
        """A name unique to this case and its settings (the disk-cache key)."""
        ...

    def load(self, index: int) -> tuple[Image, Image]:
        """(CT in HU, VerSe labelmap on the same or another grid)."""
        ...


class FunctionSource:
    """Cases from ``make(index) -> (ct, labels)``: tests and custom data."""

    def __init__(self, make: Callable[[int], tuple[Image, Image]], count: int, name: str) -> None:
        self.make, self.count, self.name = make, count, name

    def __len__(self) -> int:
        return self.count

    def key(self, index: int) -> str:
        return f"{self.name}-{index}"

    def load(self, index: int) -> tuple[Image, Image]:
        return self.make(index)


class SubsetSource:
    """Some cases of another source (a train / validation split)."""

    def __init__(self, source: CaseSource, indices: Sequence[int]) -> None:
        self.source, self.indices = source, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return self.source.key(self.indices[index])

    def load(self, index: int) -> tuple[Image, Image]:
        return self.source.load(self.indices[index])


class PhantomSource:
    """Synthetic spine CTs drawn on demand: case ``n`` is ``phantom.generate_case(seeds[n], ...)``.

    ``settings`` are keyword arguments of ``generate_case``, plus three that vary per seed
    (drawn from a generator seeded by the case seed, so a seed always gives the same case):
    ``fovs`` / ``variants``: lists to draw ``fov`` / ``variant`` from (optional weights
    ``fov_weights`` / ``variant_weights``); ``crop_labels: [lo, hi]``: draw the label of a
    crop (``crop_around_label``, the generator's fast path for 1 mm patches) in that range.
    """

    _PER_SEED = ("fovs", "fov_weights", "variants", "variant_weights", "crop_labels")

    def __init__(self, seeds: Sequence[int], settings: dict[str, Any] | None = None) -> None:
        self.seeds = [int(s) for s in seeds]
        self.settings = dict(settings or {})
        digest = hashlib.sha1(
            json.dumps(self.settings, sort_keys=True, default=str).encode()
        ).hexdigest()
        self._tag = digest[:10]

    def __len__(self) -> int:
        return len(self.seeds)

    def key(self, index: int) -> str:
        return f"phantom-{self._tag}-{self.seeds[index]}"

    def case_settings(self, index: int) -> dict[str, Any]:
        """The ``generate_case`` keyword arguments of case ``index``."""
        s = self.settings
        rng = np.random.default_rng([self.seeds[index], 0x5EED])
        kwargs = {k: v for k, v in s.items() if k not in self._PER_SEED}
        for key, name in (("fovs", "fov"), ("variants", "variant")):
            if s.get(key):
                weights = s.get(f"{name}_weights")
                p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
                kwargs[name] = str(rng.choice(s[key], p=p))
        if s.get("crop_labels"):
            lo, hi = s["crop_labels"]
            kwargs["crop_around_label"] = int(rng.integers(lo, hi + 1))
        if "spacing_mm" in kwargs and kwargs["spacing_mm"] is not None:
            kwargs["spacing_mm"] = tuple(float(v) for v in kwargs["spacing_mm"])
        if "roi_size_mm" in kwargs:
            kwargs["roi_size_mm"] = tuple(float(v) for v in kwargs["roi_size_mm"])
        return kwargs

    def load(self, index: int) -> tuple[Image, Image]:
        case = self.generate(index)
        return case.ct, case.labels

    def generate(self, index: int, **overrides: Any):
        """The whole ``phantom.PhantomCase`` of case ``index`` (``overrides``: more settings)."""
        from SpineLabelerLib import phantom  # imported late: the generator is heavy

        kwargs = {**self.case_settings(index), **overrides}
        try:
            return phantom.generate_case(self.seeds[index], **kwargs)
        except ValueError:
            if "crop_around_label" not in kwargs:
                raise
            kwargs["crop_around_label"] = 12  # the drawn level is missing in this variant: T5
            return phantom.generate_case(self.seeds[index], **kwargs)


class VerseSource:
    """Real CTs in the VerSe layout, else the CSI 2014 layout (io.verse / io.csi readers)."""

    def __init__(self, root: str | Path) -> None:
        from SpineLabelerLib.io import csi, verse

        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"--data {self.root} is not a folder")
        self.cases = list(verse.iter_cases(self.root)) or list(csi.iter_cases(self.root))
        if not self.cases:
            raise FileNotFoundError(
                f"no CT with a vertebra mask found under {self.root} (VerSe or CSI 2014 layout)"
            )

    def __len__(self) -> int:
        return len(self.cases)

    def key(self, index: int) -> str:
        name = getattr(self.cases[index], "name", str(index))
        return f"verse-{hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]}-{name}"

    def load(self, index: int) -> tuple[Image, Image]:
        case = self.cases[index]
        return case.load() if hasattr(case, "load") else (case.ct, case.labels)


class SourceError(ValueError):
    """A data setting that names nothing usable (a held-out case found nowhere, an empty mix)."""


def held_out(case_id: str, holdout: Sequence[str]) -> bool:
    """Whether a case belongs to a held-out subject: ``verse005`` holds out ``sub-verse005``
    and every scan of that subject (``sub-gl003_dir-ax`` by ``gl003``)."""
    subject = case_id.split("_")[0]
    return any(subject in (name, f"sub-{name}") or case_id == name for name in holdout)


def without_held_out(source: VerseSource, holdout: Sequence[str]) -> SubsetSource:
    """The cases of a real-CT folder that are not held out."""
    keep = [n for n, case in enumerate(source.cases) if not held_out(real_case_id(case), holdout)]
    return SubsetSource(source, keep)


def real_case_id(case: Any) -> str:
    """The id of a real-CT source's case (VerSe: ``sub-verse008``; CSI 2014: its name)."""
    return str(getattr(case, "case_id", getattr(case, "name", "")))


@dataclass(frozen=True)
class LabelMapFile:
    """A real vertebra mask (VerSe values) to render; read through ``io.reader.read_labelmap``."""

    path: Path

    @property
    def name(self) -> str:
        """The case id (``sub-verse004``): the file name without the mask suffix."""
        from SpineLabelerLib.io.verse import MASK_SUFFIX

        name = self.path.name
        for suffix in (MASK_SUFFIX, ".nii.gz", ".nii", ".nrrd", ".mha"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    @property
    def key(self) -> str:
        digest = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"

    def load(self) -> tuple[Image, Image | None]:
        """(labels, no tissue map), cropped to the labelled box plus the render margin."""
        from SpineLabelerLib.io.reader import read_labelmap

        labels = read_labelmap(self.path)
        box = bounding_box(labels.array > 0)
        if box is None:
            raise SourceError(f"{self.path}: the mask holds no vertebra")
        grow = np.ceil(RENDER_MARGIN_MM / np.asarray(labels.spacing_mm[::-1])).astype(int)
        box = tuple(
            slice(max(b.start - g, 0), min(b.stop + g, n))
            for b, g, n in zip(box, grow, labels.array.shape)
        )
        return subimage(labels, box), None


@dataclass(frozen=True)
class PhantomLabelMap:
    """A phantom's labels and tissue map (no CT physics: the renderer draws its own)."""

    source: PhantomSource
    index: int

    @property
    def key(self) -> str:
        return self.source.key(self.index)

    def load(self) -> tuple[Image, Image | None]:
        case = self.source.generate(self.index, physics=False)
        return case.labels, case.tissues


LabelMap = Union[LabelMapFile, PhantomLabelMap]


def label_map_files(paths: Sequence[str | Path]) -> list[LabelMapFile]:
    """Mask files from files and folders (a folder: every ``*_seg-vert_msk.nii.gz`` below
    it), each file once, sorted. Raises FileNotFoundError for a path that is not there or a
    folder without masks."""
    from SpineLabelerLib.io.verse import MASK_SUFFIX

    found: dict[Path, LabelMapFile] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            masks = sorted(path.rglob(f"*{MASK_SUFFIX}"))
            if not masks:
                raise FileNotFoundError(f"no *{MASK_SUFFIX} mask under {path}")
        elif path.is_file():
            masks = [path]
        else:
            raise FileNotFoundError(f"rendered mask {path}: no such file or folder")
        for mask in masks:
            found.setdefault(mask.resolve(), LabelMapFile(mask))
    return sorted(found.values(), key=lambda m: str(m.path))


class RenderedMaskSource:
    """Label maps rendered as CT (:mod:`.render`): case ``n`` is map ``n mod len(masks)``
    rendered with seed ``seeds[n]``, so an index always gives the same image.

    ``masks``: real masks (:class:`LabelMapFile`) and phantom maps (:class:`PhantomLabelMap`);
    ``settings``: :class:`render.RenderSettings` overrides. The last ``keep_maps`` maps read
    stay in memory (a 0.3 mm mask takes seconds to read and is rendered many times).
    """

    def __init__(
        self,
        masks: Sequence[LabelMap],
        seeds: Sequence[int],
        settings: dict[str, Any] | None = None,
        keep_maps: int = 8,
    ) -> None:
        from SpineLabelerLib.training.render import RenderSettings

        if not masks:
            raise SourceError("no label map to render")
        self.masks, self.seeds = list(masks), [int(s) for s in seeds]
        raw = dict(settings or {})
        self.settings = RenderSettings(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        )
        self._tag = hashlib.sha1(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:10]
        self.keep_maps = keep_maps
        self._maps: OrderedDict[str, tuple[Image, Image | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.seeds)

    def mask(self, index: int) -> LabelMap:
        return self.masks[index % len(self.masks)]

    def key(self, index: int) -> str:
        return f"rendered-{self._tag}-{self.mask(index).key}-{self.seeds[index]}"

    def load(self, index: int) -> tuple[Image, Image]:
        from SpineLabelerLib.training.render import render

        labels, tissues = self._map(self.mask(index))
        rng = np.random.default_rng([self.seeds[index], 0x4E4D])
        rendered = render(labels, rng, tissues, self.settings)
        return rendered.ct, rendered.labels

    def _map(self, mask: LabelMap) -> tuple[Image, Image | None]:
        if mask.key in self._maps:
            self._maps.move_to_end(mask.key)
            return self._maps[mask.key]
        self._maps[mask.key] = loaded = mask.load()
        while len(self._maps) > self.keep_maps:
            self._maps.popitem(last=False)
        return loaded


class MixedSource:
    """Several sources as one whose uniform index draws each source with its weight: index
    ``n`` falls in a block of ``slots`` indices per unit of weight share, cycling through
    that source's cases (a one-CT source drawn often repeats its one key: cached once)."""

    def __init__(self, parts: Sequence[tuple[CaseSource, float]], slots: int = 1000) -> None:
        parts = [(s, float(w)) for s, w in parts if w > 0]
        if not parts or any(len(s) == 0 for s, _ in parts):
            raise SourceError("a training mix needs at least one weighted, non-empty source")
        total = sum(w for _, w in parts)
        self.parts = [s for s, _ in parts]
        counts = [max(1, round(slots * w / total)) for _, w in parts]
        self._ends = np.cumsum(counts)

    def __len__(self) -> int:
        return int(self._ends[-1])

    def _locate(self, index: int) -> tuple[CaseSource, int]:
        part = int(np.searchsorted(self._ends, index, side="right"))
        first = 0 if part == 0 else int(self._ends[part - 1])
        source = self.parts[part]
        return source, (index - first) % len(source)

    def key(self, index: int) -> str:
        source, n = self._locate(index)
        return source.key(n)

    def load(self, index: int) -> tuple[Image, Image]:
        source, n = self._locate(index)
        return source.load(n)


class CasePreparer:
    """Case -> :class:`PreparedCase` on the stage's canonical grid, cached (memory LRU + disk).

    Stage 2 keeps only the labelled spine's box plus ``margin_mm`` (a leg CT stays whole).
    """

    def __init__(
        self,
        spacing_mm: float,
        crop_to_spine: bool,
        cache_dir: str | Path | None = None,
        max_in_memory: int = 16,
        margin_mm: float = STAGE2_MARGIN_MM,
    ) -> None:
        self.spacing_mm = float(spacing_mm)
        self.crop_to_spine = crop_to_spine
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_in_memory = max_in_memory
        self.margin_mm = margin_mm
        self._memory: OrderedDict[str, PreparedCase] = OrderedDict()

    def __call__(self, source: CaseSource, index: int) -> PreparedCase:
        key = f"{source.key(index)}@{self.spacing_mm:g}mm{'-spine' if self.crop_to_spine else ''}"
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        case = self._read_disk(key)
        if case is None:
            case = self.prepare(*source.load(index), name=key)
            self._write_disk(key, case)
        self._memory[key] = case
        while len(self._memory) > self.max_in_memory:
            self._memory.popitem(last=False)
        return case

    def prepare(self, ct: Image, labels: Image, name: str = "") -> PreparedCase:
        box = None
        if self.crop_to_spine:
            box = self._spine_box(labels)
        canonical = preprocess.to_canonical(ct, self.spacing_mm, box)
        lab = preprocess.labels_onto(labels, canonical)
        # fp16 precision (< 0.5 HU) as on disk, so a cached case equals a fresh one (exact resume)
        ct_norm = preprocess.normalize_hu(canonical.array).astype(np.float16).astype(np.float32)
        return PreparedCase(
            ct_norm,
            np.asarray(lab.array, np.uint8),
            self.spacing_mm,
            name,
        )

    def _spine_box(self, labels: Image):
        if not np.any(labels.array):
            return None
        nz = np.argwhere(labels.array > 0)[:, ::-1]  # (i, j, k)
        corners = index_to_lps(labels, np.array([nz.min(0) - 0.5, nz.max(0) + 0.5]))
        inner = preprocess.physical_bounds_lps(labels)
        lo = np.maximum(corners.min(0) - self.margin_mm, inner[0])
        hi = np.minimum(corners.max(0) + self.margin_mm, inner[1])
        return lo, hi

    def _path(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        safe = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{safe}.npz"

    def _read_disk(self, key: str) -> PreparedCase | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        with np.load(path) as z:
            if str(z["key"]) != key:
                return None
            case = PreparedCase(z["ct"].astype(np.float32), z["labels"], float(z["spacing"]), key)
            if "centroid_labels" in z:  # saves ~0.1 s per read: a GPU run's workers re-read often
                case._centroids = {
                    int(v): c for v, c in zip(z["centroid_labels"], z["centroids_kji"])
                }
            return case

    def _write_disk(self, key: str, case: PreparedCase) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # workers may race
        centroids = case.centroids_kji()
        np.savez(
            tmp,
            ct=case.ct.astype(np.float16),
            labels=case.labels,
            spacing=case.spacing_mm,
            key=key,
            centroid_labels=np.array(list(centroids), np.int64),
            centroids_kji=np.array(list(centroids.values()), float).reshape(-1, 3),
        )
        tmp.replace(path)


class StepSamples(Dataset):
    """Item ``n`` = the ``n``-th sample on ``rank``: ``(input (C, K, J, I) float32, target (K, J, I))``.

    Stage 1: input = CT crop (C = 1), target = region classes (int64).
    Stage 2: input = (CT, memory) patch (C = 2), target = next-vertebra mask (uint8).
    """

    def __init__(
        self,
        stage: str,
        source: CaseSource,
        preparer: CasePreparer,
        size_kji: tuple[int, int, int],
        seed: int,
        rank: int = 0,
        sampling: Stage2Sampling | None = None,
        stage1_sampling: Stage1Sampling | None = None,
        length: int = 2**62,
    ) -> None:
        if stage not in ("stage1", "stage2"):
            raise ValueError(f"unknown stage {stage!r}")
        if len(source) == 0:
            raise ValueError("the case source is empty")
        self.stage, self.source, self.preparer = stage, source, preparer
        self.size_kji = tuple(int(s) for s in size_kji)
        self.seed, self.rank, self.length = seed, rank, length
        self.sampling = sampling or Stage2Sampling()
        self.stage1_sampling = stage1_sampling or Stage1Sampling()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, int(n)])
        case = self.preparer(self.source, int(rng.integers(len(self.source))))
        if self.stage == "stage1":
            x, y = stage1_sample(case, self.size_kji, rng, self.stage1_sampling)
        else:
            x, y = stage2_sample(case, self.size_kji, rng, self.sampling)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


class RangeSampler(torch.utils.data.Sampler):
    """Indices ``start, start + 1, ... stop - 1`` in order (the resumable sample stream)."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = int(start), int(stop)

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)
