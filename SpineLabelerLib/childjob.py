"""Run ``spinelabeler segment`` as a child process and follow its ``PROGRESS`` lines.

The Slicer module segments in a child process rather than in Slicer's own Python: the GUI
stays responsive, Cancel is a clean process stop (nothing half-done is left in the scene),
and a crash inside torch cannot take Slicer down. This module is the part of that which
needs no Slicer: the line format, its parser, the command line and a non-blocking runner
that a GUI timer polls (or that :meth:`ChildJob.wait` drives synchronously).

Line format (docs/ARCHITECTURE.md): ``PROGRESS <fraction 0..1> <stage> <message>``.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from SpineLabelerLib.progress import CancelFlag, Cancelled, ProgressCallback, report

PROGRESS_PREFIX = "PROGRESS"
SEGMENT_FORMATS = ("seg.nrrd", "nii.gz", "mrk.json", "stl", "png")


@dataclass(frozen=True)
class ProgressLine:
    """One progress report read from a child's stdout."""

    fraction: float  # 0..1
    stage: str
    message: str


def format_progress_line(stage: str, fraction: float, message: str = "") -> str:
    """The line a command prints for one progress report (stage must be one word)."""
    if not stage or any(c.isspace() for c in stage):
        raise ValueError(f"stage must be one word, got {stage!r}")
    fraction = min(max(float(fraction), 0.0), 1.0)
    text = " ".join(str(message).split())  # one line, whatever the message held
    return f"{PROGRESS_PREFIX} {fraction:.4f} {stage} {text}".rstrip()


def parse_progress_line(line: str) -> ProgressLine | None:
    """The report a ``PROGRESS`` line holds, or None for any other line."""
    parts = line.strip().split(" ", 3)
    if len(parts) < 3 or parts[0] != PROGRESS_PREFIX:
        return None
    try:
        fraction = float(parts[1])
    except ValueError:
        return None
    if fraction != fraction:  # NaN
        return None
    message = parts[3] if len(parts) == 4 else ""
    return ProgressLine(min(max(fraction, 0.0), 1.0), parts[2], message)


def library_root() -> Path:
    """Folder that holds the ``SpineLabelerLib`` package (put on the child's PYTHONPATH)."""
    return Path(__file__).resolve().parent.parent


def segment_argv(
    python: str,
    ct_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    device: str = "auto",
    fast: bool = False,
    formats: Sequence[str] | None = None,
    force: bool = True,
    real_shapes: bool = False,
    bone_edges: bool = False,
) -> list[str]:
    """Command line of ``spinelabeler segment`` run by interpreter ``python`` (PythonSlicer
    inside Slicer), printing ``PROGRESS`` lines. ``real_shapes`` / ``bone_edges``: the
    options for real CTs (``--real-shapes``, ``--bone-edges``)."""
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, got {device!r}")
    argv = [python, "-m", "SpineLabelerLib.cli", "segment", str(ct_path), "-o", str(out_dir)]
    argv += ["--device", device, "--progress", "lines"]
    if fast:
        argv.append("--fast")
    if real_shapes:
        argv.append("--real-shapes")
    if bone_edges:
        argv.append("--bone-edges")
    if formats is not None:
        unknown = sorted(set(formats) - set(SEGMENT_FORMATS))
        if unknown or not formats:
            raise ValueError(
                f"formats must be a non-empty subset of {SEGMENT_FORMATS}, got {unknown}"
            )
        argv += ["--formats", ",".join(formats)]
    if force:
        argv.append("--force")
    return argv


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the child: the library importable, output unbuffered."""
    env = dict(os.environ if base is None else base)
    paths = [str(library_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ChildJob:
    """A child process whose stdout is read on a thread; :meth:`poll` never blocks.

    stderr is merged into stdout; lines that are not progress reports are kept (the last
    ``tail_lines``) so an error can be shown to the user.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        tail_lines: int = 40,
    ) -> None:
        if not argv:
            raise ValueError("empty command line")
        self.argv = [str(a) for a in argv]
        self.env = child_environment() if env is None else env
        self.cwd = cwd
        self.output_tail: deque[str] = deque(maxlen=tail_lines)
        self.last_progress: ProgressLine | None = None
        self.cancelled = False
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._eof = False

    def start(self) -> ChildJob:
        if self._process is not None:
            raise RuntimeError("job already started")
        self._process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self._lines.put(None)

    def poll(self) -> list[ProgressLine]:
        """Progress reports that arrived since the last call (other lines go to the tail)."""
        reports = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            parsed = parse_progress_line(line)
            if parsed is None:
                if line.strip():
                    self.output_tail.append(line)
            else:
                reports.append(parsed)
                self.last_progress = parsed
        return reports

    @property
    def returncode(self) -> int | None:
        """Exit code once the process ended and its output was read, else None."""
        if self._process is None or self._process.poll() is None or not self._eof:
            return None
        return self._process.returncode

    @property
    def running(self) -> bool:
        return self._process is not None and self.returncode is None

    def cancel(self, grace_s: float = 5.0) -> None:
        """Stop the child: terminate, then kill if it has not ended after ``grace_s``."""
        self.cancelled = True
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def error_message(self, lines: int = 8) -> str:
        """The last output lines, for a message box when the child failed."""
        return "\n".join(list(self.output_tail)[-lines:])

    def wait(
        self,
        progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
        poll_s: float = 0.1,
        timeout_s: float | None = None,
    ) -> int:
        """Run to the end, forwarding reports to ``progress``; for the console and tests.

        Raises :class:`Cancelled` (after stopping the child) when ``cancel`` is set and
        ``TimeoutError`` after ``timeout_s``.
        """
        if self._process is None:
            self.start()
        assert self._process is not None
        waited = 0.0
        while True:
            for line in self.poll():
                report(progress, line.stage, line.fraction, line.message)
            if self.returncode is not None:
                return self.returncode
            if cancel is not None and cancel.is_set:
                self.cancel()
                raise Cancelled("segmentation cancelled by the user")
            if timeout_s is not None and waited >= timeout_s:
                self.cancel()
                raise TimeoutError(f"{' '.join(self.argv[:4])} ran longer than {timeout_s} s")
            if self._process.poll() is not None and self._reader is not None:
                self._reader.join(timeout=poll_s)  # ended: let the reader reach the end
            else:
                try:
                    self._process.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    pass
            waited += poll_s


def python_executable() -> str:
    """The interpreter to run the child with: PythonSlicer inside Slicer (Slicer's own
    ``sys.executable`` is the Slicer application), else this interpreter."""
    import shutil

    for name in ("PythonSlicer", "PythonSlicer.exe"):
        found = shutil.which(name)
        if found:
            return found
    return sys.executable


_GPU_PROBE = (
    "import torch\nprint(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
)


def detect_gpu(python: str, timeout_s: float = 120.0) -> str:
    """Name of the CUDA GPU torch sees when run by ``python``, or "" (none, no torch, or the
    probe failed). Asked in a child so that the GUI process never holds a CUDA context."""
    try:
        probe = subprocess.run(
            [python, "-c", _GPU_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = probe.stdout.strip().splitlines()
    return lines[-1].strip() if probe.returncode == 0 and lines else ""
