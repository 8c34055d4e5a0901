"""Download-once helpers with checksums and atomic extraction."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..config import DATA_ENV
from .dataset import DataError


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, md5: str | None, timeout: float = 60) -> Path:
    """Download url to dest (atomically), verifying its md5; raise on any failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}",
                      leave=False) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        got = md5sum(tmp)
        if md5 is not None and got != md5:
            raise DataError(f"checksum mismatch for {url}: md5 {got}, expected {md5}")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def extract_zip(archive: Path, member_dir: str, target: Path) -> None:
    """Extract the folder ``member_dir`` of a zip into ``target``, atomically (all or nothing)."""
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(work)
        src = work / member_dir
        if not src.is_dir():
            raise DataError(f"{archive} has no folder {member_dir}/")
        if target.exists():  # an incomplete earlier copy: replace it
            shutil.rmtree(target)
        os.replace(src, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def missing_files(folder: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (folder / f).is_file()]


def not_found_error(title: str, folder: Path, files: list[str], source: str, why: str) -> DataError:
    return DataError(
        f"{title} not found: {folder} lacks {', '.join(files)} and the download failed ({why}).\n"
        f"Fix: put the files from {source} into {folder}/, or set {DATA_ENV} to the folder that "
        f"holds '{folder.name}/' (e.g. export {DATA_ENV}=../shared/data)."
    )


def verify(folder: Path, checksums: dict[str, str]) -> list[str]:
    """Problems with the files of a dataset folder: missing files and md5 mismatches (empty = all good)."""
    problems = []
    for name, md5 in checksums.items():
        f = folder / name
        if not f.is_file():
            problems.append(f"{name} missing")
        elif md5sum(f) != md5:
            problems.append(f"{name} md5 {md5sum(f)} != {md5} (corrupt or another version: delete it to re-download)")
    return problems
