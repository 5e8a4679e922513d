"""``spinelabeler phantom -o DIR``: write synthetic spine CTs in the VerSe folder layout.

Per case ``<id>``: ``DIR/rawdata/sub-<id>/sub-<id>_ct.nii.gz`` (int16 HU),
``DIR/derivatives/sub-<id>/sub-<id>_seg-vert_msk.nii.gz`` (VerSe labels),
``..._seg-subreg_ctd.json`` (centroids, LPS mm), ``..._phantom.json`` (what was drawn)
and, with ``--preview``, ``..._preview.png``. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from SpineLabelerLib.phantom.scan import FOVS
    from SpineLabelerLib.phantom.subject import VARIANTS

    p = subparsers.add_parser(
        "phantom", help="write synthetic spine CTs with labels (VerSe layout)", description=__doc__
    )
    p.add_argument("-o", "--output", required=True, help="output folder (VerSe layout)")
    p.add_argument("--fov", default="whole", choices=FOVS, help="field of view (default whole)")
    p.add_argument(
        "--variant",
        default="normal",
        choices=VARIANTS,
        help="transitional variant (default normal)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the first case (default 0)")
    p.add_argument("--count", type=int, default=1, help="number of cases, seeds seed..seed+count-1")
    p.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        metavar=("I", "J", "K"),
        help="voxel spacing mm on an axial grid (default: a clinical spacing drawn per case)",
    )
    p.add_argument("--no-physics", action="store_true", help="no blur, noise, bias or streaks")
    p.add_argument(
        "--benchmark-set", action="store_true", help="write the fixed benchmark set (54 cases)"
    )
    p.add_argument("--preview", action="store_true", help="also write a PNG preview per case")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=run)


def write_case(out_dir, case_id: str, case, preview: bool = False, force: bool = False) -> dict:
    """Write one phantom in the VerSe layout; returns the paths written."""
    import json
    from pathlib import Path

    from SpineLabelerLib.io._files import atomic_path
    from SpineLabelerLib.io.centroids import write_verse_centroids
    from SpineLabelerLib.io.labelmap import write_labelmap, write_scalar_image

    out = Path(out_dir)
    sub = f"sub-{case_id}"
    raw, der = out / "rawdata" / sub, out / "derivatives" / sub
    paths = {
        "ct": raw / f"{sub}_ct.nii.gz",
        "labels": der / f"{sub}_seg-vert_msk.nii.gz",
        "centroids": der / f"{sub}_seg-subreg_ctd.json",
        "sidecar": der / f"{sub}_phantom.json",
    }
    write_scalar_image(paths["ct"], case.ct, force=force)
    write_labelmap(paths["labels"], case.labels, force=force)
    write_verse_centroids(paths["centroids"], case.centroids_lps, force=force)
    with atomic_path(paths["sidecar"], force) as tmp:
        tmp.write_text(json.dumps({"id": case_id, **case.meta}, indent=1, sort_keys=True) + "\n")
    if preview:
        from SpineLabelerLib.phantom.preview import write_preview_png

        paths["preview"] = der / f"{sub}_preview.png"
        write_preview_png(paths["preview"], case.ct, case.labels, case.centroids_lps, force=force)
    return paths


def run(args: argparse.Namespace) -> int:
    from SpineLabelerLib.phantom import generate_case
    from SpineLabelerLib.phantom.benchmark_set import CaseSpec, benchmark_set_specs

    if args.benchmark_set:
        specs = benchmark_set_specs()
    else:
        if args.count < 1:
            print("spinelabeler phantom: --count must be at least 1", file=sys.stderr)
            return 2
        spacing = tuple(args.spacing) if args.spacing else None
        specs = [
            CaseSpec(f"ph{s:06d}", s, args.fov, args.variant, spacing)
            for s in range(args.seed, args.seed + args.count)
        ]
    for n, spec in enumerate(specs, 1):
        try:
            case = generate_case(
                spec.seed, spec.fov, spec.variant, spec.spacing_mm, physics=not args.no_physics
            )
        except ValueError as err:  # a spacing that is not positive, or far too fine
            print(f"spinelabeler phantom: {err}", file=sys.stderr)
            return 2
        try:
            write_case(args.output, spec.case_id, case, preview=args.preview, force=args.force)
        except FileExistsError as err:
            print(f"spinelabeler phantom: {err}", file=sys.stderr)
            return 2
        names = case.meta["names"]
        span = f"{names[0]}-{names[-1]}" if names else "no vertebra"
        print(
            f"[{n}/{len(specs)}] sub-{spec.case_id}: {spec.fov} {spec.variant} {span} "
            f"spacing {tuple(round(s, 2) for s in case.ct.spacing_mm)} {case.meta['orientation']}",
            flush=True,
        )
    return 0
