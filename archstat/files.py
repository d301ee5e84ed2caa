"""Atomic file output: a failed run never leaves a partial or truncated file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from archstat.errors import ArchstatError


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and an
    atomic rename; on any failure the temporary file is removed and ``path`` untouched."""
    target = Path(path)
    if target.is_dir():
        raise ArchstatError(f"output path {str(target)!r} is a directory")
    if not target.parent.is_dir():
        raise ArchstatError(f"output directory {str(target.parent)!r} does not exist")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ArchstatError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8",
                                                            "newline": ""})) as handle:
            handle.write(data)
        # mkstemp creates 0600; give the file the mode a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ArchstatError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def report_directory(out: str | os.PathLike[str], create: bool = True) -> Path:
    """``out`` as a directory, created (with its parents) if missing; ArchstatError where
    it cannot be (a file of that name, no permission). With ``create=False`` it is only
    checked, so that a caller can refuse a bad path before long work that writes
    nothing until it is done."""
    directory = Path(out)
    if not create:
        if directory.exists() and not directory.is_dir():
            raise ArchstatError(f"cannot create report directory {str(directory)!r}: "
                                "it is a file")
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchstatError(f"cannot create report directory {str(directory)!r}: "
                            f"{exc.strerror or exc}") from None
    return directory
