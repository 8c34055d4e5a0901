"""RecBole atomic files (``.inter``, ``.item``, ``.user``) as a ``Dataset`` — the way ml-1m is shipped in
``../shared/data/ml-1m`` and how anyone with RecBole data can bring it in.

Format (RecBole docs, "Atomic Files"): tab-separated, one header line of ``name:type`` fields, types ``token``,
``token_seq`` (space-separated tokens), ``float``, ``float_seq``. Interactions need ``user_id`` and ``item_id``;
``rating`` and ``timestamp`` are used when present (otherwise every row is a positive, in file order).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import DataError, Dataset, build_dataset

TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELDS = ("movie_title", "title", "item_name")
YEAR_FIELDS = ("release_year", "year")
GENRE_FIELDS = ("genre", "genres", "categories", "class")


def read_atomic(path: str | Path) -> pd.DataFrame:
    """One atomic file as a DataFrame with the field names (types stripped); float fields as floats,
    ``*_seq`` fields as lists. A malformed header or line raises a DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found (RecBole atomic file)")
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f]
    names, types = [], []
    for h in header:
        name, sep, typ = h.partition(":")
        if not sep or typ not in TYPES:
            raise DataError(f"{path}, line 1: header field {h!r} is not name:type with type in {list(TYPES)}")
        names.append(name)
        types.append(typ)
    for n, r in enumerate(rows, start=2):
        if len(r) != len(names):
            raise DataError(f"{path}, line {n}: {len(r)} tab-separated fields, the header has {len(names)}; "
                            f"the file is truncated or corrupt")
    df = pd.DataFrame(rows, columns=names)
    for name, typ in zip(names, types):
        if typ == "float":
            num = pd.to_numeric(df[name].replace("", np.nan), errors="coerce")
            bad = num.isna() & (df[name] != "")
            if bad.any():
                n = int(np.flatnonzero(bad.to_numpy())[0]) + 2
                raise DataError(f"{path}, line {n}: field {name!r} is not a number: {df[name].iloc[n - 2]!r}")
            df[name] = num
        elif typ.endswith("_seq"):
            df[name] = [v.split() for v in df[name]]
            if typ == "float_seq":
                df[name] = [[float(x) for x in v] for v in df[name]]
    return df


def load_recbole_atomic(folder: str | Path, name: str | None = None) -> Dataset:
    """``folder/name.inter`` (+ ``.item`` and ``.user`` when present) as a Dataset. Item titles, years and
    genres are read from the usual RecBole fields (``movie_title``/``title``, ``release_year``, ``genre``);
    every other item field stays available as a column."""
    from ..text.prompts import item_prompt
    from .movielens import clean_title

    folder = Path(folder)
    name = name or folder.name
    inter = read_atomic(folder / f"{name}.inter")
    for need in ("user_id", "item_id"):
        if need not in inter.columns:
            raise DataError(f"{folder / (name + '.inter')}: no {need} field (found {list(inter.columns)})")
    raw = pd.DataFrame({"user_raw": inter["user_id"], "item_raw": inter["item_id"],
                        "rating": inter["rating"] if "rating" in inter else 1.0,
                        "timestamp": inter["timestamp"].astype(np.int64) if "timestamp" in inter
                        else np.arange(len(inter))})
    item_file = folder / f"{name}.item"
    if item_file.is_file():
        it = read_atomic(item_file).drop_duplicates("item_id").set_index("item_id")
    else:
        it = pd.DataFrame(index=pd.Index(pd.unique(raw["item_raw"]), name="item_id"))
    title_field = next((f for f in TITLE_FIELDS if f in it.columns), None)
    titles = it[title_field].astype(str) if title_field else pd.Series(it.index.astype(str), index=it.index)
    parsed = [clean_title(t) for t in titles]
    year_field = next((f for f in YEAR_FIELDS if f in it.columns), None)
    years = it[year_field] if year_field else pd.Series([p[1] for p in parsed], index=it.index)
    genre_field = next((f for f in GENRE_FIELDS if f in it.columns), None)
    genres = it[genre_field] if genre_field else pd.Series([[] for _ in range(len(it))], index=it.index)
    items = it.drop(columns=[f for f in (title_field, year_field, genre_field) if f]).assign(
        title=[p[0] for p in parsed], year=pd.array([None if pd.isna(y) else int(y) for y in years], dtype="Int64"),
        genres=[list(g) if isinstance(g, list) else str(g).split() for g in genres])
    items["text"] = [item_prompt(r.title, year=r.year, genres=r.genres) for r in items.itertuples()]
    users = None
    user_file = folder / f"{name}.user"
    if user_file.is_file():
        users = read_atomic(user_file).drop_duplicates("user_id").set_index("user_id")
    return build_dataset(name, raw, items.rename_axis("raw_id"), users)
