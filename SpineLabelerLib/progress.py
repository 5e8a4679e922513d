"""Progress reporting and cancellation shared by every long job (phantoms, training, segmenting).

A job takes ``progress: ProgressCallback`` and ``cancel: CancelFlag`` and calls
``report(progress, stage, fraction, message)`` / ``cancel.check()`` between steps. The CLI
prints the reports, the Slicer module shows them in its progress bar and sets the flag
when the user clicks Cancel.
"""

from __future__ import annotations

import threading
from typing import Callable

ProgressCallback = Callable[[str, float, str], None]  # (stage, fraction 0..1, message)


class Cancelled(Exception):
    """Raised inside a job when its cancel flag was set; nothing half-written is kept."""


class CancelFlag:
    """Thread-safe flag a GUI or signal handler sets and a job checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(
    progress: ProgressCallback | None, stage: str, fraction: float, message: str = ""
) -> None:
    """Call ``progress`` if there is one, with the fraction clamped to [0, 1]."""
    if progress is not None:
        progress(stage, min(max(float(fraction), 0.0), 1.0), message)
