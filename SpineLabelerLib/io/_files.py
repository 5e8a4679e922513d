"""The one overwrite policy of every writer: refuse an existing file unless ``force``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def refuse_existing(path: str | os.PathLike, force: bool) -> Path:
    """Return ``path`` as a Path; raise FileExistsError if it exists and ``force`` is False."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; use force=True (--force) to overwrite it")
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, force: bool) -> Iterator[Path]:
    """Yield a hidden temporary name beside ``path`` that is renamed to ``path`` on success.

    The temporary name ends with ``path``'s own name, so writers that choose the format
    by extension (SimpleITK, VTK) still see ".nii.gz", ".stl", ...; on error it is removed
    and nothing half-written is left.
    """
    path = refuse_existing(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
