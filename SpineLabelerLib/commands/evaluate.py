"""``spinelabeler evaluate PRED REF``: the paper's metrics of a labelmap against a reference.

Prints the per-vertebra table and Tables 1 and 2; with ``--out DIR`` also writes
``vertebrae.csv``, ``summary.csv`` and ``evaluation.json``. Centroids come from the masks
unless centroid files are given.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="Dice, ASSD, HD, localization error and identification rate against a reference",
        description=__doc__,
    )
    p.add_argument("pred", help="predicted labelmap (VerSe values; any grid)")
    p.add_argument("ref", help="reference labelmap (VerSe values); metrics are on its grid")
    p.add_argument(
        "--pred-centroids", metavar="F", help="predicted centroid JSON (default: from PRED)"
    )
    p.add_argument(
        "--ref-centroids", metavar="F", help="reference centroid JSON (default: from REF)"
    )
    p.add_argument(
        "--out", metavar="DIR", help="write vertebrae.csv, summary.csv, evaluation.json here"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=run)


def _read_centroids(path: str, labels):
    """Centroid JSON (ours in LPS mm, or a VerSe ``_ctd.json`` in voxels of ``labels``)
    -> {label: (3,) LPS mm}."""
    from SpineLabelerLib.io.centroids import read_verse_centroids

    return read_verse_centroids(path, reference=labels)


def run(args: argparse.Namespace) -> int:
    from SpineLabelerLib.evaluation import evaluate, format_tables, write_tables
    from SpineLabelerLib.io import read_labelmap

    try:
        ref = read_labelmap(args.ref)
        pred = read_labelmap(args.pred)
        pred_c = _read_centroids(args.pred_centroids, pred) if args.pred_centroids else None
        ref_c = _read_centroids(args.ref_centroids, ref) if args.ref_centroids else None
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f"spinelabeler evaluate: {err}", file=sys.stderr)
        return 2
    result = evaluate(pred, ref, pred_c, ref_c)
    print(format_tables(result))
    if args.out:
        try:
            paths = write_tables(result, args.out, force=args.force)
        except FileExistsError as err:
            print(f"spinelabeler evaluate: {err}", file=sys.stderr)
            return 1
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0
