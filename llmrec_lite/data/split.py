"""Split protocols, head/tail groups, sequences and the CTR view — shared by every model.

(a) ``random_split``: per user, shuffle and cut 80/10/10 (RecBole's RS + group_by user), for MF,
    LightGCN and AlphaRec. (b) ``leave_one_out``: per user, by time, last item = test, the one
    before = valid, for SASRec and the sequential papers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .dataset import DataError, Dataset

STAGES = ("valid", "test")


def tie_broken_order(key: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices sorting ``key`` ascending, equal keys in a fixed random order (not by index)."""
    return np.lexsort((np.random.default_rng(seed).permutation(len(key)), key))


@dataclass
class Split:
    dataset: Dataset
    protocol: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    seed: int | None = None
    head_item_share: float = 0.2  # top 20% items by train interactions = head
    tail_user_share: float = 0.8  # shortest 80% of users by train history = tail
    info: dict = field(default_factory=dict)
    cold_items: np.ndarray | None = None  # bool[n_items]: held out of train/valid (see hold_out_items)

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def part(self, name: str) -> pd.DataFrame:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown part {name!r}; valid: train, valid, test")
        return getattr(self, name)

    def matrix(self, name: str) -> sp.csr_matrix:
        """Binary user x item matrix of one part."""
        df = self.part(name)
        m = sp.csr_matrix((np.ones(len(df), np.float32), (df["user"], df["item"])),
                          shape=(self.n_users, self.n_items))
        m.data[:] = 1.0  # duplicates (repeat purchases) count once
        return m

    def seen(self, stage: str) -> sp.csr_matrix:
        """Items masked when ranking for ``stage``: train (valid stage) or train + valid (test stage)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid: {STAGES}")
        m = self.matrix("train")
        if stage == "test":
            m = m + self.matrix("valid")
            m.data[:] = 1.0
        return m

    @cached_property
    def item_popularity(self) -> np.ndarray:
        return np.bincount(self.train["item"], minlength=self.n_items)

    @cached_property
    def user_history_length(self) -> np.ndarray:
        return np.bincount(self.train["user"], minlength=self.n_users)

    @cached_property
    def head_items(self) -> np.ndarray:
        """bool[n_items]: the top ``head_item_share`` of items by train interactions (ties in a fixed random
        order, as the evaluator's: MovieLens ids follow popularity, an id order would bias the cut)."""
        order = tie_broken_order(-self.item_popularity)
        head = np.zeros(self.n_items, bool)
        head[order[: int(round(self.head_item_share * self.n_items))]] = True
        return head

    @cached_property
    def tail_users(self) -> np.ndarray:
        """bool[n_users]: the ``tail_user_share`` of users with the shortest train histories (ties in a
        fixed random order)."""
        order = tie_broken_order(self.user_history_length)
        tail = np.zeros(self.n_users, bool)
        tail[order[: int(round(self.tail_user_share * self.n_users))]] = True
        return tail

    @cached_property
    def negative_pool(self) -> np.ndarray:
        """Item ids a trainer may sample as negatives: all items, except held-out cold items (a model
        must not learn anything about an item that, in deployment, arrives after training)."""
        return np.arange(self.n_items) if self.cold_items is None else np.flatnonzero(~self.cold_items)

    def item_groups(self) -> dict[str, np.ndarray]:
        """bool masks of the item groups the evaluator reports: head/tail (+ cold/warm if held out)."""
        groups = {"head_items": self.head_items, "tail_items": ~self.head_items}
        if self.cold_items is not None:
            groups |= {"cold_items": self.cold_items, "warm_items": ~self.cold_items}
        return groups

    def histories(self, name: str = "train") -> list[np.ndarray]:
        """Per user, the items of a part in time order."""
        df = self.part(name).sort_values(["user", "timestamp"], kind="stable")
        bounds = np.searchsorted(df["user"].to_numpy(), np.arange(self.n_users + 1))
        items = df["item"].to_numpy()
        return [items[bounds[u]:bounds[u + 1]] for u in range(self.n_users)]

    def sequences(self, stage: str, max_len: int) -> np.ndarray:
        """int64[n_users, max_len]: each user's history before the ``stage`` target, as item id + 1,
        left-padded with 0 and truncated to the most recent ``max_len`` items.

        stage "train": the train history itself (a model predicts each next position);
        "valid": train history; "test": train + valid history.
        """
        if stage not in ("train",) + STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid: train, valid, test")
        hist = self.histories("train")
        if stage == "test":
            extra = self.histories("valid")
            hist = [np.concatenate([h, e]) for h, e in zip(hist, extra)]
        out = np.zeros((self.n_users, max_len), np.int64)
        for u, h in enumerate(hist):
            h = h[-max_len:]
            if len(h):
                out[u, max_len - len(h):] = h + 1
        return out

    def summary(self) -> str:
        return (f"{self.dataset.name} / {self.protocol}: train {len(self.train)}, valid {len(self.valid)}, "
                f"test {len(self.test)} interactions; {int(self.head_items.sum())} head items, "
                f"{int(self.tail_users.sum())} tail users")


def _parts(df: pd.DataFrame, label: np.ndarray) -> tuple[pd.DataFrame, ...]:
    return tuple(df[label == k].reset_index(drop=True) for k in range(3))


def random_split(ds: Dataset, ratios=(0.8, 0.1, 0.1), seed: int = 2020) -> Split:
    """Per user: shuffle, then floor(ratio*n) valid and test items (at least 1 each when n >= 3)."""
    if abs(sum(ratios) - 1) > 1e-9:
        raise ValueError(f"ratios must sum to 1, got {ratios}")
    rng = np.random.default_rng(seed)
    df = ds.interactions
    n = df.groupby("user")["item"].transform("size").to_numpy()
    # rank of each interaction within its user after a random shuffle
    key = rng.random(len(df))
    rank = pd.Series(key).groupby(df["user"].to_numpy()).rank(method="first").to_numpy().astype(int) - 1
    n_valid = np.floor(ratios[1] * n).astype(int)
    n_test = np.floor(ratios[2] * n).astype(int)
    small = n >= 3
    n_valid = np.where(small, np.maximum(n_valid, 1 if ratios[1] > 0 else 0), 0)
    n_test = np.where(small, np.maximum(n_test, 1 if ratios[2] > 0 else 0), 0)
    n_train = n - n_valid - n_test
    label = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    train, valid, test = _parts(df, label)
    return Split(ds, "random", train, valid, test, seed=seed, info={"ratios": list(ratios)})


def leave_one_out(ds: Dataset) -> Split:
    """Per user, in time order: last interaction = test, second last = valid, the rest = train.
    Users with fewer than 3 interactions keep everything in train."""
    df = ds.interactions.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    n = df.groupby("user")["item"].transform("size").to_numpy()
    pos_from_end = n - 1 - df.groupby("user").cumcount().to_numpy()
    label = np.where(n < 3, 0, np.select([pos_from_end == 0, pos_from_end == 1], [2, 1], 0))
    train, valid, test = _parts(df, label)
    return Split(ds, "loo", train, valid, test)


def hold_out_items(split: Split, fraction: float = 0.2, seed: int = 0) -> Split:
    """Cold-start variant of ``split``: a random ``fraction`` of the items loses all its train and
    valid interactions (the model never sees them), while test keeps every target. Evaluating then
    reports ``cold_items`` / ``warm_items`` groups: can a model recommend items it never saw?"""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    cold = np.zeros(split.n_items, bool)
    cold[rng.choice(split.n_items, size=int(round(fraction * split.n_items)), replace=False)] = True
    def keep(df):
        return df[~cold[df["item"].to_numpy()]].reset_index(drop=True)
    return Split(split.dataset, split.protocol, keep(split.train), keep(split.valid), split.test,
                 seed=split.seed, head_item_share=split.head_item_share, tail_user_share=split.tail_user_share,
                 info=split.info | {"cold_fraction": fraction, "cold_seed": seed}, cold_items=cold)


SPLITS = {"random": random_split, "loo": leave_one_out}


def make_split(ds: Dataset, protocol: str, seed: int = 2020) -> Split:
    """``random`` | ``loo`` | ``ctr`` (the click-through view, ``ctr_view``)."""
    if protocol == "ctr":
        return ctr_view(ds)
    if protocol not in SPLITS:
        raise ValueError(f"unknown split {protocol!r}; valid: {sorted(SPLITS) + ['ctr']}")
    return random_split(ds, seed=seed) if protocol == "random" else leave_one_out(ds)


@dataclass
class CTRSplit(Split):
    """Click-through view (``ctr_view``): one row per rating, label = rating >= ``threshold``, with the
    user's behaviours strictly before it. ``train`` / ``valid`` / ``test`` frames have columns user, item,
    label, history (item ids, oldest first) and history_label (their labels). Head/tail items and users are
    defined on the train rows as in ``Split`` (tail users = the 80% with the shortest train histories)."""
    threshold: float = 4
    max_history: int = 20

    def arrays(self, part: str) -> dict[str, np.ndarray]:
        """The part as arrays: user, item, label [n]; hist [n, max_history] (item ids + 1, left-padded with
        0, most recent last) and hist_label [n, max_history] (1 liked, 0 not, -1 padding)."""
        cache = self.__dict__.setdefault("_arrays", {})
        if part not in cache:
            cache[part] = ctr_arrays(self.part(part), self.max_history)
        return cache[part]

    def subsample(self, train: int | None = None, valid: int | None = None, test: int | None = None,
                  seed: int = 0) -> "CTRSplit":
        """A copy that keeps a fixed random subset of each part's rows (None: all of them), for models whose
        steps cost seconds (an LM over every behaviour): every model given the copy trains and is tested on the
        same rows. Head/tail items and users stay those of the full train part. Each part is drawn from its own
        seeded stream: more train rows with the same seed keep the same valid and test rows."""
        parts = {}
        for k, (name, n) in enumerate((("train", train), ("valid", valid), ("test", test))):
            rng = np.random.default_rng([seed, k])
            df = self.part(name)
            if n is not None and not 1 <= n:
                raise ValueError(f"subsample: {name}={n}; give a positive number of rows or None (all)")
            keep = np.sort(rng.choice(len(df), n, replace=False)) if n is not None and n < len(df) else np.arange(len(df))
            parts[name] = df.iloc[keep].reset_index(drop=True)
        out = CTRSplit(self.dataset, self.protocol, parts["train"], parts["valid"], parts["test"], seed=self.seed,
                       head_item_share=self.head_item_share, tail_user_share=self.tail_user_share,
                       info=self.info | {"subsample": {"train": train, "valid": valid, "test": test, "seed": seed}},
                       cold_items=self.cold_items, threshold=self.threshold, max_history=self.max_history)
        for name in ("item_popularity", "user_history_length", "head_items", "tail_users"):
            out.__dict__[name] = getattr(self, name)  # the groups of the full data
        return out


def ctr_arrays(df: pd.DataFrame, max_history: int) -> dict[str, np.ndarray]:
    """CTR rows (user, item, label, history, history_label) as arrays: user, item, label [n]; hist [n, max_history]
    (item ids + 1, left-padded with 0, the most recent ``max_history`` last) and hist_label (1 liked, 0 not, -1
    padding). Shared by ``CTRSplit.arrays`` and LLM-CF's pool rows."""
    n, h = len(df), max_history
    hist = np.zeros((n, h), np.int64)
    hlab = np.full((n, h), -1, np.int64)
    for r, (items, labs) in enumerate(zip(df["history"], df["history_label"])):
        items, labs = list(items)[-h:], list(labs)[-h:]
        if items:
            hist[r, h - len(items):] = np.asarray(items) + 1
            hlab[r, h - len(items):] = labs
    return {"user": df["user"].to_numpy(np.int64), "item": df["item"].to_numpy(np.int64),
            "label": df["label"].to_numpy(np.float32), "hist": hist, "hist_label": hlab}


def ctr_view(ds: Dataset, threshold: float = 4, max_history: int = 20, ratios=(0.8, 0.1, 0.1)) -> CTRSplit:
    """Each rating becomes (user, item, label = rating >= threshold, history): the user's last
    ``max_history`` items rated strictly earlier (timestamp < this one's; same-second ratings are not each
    other's history), any rating, with their labels. Split per user by time 80/10/10, so every valid / test
    row lies at or after the user's train rows."""
    if ds.interactions["rating"].nunique() < 2:
        raise DataError(f"{ds.name} has a single rating value: a CTR view needs explicit ratings "
                        f"(e.g. MovieLens; without --min-rating)")
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    df = ds.interactions.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    items = df["item"].to_numpy()
    label = (df["rating"] >= threshold).to_numpy().astype(np.int64)
    idx = np.arange(len(df))
    start = df.groupby("user").cumcount().to_numpy()
    end = idx - df.groupby(["user", "timestamp"]).cumcount().to_numpy()  # first row of this user's second
    lo = np.maximum(idx - start, end - max_history)
    history = [items[a:b].tolist() for a, b in zip(lo, end)]
    history_label = [label[a:b].tolist() for a, b in zip(lo, end)]
    n = df.groupby("user")["item"].transform("size").to_numpy()
    frac = start / n
    part = np.where(frac < ratios[0], 0, np.where(frac < ratios[0] + ratios[1], 1, 2))
    out = pd.DataFrame({"user": df["user"], "item": df["item"], "label": label.astype(np.float32),
                        "history": history, "history_label": history_label})
    train, valid, test = _parts(out, part)
    return CTRSplit(ds, "ctr", train, valid, test, threshold=threshold, max_history=max_history,
                    info={"ratios": list(ratios), "threshold": threshold, "max_history": max_history})
