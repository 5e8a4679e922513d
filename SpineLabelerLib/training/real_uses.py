"""Which real cases a training run used, for the ``provenance.json`` beside its weights.

A weight file trained on a real CT, or on an expert mask rendered as CT, cannot be judged on
that case; neither can one whose best checkpoint a case's figures picked. The run writes these
uses itself (training/loop.py, with :func:`real_case_uses`), together with the cases that
chose the file it started from (:func:`init_uses`), so that a file never ships without the
record ``benchmarks/real.py`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from SpineLabelerLib import provenance
from SpineLabelerLib.phantom.tissues import HU_MATCHED_TO_CASE
from SpineLabelerLib.provenance import CaseUse
from SpineLabelerLib.training import data

if TYPE_CHECKING:
    from SpineLabelerLib.training.loop import TrainConfig

PHANTOM_HU_USE = CaseUse(
    HU_MATCHED_TO_CASE,
    "phantom_hu",
    "trained on phantoms whose cortex HU range was matched to this CT (phantom/tissues.py)",
)


def kept_real_data(
    cfg: TrainConfig,
) -> tuple[list[data.LabelMapFile], list[data.SubsetSource]]:
    """(mask files to render, real-CT sources) of a mixed config, held-out subjects left out
    of both; each only where the config's ``mix`` draws it. Raises data.SourceError where a
    held-out name matches no real case (a typo would hold out nothing)."""
    holdout = list(cfg.holdout_real)
    masks = data.label_map_files(cfg.rendered_masks) if cfg.rendered_masks else []
    cts = [data.VerseSource(folder) for folder in cfg.real_ct]
    seen = {m.name for m in masks} | {data.real_case_id(c) for s in cts for c in s.cases}
    missing = [h for h in holdout if not any(data.held_out(case, [h]) for case in seen)]
    if missing:
        raise data.SourceError(f"holdout_real {missing}: no such case in rendered_masks or real_ct")
    kept_masks = [m for m in masks if not data.held_out(m.name, holdout)]
    kept_cts = [data.without_held_out(source, holdout) for source in cts]
    return (
        kept_masks if cfg.mix.get("rendered", 0) > 0 else [],
        [s for s in kept_cts if len(s)] if cfg.mix.get("real_ct", 0) > 0 else [],
    )


def _ids(source: data.SubsetSource | data.VerseSource) -> list[str]:
    if isinstance(source, data.VerseSource):
        return [data.real_case_id(c) for c in source.cases]
    return [data.real_case_id(source.source.cases[i]) for i in source.indices]


def real_case_uses(
    cfg: TrainConfig,
    train_part: data.SubsetSource | data.VerseSource | None = None,
    val_part: data.SubsetSource | data.VerseSource | None = None,
) -> tuple[CaseUse, ...]:
    """The real cases a run's settings use: phantoms (their HU were matched to one CT), masks
    rendered as CT and real CTs trained on; with ``--data`` (a user's VerSe folder), its
    training part trained and its validation part picked the best checkpoint (``gate``)."""
    uses: list[CaseUse] = []
    if train_part is not None:
        uses += trained_on(train_part)
        if val_part is not None and val_part is not train_part:
            uses += [
                CaseUse(c, "gate", "validation case (--data): picked the _best file")
                for c in _ids(val_part)
            ]
        return tuple(uses)
    if not cfg.mix or cfg.mix.get("phantom", 0) > 0:
        uses.append(PHANTOM_HU_USE)
    if cfg.mix:
        masks, cts = kept_real_data(cfg)
        uses += rendered_from(masks)
        uses += [CaseUse(c, "trained", "its CT and expert mask") for s in cts for c in _ids(s)]
    return tuple(dict.fromkeys(uses))


def rendered_from(masks: Sequence[data.LabelMapFile]) -> list[CaseUse]:
    """Real cases whose expert masks, rendered as CT, a net or head was fit on."""
    return [CaseUse(m.name, "trained", "its expert mask rendered as CT") for m in masks]


def trained_on(source: data.SubsetSource | data.VerseSource) -> list[CaseUse]:
    """A user's real cases (``--data``) that a net or head was fit on."""
    return [CaseUse(c, "trained", "its CT and mask (--data)") for c in _ids(source)]


def init_uses(init_weights: str | Path) -> tuple[CaseUse, ...] | None:
    """The real cases that chose the file a fine-tuning starts from (they chose its result
    too); None where that file has no record."""
    path = Path(init_weights)
    return provenance.uses_of(path.parent, path.name)
