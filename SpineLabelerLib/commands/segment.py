"""``spinelabeler segment CT|FOLDER -o OUTDIR``: find, segment and name every vertebra.

One CT: the result folder of docs/ARCHITECTURE.md in OUTDIR. A folder holding CT files
(.nii, .nii.gz, .nrrd, .mha, .mhd) or DICOM sub-folders: one result folder per case,
OUTDIR/<case>/, and OUTDIR/summary.csv; a failing case is recorded and the batch goes on.
A folder holding only DICOM files is one CT.

DICOM out: on a DICOM series, --formats dcm (part of 'all' there) also writes
segmentation.dcm (a DICOM SEG, one segment per vertebra) and centroids.sr.dcm (a
Comprehensive 3D SR, one point per vertebra), both referencing the source series so that
PACS and viewers lay them over that CT. A NIfTI/NRRD input carries no study, series or
image UIDs to reference, so an explicit dcm is refused there before anything is computed;
'all' leaves it out.

When no spine is found (a leg CT) only report.json is written, saying so; that is an
answer, not an error (exit 0). Exit codes: 0 done, 1 some cases of a batch failed,
2 input refused (not a CT, unreadable, results already there without --force),
3 network weights missing or broken, 130 cancelled (Ctrl-C). Nothing is half-written.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from SpineLabelerLib.commands.outline_options import add_outline_options, apply_outline_options

if TYPE_CHECKING:  # the pipeline (torch) is imported when a command runs, not on --help
    from SpineLabelerLib.pipeline import SpineResult

# --formats accepts the file-style names as well as the writer names of io.results.
FORMAT_ALIASES = {
    "nii.gz": "nifti",
    "nii": "nifti",
    "nrrd": "nrrd",
    "seg.nrrd": "seg",
    "mrk.json": "markups",
    "json": "centroids",
    "stl": "surfaces",
    "png": "overview",
}
_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_ALIAS = "dcm"  # both DICOM objects: the SEG and the centroid SR
EXIT_OK, EXIT_BATCH_FAILURES, EXIT_REFUSED, EXIT_WEIGHTS, EXIT_CANCELLED = 0, 1, 2, 3, 130


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment, locate and name every vertebra of a CT (or of every CT in a folder)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="CT file, DICOM folder, or a folder of CTs")
    p.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="result folder")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--fast", action="store_true", help="coarser stage 1, fewer refinements")
    p.add_argument(
        "--formats",
        default="all",
        help="comma list of outputs: seg.nrrd,nii.gz,nrrd,mrk.json,json,stl,png,dcm or 'all' "
        "(report.json is always written; dcm, a DICOM SEG + SR, needs a DICOM series input "
        "and is part of 'all' there)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing result files")
    p.add_argument(
        "--progress",
        default="auto",
        choices=("auto", "bar", "lines", "none"),
        help="bar on a terminal, 'PROGRESS <fraction> <stage> <message>' lines in a log",
    )
    p.add_argument("--weights", metavar="DIR", help="folder with stage1.pt and stage2.pt")
    add_outline_options(p)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument(
        "--series",
        metavar="UID",
        help="the DICOM series to read (SeriesInstanceUID; `spinelabeler info FOLDER` lists "
        "them); default: the CT series with the most slices. The input is then one DICOM "
        "folder (with its sub-folders), never a batch",
    )
    p.set_defaults(func=run)


def parse_formats(text: str) -> list[str]:
    """``--formats`` -> io.results format names, report always included; ValueError if unknown.
    'all' includes the DICOM formats (:func:`formats_for_input` drops them for a volume file)."""
    from SpineLabelerLib.io.results import ALL_FORMATS, DICOM_FORMATS, RESULT_FILES

    if text.strip() == "all":
        return [*ALL_FORMATS, *DICOM_FORMATS]
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name = item.lstrip(".")
        names = DICOM_FORMATS if name == DICOM_ALIAS else (FORMAT_ALIASES.get(name, item),)
        if any(n not in RESULT_FILES for n in names):
            choices = ", ".join([*FORMAT_ALIASES, DICOM_ALIAS, *RESULT_FILES])
            raise ValueError(f"unknown format {item!r}; choose from {choices}")
        out.extend(names)
    return list(dict.fromkeys([*out, "report"]))


def is_dicom_input(path: Path) -> bool:
    """A DICOM folder or one DICOM file of a series (what read_ct reads as a series)."""
    from SpineLabelerLib.io.reader import DICOM_SUFFIXES

    return path.is_dir() or path.name.lower().endswith(DICOM_SUFFIXES)


def refuse_dicom_output(formats: list[str], inputs: list[Path]) -> str | None:
    """Why DICOM outputs asked for by name cannot be written for ``inputs``; None if they can."""
    from SpineLabelerLib.io.results import DICOM_FORMATS

    volumes = [p for p in inputs if not is_dicom_input(p)]
    asked = [f for f in formats if f in DICOM_FORMATS]
    if not asked or not volumes:
        return None
    named = ", ".join(str(p) for p in volumes[:3]) + (" ..." if len(volumes) > 3 else "")
    return (
        f"--formats {','.join(asked)}: a DICOM SEG/SR must reference the CT series it was "
        f"drawn on (study, series, frame of reference and each slice's UID), and {named} "
        "is not a DICOM series (a volume file holds none of these). Segment the DICOM "
        "folder itself, or leave dcm out"
    )


def formats_for_input(formats: list[str], path: Path) -> list[str]:
    """``formats`` without the DICOM ones for a volume file ('all' on NIfTI or NRRD; a dcm
    asked for by name was refused before, by :func:`refuse_dicom_output`)."""
    from SpineLabelerLib.io.results import DICOM_FORMATS

    if is_dicom_input(path):
        return formats
    return [f for f in formats if f not in DICOM_FORMATS]


def dicom_source(ct, path: Path, series) -> list:
    """The headers of ``series`` (the one read_dicom_ct read ``ct`` from), checked slice by
    slice against ``ct``'s grid, so that a series no SEG can reference (a multi-frame file,
    say) is refused before the work, not after."""
    from SpineLabelerLib.io.checks import CTInputError
    from SpineLabelerLib.io.dicom_seg import read_source_headers, slices_along_k

    headers = read_source_headers(series.files)
    try:
        slices_along_k(ct, headers)
    except ValueError as err:
        raise CTInputError(f"{path}: no DICOM SEG or SR can reference this series: {err}") from None
    return headers


def progress_printer(mode: str, stream: TextIO) -> Callable[[str, float, str], None] | None:
    """The progress callback for ``--progress`` (lines on stdout, a bar on stderr)."""
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "lines"
    if mode == "none":
        return None
    if mode == "lines":
        from SpineLabelerLib.childjob import format_progress_line

        def lines(stage: str, fraction: float, message: str) -> None:
            print(format_progress_line(stage, fraction, message), file=stream, flush=True)

        return lines

    def bar(stage: str, fraction: float, message: str) -> None:
        filled = int(round(30 * fraction))
        text = f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}% {stage}: {message}"
        sys.stderr.write(text[:110].ljust(110))
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


def case_inputs(folder: Path) -> list[tuple[str, Path]]:
    """(case name, path) of every CT file and sub-folder of ``folder``; [] if it holds neither."""
    cases = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith("."):
            continue
        lower = name.lower()
        suffix = next((s for s in _VOLUME_SUFFIXES if lower.endswith(s)), None)
        if path.is_file() and suffix:
            cases.append((name[: -len(suffix)], path))
        elif path.is_dir():
            cases.append((name, path))
    return cases


def mixed_folder(source: Path, cases: list[tuple[str, Path]]) -> str | None:
    """Why a folder that holds DICOM files beside sub-folders cannot be read as either a
    series or a batch (one would silently skip the other); None when it is one of them."""
    from SpineLabelerLib.io.dicom_series import top_level_dicom_files

    folders = [path for _, path in cases if path.is_dir()]
    if not folders:
        return None
    files = top_level_dicom_files(source)
    if not files:
        return None
    return (
        f"{source} holds {len(files)} DICOM file(s) beside {len(folders)} sub-folder(s) "
        f"({', '.join(p.name for p in folders[:3])}{' ...' if len(folders) > 3 else ''}): "
        "give the series' own folder, or the series with --series UID "
        "(`spinelabeler info` lists them), or move the files into a sub-folder to batch them"
    )


def segment_one(
    ct_path: Path,
    out_dir: Path,
    settings,
    formats: list[str],
    force: bool,
    progress,
    series_uid: str | None = None,
) -> dict:
    """Read (``series_uid``: that series of a DICOM folder), segment and write one CT;
    returns its summary row. Raises on refusal."""
    from SpineLabelerLib.io import read_ct
    from SpineLabelerLib.io._files import refuse_existing
    from SpineLabelerLib.io.reader import read_dicom_ct
    from SpineLabelerLib.io.results import DICOM_FORMATS, RESULT_FILES, write_result_files
    from SpineLabelerLib.pipeline import segment_spine

    formats = formats_for_input(formats, ct_path)
    for fmt in formats:  # fail before a minute of work, not after
        if fmt != "surfaces":
            refuse_existing(out_dir / RESULT_FILES[fmt], force)
    notes: list[str] = []
    dicom_headers: list = []
    if any(f in DICOM_FORMATS for f in formats):  # a DICOM input: formats_for_input
        ct, series = read_dicom_ct(ct_path, notes, series_uid)
        dicom_headers = dicom_source(ct, ct_path, series)
    else:
        ct = read_ct(ct_path, notes, series_uid)
    result = segment_spine(ct, settings, progress)
    report = result.report()
    report["input"] = str(ct_path)
    report["reading_notes"] = notes
    if result.no_spine_found:
        write_result_files(out_dir, ct, result.labels, {}, ["report"], force, report)
    else:
        centroids = {v.label: v.centroid_lps for v in result.vertebrae}
        write_result_files(
            out_dir, ct, result.labels, centroids, formats, force, report, dicom_headers
        )
    return {
        "status": "no spine found" if result.no_spine_found else "ok",
        "vertebrae": " ".join(v.name for v in result.vertebrae),
        "partial": " ".join(v.name for v in result.vertebrae if v.partial),
        "review": "; ".join(review_reasons(result)),
        "seconds": f"{result.timings_s.get('total', 0.0):.1f}",
        "device": result.device,
        "message": "; ".join(result.messages),
    }


def review_reasons(result: SpineResult) -> list[str]:
    """Why a person should look at this case first (a batch's summary.csv sorts on it): the
    count check spoke (``SpineResult.count_check``), or the walk lost the spine at an end
    where a level can be missing."""
    from SpineLabelerLib.column import lost_ends

    reasons = []
    if result.count_check:
        check = result.count_check
        reasons.append(
            f"count: named {check['named']}, the level head prefers {check['head_prefers']}"
        )
    names = [v.name for v in result.vertebrae]
    reasons += [f"spine lost {end} {name}" for end, name in lost_ends(result.walk_ends, names)]
    return reasons


def _fail(message: str, code: int) -> int:
    print(f"spinelabeler segment: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from SpineLabelerLib import nets, pipeline
    from SpineLabelerLib.io.checks import CTInputError
    from SpineLabelerLib.progress import Cancelled

    try:
        formats = parse_formats(args.formats)
    except ValueError as err:
        return _fail(str(err), EXIT_REFUSED)
    settings = pipeline.SegmentSettings(device=args.device, threads=args.threads)
    if args.weights:
        settings = pipeline.replace(settings, weights_dir=Path(args.weights))
    try:
        settings = apply_outline_options(settings, args)
    except ValueError as err:
        return _fail(f"refused: {err}", EXIT_REFUSED)
    if args.fast:
        settings = settings.fast()
    source, out = Path(args.input), Path(args.out)
    if not source.exists():
        return _fail(f"refused: {source} does not exist", EXIT_REFUSED)
    progress = progress_printer(args.progress, sys.stdout)
    cases = case_inputs(source) if source.is_dir() and args.series is None else []
    mixed = mixed_folder(source, cases)
    if mixed:
        return _fail(f"refused: {mixed}", EXIT_REFUSED)
    refusal = refuse_dicom_output(formats, [path for _, path in cases] or [source])
    if args.formats.strip() != "all" and refusal:
        return _fail(f"refused: {refusal}", EXIT_REFUSED)
    try:
        if not cases:
            row = segment_one(source, out, settings, formats, args.force, progress, args.series)
            print(f"{row['status']}: {row['vertebrae'] or 'no vertebrae'} -> {out}")
            return EXIT_OK
        return run_batch(cases, out, settings, formats, args.force, progress)
    except (CTInputError, FileExistsError, OSError) as err:
        return _fail(f"refused: {err}", EXIT_REFUSED)
    except nets.ModelFileError as err:
        return _fail(f"network weights: {err}", EXIT_WEIGHTS)
    except (Cancelled, KeyboardInterrupt):
        return _fail("cancelled; nothing written for the case in progress", EXIT_CANCELLED)


def run_batch(cases, out: Path, settings, formats, force: bool, progress) -> int:
    """Every case into out/<case>/; summary.csv; one failure never stops the batch."""
    from SpineLabelerLib import nets
    from SpineLabelerLib.io._files import refuse_existing
    from SpineLabelerLib.progress import Cancelled

    summary_path = out / "summary.csv"
    refuse_existing(summary_path, force)
    fields = ["case", "status", "vertebrae", "partial", "review", "seconds", "device", "message"]
    rows, failures = [], 0
    for n, (name, path) in enumerate(cases, start=1):
        print(f"[{n}/{len(cases)}] {name}", flush=True)
        try:
            row = segment_one(path, out / name, settings, formats, force, progress)
        except (nets.ModelFileError, Cancelled, KeyboardInterrupt):
            raise  # the same for every case, or the user's wish: stop the batch
        except Exception as err:  # one bad case never stops the batch
            failures += 1
            row = {"status": "failed", "message": f"{type(err).__name__}: {err}"}
            print(f"spinelabeler segment: {name}: failed: {err}", file=sys.stderr)
        rows.append({"case": name, **row})
    out.mkdir(parents=True, exist_ok=True)
    with open(summary_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(cases) - failures}/{len(cases)} cases done; summary: {summary_path}")
    return EXIT_BATCH_FAILURES if failures else EXIT_OK
