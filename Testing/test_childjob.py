"""The child-process runner the Slicer module uses (SpineLabelerLib.childjob)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from SpineLabelerLib.childjob import (
    ChildJob,
    ProgressLine,
    child_environment,
    detect_gpu,
    format_progress_line,
    library_root,
    parse_progress_line,
    segment_argv,
)
from SpineLabelerLib.progress import CancelFlag, Cancelled


def test_progress_lines_round_trip_and_other_lines_are_ignored():
    line = format_progress_line("stage2", 0.25, "vertebra 3 of  ~12\n(walk down)")
    assert line == "PROGRESS 0.2500 stage2 vertebra 3 of ~12 (walk down)"
    assert parse_progress_line(line) == ProgressLine(
        0.25, "stage2", "vertebra 3 of ~12 (walk down)"
    )
    assert parse_progress_line("PROGRESS 1 done") == ProgressLine(1.0, "done", "")
    assert parse_progress_line("PROGRESS 7.5 write x") == ProgressLine(1.0, "write", "x")
    for other in ("", "Traceback (most recent call last):", "PROGRESS nan x y", "PROGRESS x y z"):
        assert parse_progress_line(other) is None
    with pytest.raises(ValueError, match="one word"):
        format_progress_line("stage 1", 0.5)


def test_segment_command_line():
    argv = segment_argv(
        "/py", "/d/ct.nrrd", "/d/out", device="cuda", fast=True, formats=["seg.nrrd", "stl"]
    )
    assert argv == [
        "/py", "-m", "SpineLabelerLib.cli", "segment", "/d/ct.nrrd", "-o", "/d/out",
        "--device", "cuda", "--progress", "lines", "--fast", "--formats", "seg.nrrd,stl", "--force",
    ]  # fmt: skip
    assert "--fast" not in segment_argv("/py", "ct", "out")
    real = segment_argv("/py", "ct", "out", real_shapes=True, bone_edges=True)
    assert real[-3:] == ["--real-shapes", "--bone-edges", "--force"]
    assert not {"--real-shapes", "--bone-edges"} & set(segment_argv("/py", "ct", "out"))
    with pytest.raises(ValueError, match="device"):
        segment_argv("/py", "ct", "out", device="gpu")
    with pytest.raises(ValueError, match="formats"):
        segment_argv("/py", "ct", "out", formats=["obj"])


def test_child_environment_makes_the_library_importable():
    env = child_environment({"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(library_root()), "/elsewhere"]
    assert (library_root() / "SpineLabelerLib" / "childjob.py").is_file()
    assert env["PYTHONUNBUFFERED"] == "1"


_CHILD = """
import sys, time
from SpineLabelerLib.childjob import format_progress_line
for n in range(4):
    print(format_progress_line("work", n / 3, f"step {n}"), flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
sys.exit(int(sys.argv[1]))
"""


def test_wait_forwards_progress_and_returns_the_exit_code():
    seen = []
    job = ChildJob([sys.executable, "-c", _CHILD, "0"])
    code = job.wait(
        progress=lambda stage, f, msg: seen.append((stage, round(f, 3), msg)), timeout_s=60
    )
    assert code == 0
    assert seen == [
        ("work", 0.0, "step 0"),
        ("work", 0.333, "step 1"),
        ("work", 0.667, "step 2"),
        ("work", 1.0, "step 3"),
    ]
    assert job.error_message() == "a warning on stderr"
    assert not job.running


def test_a_failing_child_reports_its_last_lines():
    job = ChildJob([sys.executable, "-c", _CHILD, "3"]).start()
    deadline = time.monotonic() + 60
    while job.running and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.02)
    assert job.returncode == 3
    assert job.last_progress == ProgressLine(1.0, "work", "step 3")
    assert "a warning on stderr" in job.error_message()


def test_cancel_stops_a_running_child_cleanly():
    flag = CancelFlag()
    job = ChildJob(
        [
            sys.executable,
            "-c",
            "import time; print('PROGRESS 0.1 load x', flush=True); time.sleep(60)",
        ]
    )
    job.start()
    deadline = time.monotonic() + 30
    while job.last_progress is None and time.monotonic() < deadline:
        job.poll()
        time.sleep(0.02)
    assert job.last_progress is not None and job.running
    flag.set()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        job.wait(cancel=flag)
    assert time.monotonic() - started < 10
    assert job.cancelled and job._process.poll() is not None


def _write(image, path):
    import SimpleITK as sitk

    from SpineLabelerLib.image import to_sitk

    sitk.WriteImage(to_sitk(image), str(path))
    return path


def test_a_refused_input_reaches_the_panel_as_the_commands_message(tmp_path):
    """What the Slicer module shows when the child refuses its input: a clear last line."""
    import numpy as np

    from SpineLabelerLib.image import Image

    mr_like = Image(np.full((20, 24, 24), 1500, np.int16), (1.0, 1.0, 2.0))
    ct = _write(mr_like, tmp_path / "mr.nrrd")
    job = ChildJob(segment_argv(sys.executable, ct, tmp_path / "out", device="cpu"))
    code = job.wait(timeout_s=120)
    assert code != 0
    assert "spinelabeler segment" in job.error_message(1)
    assert not (tmp_path / "out" / "labels.nii.gz").exists()


@pytest.mark.slow
def test_segment_command_through_a_child_job(tmp_path):
    """The module's whole outside-Slicer path: phantom CT -> child `segment` -> files."""
    from SpineLabelerLib.io.reader import read_labelmap
    from SpineLabelerLib.phantom import generate_case

    if not (library_root() / "Resources" / "Models" / "stage1.pt").is_file():
        pytest.skip("no shipped weights in Resources/Models yet")
    case = generate_case(3, "lumbar", spacing_mm=(1.5, 1.5, 2.0))
    ct = _write(case.ct, tmp_path / "ct.nrrd")
    out = tmp_path / "out"
    seen: list[float] = []
    job = ChildJob(segment_argv(sys.executable, ct, out, device="cpu", fast=True))
    assert job.wait(progress=lambda stage, f, msg: seen.append(f), timeout_s=900) == 0, (
        job.error_message()
    )
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    labels = read_labelmap(out / "labels.nii.gz")
    assert labels.same_grid(case.ct)
    for name in ("segmentation.seg.nrrd", "centroids.mrk.json", "report.json"):
        assert (out / name).is_file(), name


def test_gpu_detection_reads_the_probes_answer(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text("#!/bin/sh\necho 'some warning'\necho 'NVIDIA H100 80GB HBM3'\n")
    fake.chmod(0o755)
    assert detect_gpu(str(fake)) == "NVIDIA H100 80GB HBM3"
    failing = tmp_path / "failing_python"
    failing.write_text("#!/bin/sh\necho 'ModuleNotFoundError: torch' >&2\nexit 1\n")
    failing.chmod(0o755)
    assert detect_gpu(str(failing)) == ""
    assert detect_gpu(str(tmp_path / "missing")) == ""
    # This machine's torch answers too (a CPU build: no GPU, so "").
    import torch

    expected = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    assert detect_gpu(sys.executable) == expected
