"""Atomic file writes: a crash or Ctrl-C never leaves a half-written cache or result file."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def replace_block(path: str | os.PathLike, name: str, block: str) -> bool:
    """Put ``block`` between the lines ``<!-- NAME:BEGIN -->`` and ``<!-- NAME:END -->`` of ``path`` (an atomic
    write). Without both markers, in that order, the file is left as it is and the function says so (False)."""
    path = Path(path)
    begin, end = f"<!-- {name}:BEGIN -->\n", f"<!-- {name}:END -->"
    text = path.read_text() if path.is_file() else ""
    start = text.find(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if stop < 0:
        print(f"note: {path} has no {begin.strip()} ... {end} markers: its {name} block was not updated")
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text[:start + len(begin)] + block + "\n" + text[stop:])
    return True


def save_npy(array: np.ndarray, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)


class CacheError(ValueError):
    """A cache file exists but cannot be read; the message names the file and the fix."""


def load_npy(path: str | os.PathLike) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CacheError(f"cache file {path} is corrupt ({e}); delete it and run again (it is recomputed)") from None
