"""One typed dataset object for every source (MovieLens, Amazon, synthetic)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


class DataError(RuntimeError):
    """Missing or malformed data; the message names the fix."""


@dataclass
class Dataset:
    """Interactions with contiguous ids plus item metadata and item text.

    interactions: columns user, item (int64, 0..n-1), rating (float32), timestamp (int64), sorted by
        (user, timestamp). Sources without timestamps (Amazon Pantry) use the position in the
        user's history, so "order = time" holds everywhere.
    items: one row per item id (index 0..n_items-1): raw_id, title, year (nullable), genres (list of
        str), text (the prompt a language model reads).
    users: one row per user id: raw_id (+ demographics where the source has them).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    history: list[str] = field(default_factory=list)  # preprocessing steps applied, for the record

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def stats(self) -> dict:
        n = self.n_interactions
        per_user = self.interactions.groupby("user").size()
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / (self.n_users * self.n_items),
            "mean_history": float(per_user.mean()),
            "preprocessing": ", ".join(self.history) or "none",
        }

    def describe(self) -> str:
        s = self.stats()
        return (f"{s['dataset']}: {s['users']} users, {s['items']} items, {s['interactions']} "
                f"interactions, density {s['density']:.4%}, mean history {s['mean_history']:.1f} "
                f"({s['preprocessing']})")

    @property
    def item_texts(self) -> list[str]:
        return self.items["text"].tolist()

    # ---------------------------------------------------------------- preprocessing
    def implicit(self, min_rating: float | None = None) -> "Dataset":
        """Keep interactions with rating >= min_rating (None: all ratings count as positives)."""
        if min_rating is None:
            return self
        keep = self.interactions["rating"] >= min_rating
        if not keep.any():
            r = self.interactions["rating"]
            raise DataError(f"no {self.name} rating is >= {min_rating:g} (ratings range {r.min():g}-{r.max():g}); "
                            f"lower --min-rating")
        return self._subset(self.interactions[keep], f"rating>={min_rating:g}")

    def k_core(self, k: int) -> "Dataset":
        """Iteratively drop users and items with fewer than k interactions."""
        if k <= 1:
            return self
        df = self.interactions
        while True:
            u = df.groupby("user")["item"].transform("size")
            i = df.groupby("item")["user"].transform("size")
            keep = (u >= k) & (i >= k)
            if keep.all():
                break
            df = df[keep]
            if df.empty:
                raise DataError(f"the {k}-core of {self.name} is empty (no user and item keep {k} interactions); "
                                f"lower --k-core")
        return self._subset(df, f"{k}-core")

    def sample_users(self, n: int, seed: int = 0) -> "Dataset":
        """A random ``n`` of the users with all their interactions (items nobody left has are dropped): a
        smaller copy for smoke runs and quick exploration."""
        if not 0 < n <= self.n_users:
            raise DataError(f"sample_users: n must be between 1 and {self.n_users} (the users of {self.name}), got {n}")
        if n == self.n_users:
            return self
        chosen = np.random.default_rng(seed).choice(self.n_users, n, replace=False)
        return self._subset(self.interactions[self.interactions["user"].isin(chosen)], f"{n} random users (seed {seed})")

    def _subset(self, df: pd.DataFrame, step: str) -> "Dataset":
        """Re-index users and items contiguously after a filter."""
        users = np.sort(df["user"].unique())
        items = np.sort(df["item"].unique())
        umap = pd.Series(np.arange(len(users)), index=users)
        imap = pd.Series(np.arange(len(items)), index=items)
        out = df.assign(user=umap.loc[df["user"]].to_numpy(), item=imap.loc[df["item"]].to_numpy())
        return Dataset(
            name=self.name,
            interactions=out.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True),
            items=self.items.loc[items].reset_index(drop=True),
            users=self.users.loc[users].reset_index(drop=True),
            history=self.history + [step],
        )


def build_dataset(name: str, raw: pd.DataFrame, items: pd.DataFrame,
                  users: pd.DataFrame | None = None) -> Dataset:
    """Turn raw (user_raw, item_raw, rating, timestamp) rows into a Dataset with contiguous ids.

    ``items`` is indexed by raw item id. Items without interactions are dropped, and interactions
    whose item has no metadata are rejected (a sign of mismatched files).
    """
    missing = ~raw["item_raw"].isin(items.index)
    if missing.any():
        bad = raw.loc[missing, "item_raw"].iloc[0]
        raise DataError(f"{name}: interaction with item {bad!r} that has no metadata "
                        f"({int(missing.sum())} such rows); the data files do not belong together.")
    user_ids = pd.Index(pd.unique(raw["user_raw"]))
    if users is None:
        users = pd.DataFrame(index=user_ids)
    item_ids = pd.Index(pd.unique(raw["item_raw"]))
    # stable, human-friendly order: by raw id where it is numeric (MovieLens), else first appearance
    if pd.api.types.is_numeric_dtype(user_ids):
        user_ids = user_ids.sort_values()
    if pd.api.types.is_numeric_dtype(item_ids):
        item_ids = item_ids.sort_values()
    inter = pd.DataFrame({
        "user": user_ids.get_indexer(raw["user_raw"]).astype(np.int64),
        "item": item_ids.get_indexer(raw["item_raw"]).astype(np.int64),
        "rating": raw["rating"].to_numpy(np.float32),
        "timestamp": raw["timestamp"].to_numpy(np.int64),
    }).sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    items = items.loc[item_ids].rename_axis("raw_id").reset_index()
    users = users.loc[user_ids].rename_axis("raw_id").reset_index()
    return Dataset(name=name, interactions=inter, items=items, users=users)
