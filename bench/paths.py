"""Output paths: created up front, and a path that cannot be created is a one-line UsageError
naming the flag, the path and the reason (never a raw NotADirectoryError)."""
from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def output_dir(path: str | Path, flag: str) -> Path:
    """Create directory ``path`` (and its parents) for ``flag``'s output."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag}: {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: cannot create directory {path} ({_reason(exc, path)})"
                         ) from None
    return path


def output_file(path: str | Path, flag: str) -> Path:
    """Check that file ``path`` can be written for ``flag`` (its folder is created)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag}: {path} is a directory, not a file")
    output_dir(path.parent, flag)
    return path


def _reason(exc: OSError, path: Path) -> str:
    """What went wrong, in words; mkdir's FileExistsError on a file in the way is misleading."""
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{blocker} is a file"
    return exc.strerror or type(exc).__name__
