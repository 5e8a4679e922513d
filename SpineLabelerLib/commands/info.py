"""``spinelabeler info CT``: read and check a CT, print what matters before segmenting it.

Exit code 0 when the CT is usable, 2 (message on stderr) when it is refused.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="read and check a CT; print size, spacing, orientation, HU range, field of view",
        description=__doc__,
    )
    p.add_argument("ct", help="CT file (.nii, .nii.gz, .nrrd, .mha, .mhd) or a DICOM folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from SpineLabelerLib.io.checks import CTInputError
    from SpineLabelerLib.io.reader import read_ct
    from SpineLabelerLib.io.summary import ct_summary, format_summary

    notes: list[str] = []
    try:
        image = read_ct(args.ct, notes)
    except CTInputError as err:
        print(f"spinelabeler info: refused: {err}", file=sys.stderr)
        return 2
    summary = ct_summary(image, notes)
    print(json.dumps(summary, indent=2) if args.json else format_summary(args.ct, summary))
    return 0
