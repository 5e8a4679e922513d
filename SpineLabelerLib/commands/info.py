"""``spinelabeler info CT``: read and check a CT, print what matters before segmenting it.

On a DICOM folder it first lists the series there (UID, slices, modality, description)
and marks the one that would be read (the CT series with the most slices, or --series).
Exit code 0 when the CT is usable, 2 (message on stderr) when it is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="read and check a CT; print size, spacing, orientation, HU range, field of view",
        description=__doc__,
    )
    p.add_argument("ct", help="CT file (.nii, .nii.gz, .nrrd, .mha, .mhd) or a DICOM folder")
    p.add_argument("--series", metavar="UID", help="the series of a DICOM folder to check")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def series_rows(folder: Path, series_uid: str | None) -> list[dict]:
    """One row per DICOM series of ``folder``: uid, slices, modality, description, used."""
    from SpineLabelerLib.io.checks import CTInputError
    from SpineLabelerLib.io.dicom_series import find_series, pick_series

    damaged: list[str] = []
    found = find_series(folder, damaged)
    try:
        used = pick_series(found, folder, series_uid, [], damaged).uid
    except CTInputError:
        used = None  # no CT series, no such UID, a damaged file: reading the folder says so
    return [
        {
            "uid": s.uid,
            "slices": len(s.files),
            "modality": s.modality,
            "description": s.description,
            "used": s.uid == used,
        }
        for s in found
    ]


def format_series(rows: list[dict]) -> str:
    lines = [f"DICOM series:  {len(rows)} (* = read)"]
    lines += [
        f"  {'*' if r['used'] else ' '} {r['uid']}  {r['slices']} slices  {r['modality']}"
        f"  {r['description']!r}"
        for r in rows
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from SpineLabelerLib.io.checks import CTInputError
    from SpineLabelerLib.io.reader import read_ct
    from SpineLabelerLib.io.summary import ct_summary, format_summary

    path = Path(args.ct)
    rows = series_rows(path, args.series) if path.is_dir() else []
    if rows and not args.json:
        print(format_series(rows))
    notes: list[str] = []
    try:
        image = read_ct(path, notes, args.series)
    except CTInputError as err:
        print(f"spinelabeler info: refused: {err}", file=sys.stderr)
        return 2
    summary = ct_summary(image, notes)
    if rows:
        summary["dicom_series"] = rows
    print(json.dumps(summary, indent=2) if args.json else format_summary(args.ct, summary))
    return 0
