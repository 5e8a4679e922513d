"""Which real CTs chose each artefact of a weights folder: a record kept beside the weights.

A figure measured on a real CT that trained, gated or tuned the weights or rules in use says
nothing about a new scan. ``provenance.json`` in a weights folder lists, per artefact (a weight
file by its name, or :data:`PIPELINE` for the code's rules and thresholds), the real cases that
chose it and how. A weight file's entry holds the file's sha256: a file replaced without its
record is "unknown", never "held out". A training or fitting run that used real cases adds
itself with :func:`record_use`; a benchmark asks :func:`standing` per case.

Case ids are those ``io.verse.find_verse_cases`` gives (the CT's file name without
``_ct.nii.gz``, e.g. ``sub-verse008``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from SpineLabelerLib.io._files import atomic_path

FILE_NAME = "provenance.json"
FORMAT_VERSION = 1
PIPELINE = "pipeline"  # the rules and thresholds in the code, not a file of the folder
# How a real case chose an artefact: its voxels trained it; its figures decided between
# candidate files; the training phantoms' appearance was matched to it; a rule or threshold of
# the pipeline was written or set after what it showed.
ROLES = ("trained", "gate", "phantom_hu", "rule")


@dataclass(frozen=True)
class CaseUse:
    """One real case's part in one artefact (``what``: one line, with where it is told)."""

    case: str
    role: str
    what: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not one of {ROLES}")


@dataclass(frozen=True)
class Artefact:
    """The record of one artefact: ``sha256`` of the weight file (None for :data:`PIPELINE`),
    the real cases that chose it (empty: none did) and a note on what else chose it."""

    sha256: str | None
    real_cases: tuple[CaseUse, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class CaseStanding:
    """Whether a case chose anything in use: ``chose`` as "stage2.pt (gate)", and the
    artefacts in use whose record is missing or stale (``unknown``)."""

    case: str
    chose: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def held_out(self) -> bool:
        return not self.chose and not self.unknown

    def describe(self) -> str:
        if self.held_out:
            return "held out (chose nothing in use)"
        parts = []
        if self.chose:
            parts.append("chose: " + ", ".join(self.chose))
        if self.unknown:
            parts.append("provenance unknown: " + ", ".join(self.unknown))
        return "; ".join(parts)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_record(folder: str | os.PathLike) -> dict[str, Artefact]:
    """The folder's record, artefact name -> :class:`Artefact`; ``{}`` when it has none."""
    path = Path(folder) / FILE_NAME
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: format {data.get('format')!r}, expected {FORMAT_VERSION}")
    return {
        name: Artefact(
            entry.get("sha256"),
            tuple(CaseUse(**use) for use in entry.get("real_cases", [])),
            entry.get("note", ""),
        )
        for name, entry in data["artefacts"].items()
    }


def write_record(
    folder: str | os.PathLike, artefacts: dict[str, Artefact], about: str = ""
) -> Path:
    """Write (replace) the folder's record."""
    path = Path(folder) / FILE_NAME
    data = {
        "format": FORMAT_VERSION,
        "about": about or _about(path),
        "artefacts": {
            name: {
                "sha256": a.sha256,
                "real_cases": [asdict(use) for use in a.real_cases],
                "note": a.note,
            }
            for name, a in sorted(artefacts.items())
        },
    }
    with atomic_path(path, force=True) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1) + "\n")
    return path


def _about(path: Path) -> str:
    if path.is_file():
        return json.loads(path.read_text()).get("about", "")
    return "Real cases that chose each artefact (SpineLabelerLib/provenance.py)."


def record_use(
    folder: str | os.PathLike,
    artefact: str,
    uses: Iterable[CaseUse],
    note: str | None = None,
    inherit: Artefact | None = None,
) -> Artefact:
    """Add ``uses`` to ``artefact``'s entry (kept once each) and bind it to the file now in
    the folder; a weight file started from another (``--init``) passes that file's record as
    ``inherit``, whose cases chose this one too. Returns the new entry."""
    folder = Path(folder)
    record = read_record(folder)
    old = record.get(artefact, Artefact(None))
    inherited = inherit.real_cases if inherit else ()
    merged = tuple(dict.fromkeys((*old.real_cases, *inherited, *uses)))
    sha = None if artefact == PIPELINE else file_sha256(folder / artefact)
    record[artefact] = Artefact(sha, merged, old.note if note is None else note)
    write_record(folder, record)
    return record[artefact]


def copy_artefact(
    source: str | os.PathLike,
    name: str,
    folder: str | os.PathLike,
    as_name: str | None = None,
    uses: Iterable[CaseUse] = (),
    note: str | None = None,
) -> Artefact:
    """Copy weight file ``source/name`` into ``folder`` (as ``as_name``) with its record: the
    cases that chose it where it was, plus ``uses`` (a case whose figures picked it for
    shipping: role "gate"). Refuses a file without a record there: its provenance would be
    lost on the way. Replaces a file of that name in ``folder`` and its record."""
    chose = uses_of(source, name)
    if chose is None:
        raise ValueError(f"{Path(source) / name} has no provenance record: not copied")
    target = Path(folder) / (as_name or name)
    with atomic_path(target, force=True) as tmp:
        Path(tmp).write_bytes((Path(source) / name).read_bytes())
    record = read_record(folder)
    record[target.name] = Artefact(
        file_sha256(target),
        tuple(dict.fromkeys((*chose, *uses))),
        read_record(source)[name].note if note is None else note,
    )
    write_record(folder, record)
    return record[target.name]


def uses_of(folder: str | os.PathLike, artefact: str) -> tuple[CaseUse, ...] | None:
    """The real cases that chose ``artefact`` of ``folder``; None where the record does not
    know it (no record or entry, or a weight file that is not the one recorded)."""
    entry = read_record(folder).get(artefact)
    if entry is None:
        return None
    if artefact != PIPELINE:
        file = Path(folder) / artefact
        if not file.is_file() or file_sha256(file) != entry.sha256:
            return None
    return entry.real_cases


def shown_names(in_use: Iterable[tuple[str | os.PathLike, str]]) -> list[str]:
    """The names by which the (folder, artefact) pairs in use are told apart in a report: an
    artefact named like one before it (the outline pass's stage2.pt) with its folder."""
    names, seen = [], set()
    for folder, artefact in in_use:
        names.append(f"{Path(folder).name}/{artefact}" if artefact in seen else artefact)
        seen.add(artefact)
    return names


def standing(case: str, in_use: Iterable[tuple[str | os.PathLike, str]]) -> CaseStanding:
    """What ``case`` chose among the artefacts in use, given as (folder, artefact) pairs
    (named as :func:`shown_names` names them)."""
    in_use = list(in_use)
    chose, unknown = [], []
    for (folder, artefact), name in zip(in_use, shown_names(in_use)):
        uses = uses_of(folder, artefact)
        if uses is None:
            unknown.append(name)
            continue
        roles = sorted({u.role for u in uses if u.case == case})
        if roles:
            chose.append(f"{name} ({', '.join(roles)})")
    return CaseStanding(case, tuple(chose), tuple(unknown))
