"""Amazon data: the Prime Pantry subset released with PAD, and the Amazon Reviews 2023 format."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import data_root
from .dataset import DataError, Dataset, build_dataset
from .download import fetch, missing_files, not_found_error

PANTRY_DIR = "amazon-prime-pantry"
PANTRY_URL = "https://raw.githubusercontent.com/Applied-Machine-Learning-Lab/PAD/main/dataset/"
PANTRY_FILES = {  # file: md5 (see ../shared/README.md)
    "Prime_Pantry_cleaned_history.csv": "b10cc628dfdc0981cb01b8d51a094838",
    "metadata_Prime_Pantry.csv": "18a5b7aac4a0ee7de2c3caa328fcdda9",
}
_ASIN = re.compile(r"'([^']*)'")


def ensure_pantry(root=None) -> Path:
    folder = data_root(root) / PANTRY_DIR
    missing = missing_files(folder, list(PANTRY_FILES))
    for name in missing:
        try:
            fetch(PANTRY_URL + name, folder / name, PANTRY_FILES[name])
        except Exception as e:
            raise not_found_error("Amazon Prime Pantry", folder, missing, PANTRY_URL,
                                  f"{type(e).__name__}: {e}") from None
    return folder


def read_csv(path: Path) -> pd.DataFrame:
    """pandas.read_csv; an unreadable file raises one DataError naming it and the fix."""
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read as CSV ({str(e).strip().splitlines()[-1]}); the file is corrupt or "
                        f"truncated: delete it to re-download it, or replace it with the original") from None


def load_amazon_pantry(root=None) -> Dataset:
    """12871 users, 8347 items; each history is in time order (position = timestamp)."""
    from ..text.prompts import item_prompt

    folder = ensure_pantry(root)
    hist, meta = (read_csv(folder / f) for f in ("Prime_Pantry_cleaned_history.csv", "metadata_Prime_Pantry.csv"))
    for need, df, f in (({"user", "history"}, hist, "Prime_Pantry_cleaned_history.csv"),
                        ({"asin", "title"}, meta, "metadata_Prime_Pantry.csv")):
        if not need <= set(df.columns):
            raise DataError(f"{folder / f}: expected columns {sorted(need)}, found {list(df.columns)}")
    seqs = hist["history"].map(_ASIN.findall)
    empty = seqs.map(len) == 0
    if empty.any():
        n = int(np.flatnonzero(empty.to_numpy())[0]) + 2  # +1 header, +1 one-based
        raise DataError(f"{folder / 'Prime_Pantry_cleaned_history.csv'}, line {n}: history has no items")
    raw = pd.DataFrame({
        "user_raw": np.repeat(hist["user"].to_numpy(), seqs.map(len)),
        "item_raw": np.concatenate(seqs.to_numpy()),
        "rating": 1.0,  # the release keeps ratings >= 4 only
        "timestamp": np.concatenate([np.arange(len(s)) for s in seqs]),
    })
    items = pd.DataFrame({"title": meta["title"].fillna("").astype(str).to_numpy(),
                          "year": pd.array([None] * len(meta), dtype="Int64"),
                          "genres": [[] for _ in range(len(meta))]},
                         index=pd.Index(meta["asin"], name="raw_id"))
    items["text"] = [item_prompt(t) for t in items["title"]]
    return build_dataset("amazon-pantry", raw, items)


SCIENTIFIC_DIR = "amazon-scientific"
SCIENTIFIC_FILES = {"Scientific.inter.json": "d035ed344f4c2c68759f8c46baa7d482",
                    "Scientific.item.json": "cb33b24cb65a0776271b55b64f6ac9a2"}
SCIENTIFIC_SOURCE = "github.com/Nishikata97/CollisionGenRec (data/Scientific/)"


def load_amazon_scientific(root=None) -> Dataset:
    """Amazon Reviews 2018 Industrial & Scientific, 5-core (8317 users, 4344 items, 58492 interactions in time
    order, no ratings): item title, brand, category path and description, kept as columns (``brand``,
    ``categories``, ``description``) for prompts; ``text`` = title, brand, categories and the description's start."""
    from ..text.prompts import item_prompt
    from .download import not_found_error

    folder = data_root(root) / SCIENTIFIC_DIR
    missing = missing_files(folder, list(SCIENTIFIC_FILES))
    if missing:
        raise not_found_error("Amazon Industrial & Scientific", folder, missing, SCIENTIFIC_SOURCE,
                              "no public download with a stable checksum")
    loaded = {}
    for f in SCIENTIFIC_FILES:
        try:
            loaded[f] = json.loads((folder / f).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{folder / f}, line {e.lineno}: not valid JSON ({e.msg}); the file is corrupt: "
                            f"replace it with the original") from None
    seqs, meta = loaded["Scientific.inter.json"], loaded["Scientific.item.json"]
    users = list(seqs)
    raw = pd.DataFrame({"user_raw": np.repeat(users, [len(seqs[u]) for u in users]),
                        "item_raw": [str(i) for u in users for i in seqs[u]], "rating": 1.0,
                        "timestamp": np.concatenate([np.arange(len(seqs[u])) for u in users])})
    ids = list(meta)
    cats = [[c.strip() for c in str(meta[i].get("categories") or "").split(",") if c.strip()] for i in ids]
    items = pd.DataFrame({"title": [str(meta[i].get("title") or "").strip().rstrip(".") for i in ids],
                          "year": pd.array([None] * len(ids), dtype="Int64"),
                          "genres": [c[1:] if c[:1] == ["Industrial & Scientific"] else c for c in cats],
                          "brand": [str(meta[i].get("brand") or "").strip() for i in ids],
                          "categories": cats,
                          "description": [str(meta[i].get("description") or "").strip() for i in ids]},
                         index=pd.Index(ids, name="raw_id"))
    items["text"] = [item_prompt(r.title, genres=r.genres, brand=r.brand, description=r.description)
                     for r in items.itertuples()]
    return build_dataset("amazon-scientific", raw, items)


def load_amazon2023(ratings_csv: str | Path, meta_jsonl: str | Path, name: str | None = None) -> Dataset:
    """Amazon Reviews 2023 benchmark files: a rating CSV (user_id, parent_asin, rating, timestamp)
    and the category's meta JSONL (parent_asin, title, categories, description, ...).

    Item text = title + categories + the start of the description.
    """
    from ..text.prompts import item_prompt

    ratings_csv, meta_jsonl = Path(ratings_csv), Path(meta_jsonl)
    for p in (ratings_csv, meta_jsonl):
        if not p.is_file():
            raise DataError(f"{p} not found. Download the category's 5-core rating CSV and meta JSONL "
                            f"from the Amazon Reviews 2023 site (amazon-reviews-2023.github.io).")
    r = read_csv(Path(ratings_csv))
    need = {"user_id", "parent_asin", "rating", "timestamp"}
    if not need <= set(r.columns):
        raise DataError(f"{ratings_csv}: expected columns {sorted(need)}, found {list(r.columns)}")
    wanted = set(r["parent_asin"])
    rows = []
    with open(meta_jsonl, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{meta_jsonl}, line {n}: not valid JSON ({e.msg})") from None
            if m.get("parent_asin") in wanted:
                desc = m.get("description") or []
                rows.append((m["parent_asin"], m.get("title") or "", list(m.get("categories") or []),
                             " ".join(desc) if isinstance(desc, list) else str(desc)))
    meta = pd.DataFrame(rows, columns=["raw_id", "title", "genres", "description"]).drop_duplicates("raw_id")
    meta = meta.set_index("raw_id")
    meta["year"] = pd.array([None] * len(meta), dtype="Int64")
    meta["text"] = [item_prompt(t, genres=g, description=d)
                    for t, g, d in zip(meta["title"], meta["genres"], meta["description"])]
    raw = r.rename(columns={"user_id": "user_raw", "parent_asin": "item_raw"})
    return build_dataset(name or ratings_csv.stem, raw, meta)
