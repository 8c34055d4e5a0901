"""Figures the notebooks share. Each function draws on a fresh (or given) matplotlib figure and
returns it, so it can be called directly, tested, and wrapped in an ipywidgets explorer."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data.split import Split
from .metrics import GROUPS


def plot_long_tail(split: Split, title: str | None = None):
    """Item popularity (sorted, log scale, head share marked) and user history lengths."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    pop = np.sort(split.item_popularity)[::-1]
    n_head = int(split.head_items.sum())
    a.plot(np.arange(1, len(pop) + 1), np.maximum(pop, 0.8), lw=1.5)
    a.axvline(n_head, color="tab:red", ls="--", label=f"head: top {n_head} items "
              f"({pop[:n_head].sum() / max(pop.sum(), 1):.0%} of interactions)")
    a.set(yscale="log", xlabel="item rank by popularity", ylabel="train interactions", title="items")
    a.legend(frameon=False)
    length = split.user_history_length
    cut = length[split.tail_users].max()
    b.hist(length, bins=50, color="tab:gray")
    b.axvline(cut, color="tab:red", ls="--", label=f"tail users: history <= {cut}")
    b.set(xlabel="train history length", ylabel="users", title="users")
    b.legend(frameon=False)
    fig.suptitle(title or f"The long tail of {split.dataset.name}")
    fig.tight_layout()
    return fig


def umap_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15, metric: str = "cosine") -> np.ndarray:
    import umap

    return umap.UMAP(n_neighbors=n_neighbors, metric=metric, random_state=seed, n_jobs=1).fit_transform(x)


def plot_embedding_map(xy: np.ndarray, labels, title: str = "", ax=None, top: int = 8):
    """Scatter of 2-d points coloured by a categorical label (the ``top`` most frequent; rest grey)."""
    labels = pd.Series(list(labels)).astype(str)
    keep = labels.value_counts().index[:top]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 5.5))
    fig = ax.figure
    other = ~labels.isin(keep).to_numpy()
    ax.scatter(xy[other, 0], xy[other, 1], s=6, c="lightgray", label="other")
    for lab in keep:
        m = (labels == lab).to_numpy()
        ax.scatter(xy[m, 0], xy[m, 1], s=8, label=lab)
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(markerscale=2, fontsize=8, frameon=False, loc="best")
    return fig


def metrics_frame(records: list[dict], metric: str = "ndcg@20") -> pd.DataFrame:
    """model x (all + groups) table of one metric from result records (as the CLI writes)."""
    rows = {r.get("label", r["model"]): {"all": r["metrics"][metric]}
            | {g: v[metric] for g, v in r["metrics"]["by_group"].items()} for r in records}
    return pd.DataFrame(rows).T


def plot_group_bars(records: list[dict], metric: str = "ndcg@20", groups=("all",) + GROUPS):
    """Grouped bars: one cluster per user/item group, one bar per model."""
    df = metrics_frame(records, metric)[list(groups)]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(df)
    x = np.arange(len(groups))
    for k, (model, row) in enumerate(df.iterrows()):
        ax.bar(x + k * width - 0.4 + width / 2, row.to_numpy(), width, label=model)
    ax.set_xticks(x, [g.replace("_", " ") for g in groups])
    ax.set(ylabel=metric, title=f"{metric} by group (test)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_curves(histories: dict[str, list[dict]], key: str):
    """Validation curves: one line per model from TrainResult.history."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, hist in histories.items():
        pts = [(h["epoch"], h[key]) for h in hist if key in h]
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.set(xlabel="epoch", ylabel=key.replace("valid_", "validation "), title="convergence")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig
