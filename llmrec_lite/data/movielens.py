"""MovieLens-100k and MovieLens-1M from the original GroupLens files."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import data_root
from .dataset import DataError, Dataset, build_dataset
from .download import extract_zip, fetch, missing_files, not_found_error

SOURCES = {  # name: (zip url, md5 of the zip, folder inside the zip, files we need)
    "ml-100k": ("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                "0e33842e24a9c977be4e0107933c0723", "ml-100k", ["u.data", "u.item", "u.user", "u.genre"]),
    "ml-1m": ("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
              "c4d9eecfca2ab87c1945afe126590906", "ml-1m", ["ratings.dat", "movies.dat", "users.dat"]),
}
FILE_MD5 = {  # per-file md5 of the GroupLens originals (what `python -m llmrec_lite info` verifies)
    "ml-100k": {"u.data": "6e47046882bad158b0efbb84cd5cb987", "u.item": "2b6d1756f16d2ef8f83156dde7be4e69"},
    "ml-1m": {"ml-1m.inter": "4df1a1407d07124b0634cb7f13c2e6fb", "ml-1m.item": "c782abb86de2c7630d27edfba988893f",
              "ml-1m.user": "5e9d196aad4f4bbd45609e9ed77d33dd"},  # RecBole atomic files (../shared/data/ml-1m)
}
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]
_ARTICLE = re.compile(r"^(.*), (The|A|An|La|Le|Les|Il|Das|Die|Der|El)$")
_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def ensure_movielens(name: str, root=None) -> Path:
    """Return the folder with the raw files, downloading and verifying the zip if they are absent."""
    url, md5, member, files = SOURCES[name]
    root = data_root(root)
    folder = root / name
    missing = missing_files(folder, files)
    if not missing:
        return folder
    try:
        archive = fetch(url, root / f"{name}.zip", md5)
        extract_zip(archive, member, folder)
        archive.unlink()
    except Exception as e:  # offline, checksum mismatch, bad zip: one clear error naming the fix
        raise not_found_error(f"MovieLens ({name})", folder, missing, url, f"{type(e).__name__}: {e}") from None
    return folder


def read_table(path: Path, sep: str, columns: list[str], int_columns: list[str],
               encoding: str = "latin-1") -> pd.DataFrame:
    """Read a header-less delimited file; a malformed line raises naming the file and line number."""
    if sep == "::":  # python engine handles multi-char separators; split ourselves for speed
        lines = path.read_text(encoding=encoding).splitlines()
        rows = [ln.split("::") for ln in lines]
    else:
        rows = [ln.split(sep) for ln in path.read_text(encoding=encoding).splitlines()]
    for n, r in enumerate(rows, start=1):
        if len(r) != len(columns):
            raise DataError(f"{path}, line {n}: expected {len(columns)} fields separated by {sep!r}, "
                            f"got {len(r)}: {sep.join(r)[:80]!r}. The file is truncated or corrupt: "
                            f"re-download it (delete the folder to trigger a fresh download).")
    df = pd.DataFrame(rows, columns=columns)
    for c in int_columns:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna()
        if bad.any():
            n = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise DataError(f"{path}, line {n}: column '{c}' is not a number: {df[c].iloc[n - 1]!r}. "
                            f"The file is corrupt: re-download it.")
        df[c] = num.astype(np.int64)
    return df


def clean_title(raw: str) -> tuple[str, int | None]:
    """'Usual Suspects, The (1995)' -> ('The Usual Suspects', 1995)."""
    title, year = raw.strip(), None
    m = _YEAR.match(title)
    if m:
        title, year = m.group(1), int(m.group(2))
    m = _ARTICLE.match(title)
    if m:
        title = f"{m.group(2)} {m.group(1)}"
    return title, year


def _items_frame(ids, raw_titles, genres) -> pd.DataFrame:
    from ..text.prompts import item_prompt

    parsed = [clean_title(t) for t in raw_titles]
    items = pd.DataFrame({
        "title": [p[0] for p in parsed],
        "year": pd.array([p[1] for p in parsed], dtype="Int64"),
        "genres": genres,
    }, index=pd.Index(ids, name="raw_id"))
    items["text"] = [item_prompt(r.title, year=r.year, genres=r.genres) for r in items.itertuples()]
    return items


def load_ml100k(root=None) -> Dataset:
    folder = ensure_movielens("ml-100k", root)
    r = read_table(folder / "u.data", "\t", ["user_raw", "item_raw", "rating", "timestamp"],
                   ["user_raw", "item_raw", "rating", "timestamp"])
    it = read_table(folder / "u.item", "|", ["id", "title", "release", "video", "url"] + ML100K_GENRES,
                    ["id"] + ML100K_GENRES)
    flags = it[ML100K_GENRES].to_numpy(bool)
    genres = [[g for g, f in zip(ML100K_GENRES, row) if f and g != "unknown"] for row in flags]
    items = _items_frame(it["id"], it["title"], genres)
    us = read_table(folder / "u.user", "|", ["id", "age", "gender", "occupation", "zip"], ["id", "age"])
    users = us.set_index("id").rename_axis("raw_id")
    return build_dataset("ml-100k", r, items, users)


def load_ml1m(root=None) -> Dataset:
    """MovieLens-1M: RecBole's atomic files (``ml-1m/ml-1m.inter`` etc., as in ../shared/data) when present,
    else the GroupLens ``.dat`` files (downloaded and md5-checked when absent)."""
    atomic = data_root(root) / "ml-1m"
    if (atomic / "ml-1m.inter").is_file():
        from .recbole import load_recbole_atomic

        return load_recbole_atomic(atomic, "ml-1m")
    folder = ensure_movielens("ml-1m", root)
    r = read_table(folder / "ratings.dat", "::", ["user_raw", "item_raw", "rating", "timestamp"],
                   ["user_raw", "item_raw", "rating", "timestamp"])
    mv = read_table(folder / "movies.dat", "::", ["id", "title", "genres"], ["id"])
    items = _items_frame(mv["id"], mv["title"], [g.split("|") for g in mv["genres"]])
    us = read_table(folder / "users.dat", "::", ["id", "gender", "age", "occupation", "zip"], ["id", "age"])
    users = us.set_index("id").rename_axis("raw_id")
    return build_dataset("ml-1m", r, items, users)
