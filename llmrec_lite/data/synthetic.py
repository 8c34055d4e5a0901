"""A tiny synthetic dataset with meaningful titles, for fast unit tests only."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import Dataset, build_dataset

_TOPICS = {
    "Sci-Fi": ["Space", "Robot", "Galaxy", "Alien", "Star"],
    "Romance": ["Love", "Heart", "Wedding", "Kiss", "Paris"],
    "Horror": ["Ghost", "Blood", "Night", "Zombie", "Curse"],
    "Comedy": ["Funny", "Party", "Crazy", "Laugh", "Buddy"],
}
_NOUNS = ["Story", "Adventure", "Return", "Legacy", "Chronicles", "Affair", "Game"]


def synthetic_dataset(n_users: int = 60, n_items: int = 40, per_user: tuple[int, int] = (6, 15),
                      seed: int = 0) -> Dataset:
    """Users each like one genre (80% of their items come from it); titles name the genre's words. Ratings
    follow the genre: 4-5 for items of the user's genre, 1-3 otherwise (so a CTR view has a learnable label)."""
    rng = np.random.default_rng(seed)
    genres = list(_TOPICS)
    item_genre = np.arange(n_items) % len(genres)
    titles = [f"{_TOPICS[genres[g]][i % 5]} {_NOUNS[(i // 5) % len(_NOUNS)]} {i}"
              for i, g in enumerate(item_genre)]
    items = pd.DataFrame({"title": titles, "year": pd.array(2000 + np.arange(n_items) % 20, dtype="Int64"),
                          "genres": [[genres[g]] for g in item_genre]},
                         index=pd.Index(np.arange(1, n_items + 1), name="raw_id"))
    from ..text.prompts import item_prompt
    items["text"] = [item_prompt(r.title, r.year, r.genres) for r in items.itertuples()]
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.7  # a long tail
    rows = []
    for u in range(n_users):
        fav = rng.integers(len(genres))
        w = pop * np.where(item_genre == fav, 4.0, 0.25)
        n = int(rng.integers(per_user[0], per_user[1] + 1))
        chosen = rng.choice(n_items, size=min(n, n_items), replace=False, p=w / w.sum())
        for t, i in enumerate(chosen):
            r = int(rng.integers(1, 6))
            rating = 4 + r % 2 if item_genre[i] == fav else 1 + r % 3
            rows.append((u + 1, i + 1, float(rating), 1_000_000 + 100 * t + u))
    raw = pd.DataFrame(rows, columns=["user_raw", "item_raw", "rating", "timestamp"])
    return build_dataset("synthetic", raw, items)
