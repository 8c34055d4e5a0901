"""Notebook 07 (the six papers side by side): the leaderboard as a chart, the embedding atlas (a model's item space
beside the same items' language-model space, with an item's neighbours in both) and cost growth with data size."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..plots import plot_embedding_map, umap_2d
from ..retrieval import cosine_knn
from .common import explorer, neighbour_agreement, neighbour_overlap

PAPER_COLOURS = {"AlphaRec": "tab:blue", "LLM-ESR": "tab:orange", "PAD": "tab:green", "Molar": "tab:purple",
                 "BAHE": "tab:brown", "LLM-CF": "tab:pink", "baseline": "tab:gray"}


def plot_leaderboard(board: pd.DataFrame, dataset: str, split: str, metric: str = "ndcg@10", ax=None):
    """Horizontal bars of ``metric`` (mean over seeds, ± std where there are several) for one dataset and split,
    best on top, coloured by paper (baselines grey); † = measured before the issue-10 fixes (hatched)."""
    part = board[(board["dataset"] == dataset) & (board["split"] == split)].dropna(subset=[metric])
    if part.empty:
        raise ValueError(f"no stored runs with {metric} on {dataset} / {split}; have: "
                         f"{sorted(set(zip(board['dataset'], board['split'])))}")
    part = part.sort_values(metric, ascending=metric == "logloss")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, max(2.2, 0.6 + 0.32 * len(part))))
    y = np.arange(len(part))[::-1]
    colours = [PAPER_COLOURS.get(p.split(" (")[0].replace("PAD's baseline", "baseline"), "tab:gray") for p in part["paper"]]
    std = part[f"{metric} std"].fillna(0).to_numpy()
    bars = ax.barh(y, part[metric], xerr=std, color=colours, alpha=0.85, error_kw={"lw": 1})
    for bar, stale in zip(bars, part["stale"]):
        if stale:
            bar.set_hatch("//")
    ax.set_yticks(y, [f"{m}{' †' if s else ''} ({n} seed{'s' if n > 1 else ''})"
                      for m, s, n in zip(part["model"], part["stale"], part["seeds"])], fontsize=8)
    ax.set(xlabel=f"{metric} (test; mean ± std over seeds)", title=f"{dataset} · {split}")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=p) for p, c in PAPER_COLOURS.items() if c in colours],
              fontsize=7, frameon=False, loc="lower right")
    ax.figure.tight_layout()
    return ax.figure


def leaderboard_widget(board: pd.DataFrame):
    """ipywidgets front-end of ``plot_leaderboard``: pick the dataset · split and the metric."""
    import ipywidgets as w

    views = sorted(set(zip(board["dataset"], board["split"])))
    metrics = ["ndcg@10", "recall@20", "head-item N@10", "tail-item N@10", "tail-user N@10", "auc", "logloss",
               "tail-item AUC", "tail-user AUC"]
    return explorer(lambda view, metric: plot_leaderboard(board, *view, metric),
                    view=w.Dropdown(options=[(f"{d} · {s}", (d, s)) for d, s in views],
                                    value=next((v for v in views if v[1] != "ctr"), views[0]),
                                    description="data · split"),
                    metric=w.Dropdown(options=metrics, value="ndcg@10"))


def item_space(model) -> np.ndarray:
    """A trained model's item vectors as it scores them (``scoring_embeddings`` of the embedding models, MF's
    item table), float32 [n_items, d]."""
    import torch

    model.eval()
    with torch.no_grad():
        if hasattr(model, "scoring_embeddings"):
            items = model.scoring_embeddings()[1]
        elif hasattr(model, "item_emb"):
            items = model.item_emb.weight
        else:
            raise ValueError(f"{type(model).__name__} has no item table to map (scoring_embeddings or item_emb)")
    return items.detach().float().cpu().numpy()


def atlas_maps(spaces: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """2-d UMAP (cosine) of each item space, fitted once per space: {name: [n_items, 2]}."""
    n = {len(x) for x in spaces.values()}
    if len(n) != 1:
        raise ValueError(f"every space needs the same items (rows), got sizes {sorted(n)}")
    return {name: umap_2d(np.asarray(x, dtype=np.float32), seed=seed) for name, x in spaces.items()}


def space_summary(spaces: dict[str, np.ndarray], labels: dict[str, np.ndarray], reference: str, k: int = 10) -> pd.DataFrame:
    """Per space: how much its k nearest neighbours share each label (genre, popularity bin, ...), and how many of
    them it shares with the ``reference`` space (the language model's)."""
    rows = []
    for name, x in spaces.items():
        row = {"space": name} | {f"neighbours with the same {lab}": neighbour_agreement(x, v, k) for lab, v in labels.items()}
        row[f"neighbours shared with {reference}"] = neighbour_overlap(x, spaces[reference], k) if name != reference else 1.0
        rows.append(row)
    return pd.DataFrame(rows).set_index("space").round(3)


def draw_atlas(spaces: dict[str, np.ndarray], maps: dict[str, np.ndarray], labels: dict[str, np.ndarray], titles,
               space: str, reference: str, colour_by: str, item: int, k: int = 5):
    """``space``'s item map beside ``reference``'s (the LM's), coloured by ``labels[colour_by]``, with ``item`` and its
    k nearest neighbours (cosine, in each full space) marked. Returns (figure, table of the neighbours)."""
    if space not in spaces or reference not in spaces:
        raise ValueError(f"unknown space; have {list(spaces)}")
    if not 0 <= item < len(titles):
        raise ValueError(f"item {item} out of range 0..{len(titles) - 1}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    table = {}
    for ax, name in zip(axes, (space, reference)):
        xy = maps[name]
        plot_embedding_map(xy, labels[colour_by], title=name, ax=ax)
        nn = cosine_knn(spaces[name], k, queries=[item])[0]
        ax.scatter(xy[nn, 0], xy[nn, 1], s=60, facecolors="none", edgecolors="black", lw=1.2)
        ax.scatter(xy[item, 0], xy[item, 1], s=160, marker="*", c="red", edgecolors="black", zorder=5)
        table[f"nearest in {name}"] = [titles[i] for i in nn]
    fig.suptitle(f"{titles[item]}: it (red star) and its {k} nearest neighbours (circles) in each space; "
                 f"colour = {colour_by}", fontsize=10)
    fig.tight_layout()
    return fig, pd.DataFrame(table, index=pd.RangeIndex(1, k + 1, name="rank"))


def atlas_widget(spaces, maps, labels, titles, reference: str, items=None):
    """ipywidgets front-end of ``draw_atlas``: pick the model's space, the colouring and an item (by title)."""
    import ipywidgets as w
    from IPython.display import display

    items = list(range(min(len(titles), 200)) if items is None else items)
    others = [s for s in spaces if s != reference]

    def draw(space, colour_by, item):
        fig, table = draw_atlas(spaces, maps, labels, titles, space, reference, colour_by, item)
        display(fig)
        plt.close(fig)
        return table

    return explorer(draw, space=w.Dropdown(options=others, value=others[0], description="model space"),
                    colour_by=w.Dropdown(options=list(labels), value=list(labels)[0], description="colour by"),
                    item=w.Dropdown(options=[(titles[i][:60], i) for i in items], value=items[0]))


def cost_fits(rows: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per model with two or more dataset sizes, the least-squares line of log s/epoch on log interactions:
    {model: (slope, intercept)}; a slope of 1 is linear growth. Rows with 0 s/epoch are left out."""
    rows = rows[rows["s/epoch"] > 0]
    return {model: tuple(float(v) for v in np.polyfit(np.log(part["interactions"]), np.log(part["s/epoch"]), 1))
            for model, part in rows.groupby("model") if part["interactions"].nunique() > 1}


def plot_cost_growth(rows: pd.DataFrame, reference: dict | None = None, ax=None):
    """Seconds per training epoch against train interactions, log-log: one colour per model, one marker per dataset,
    and per model the least-squares line through its points (its slope in the legend). The datasets differ in more
    than size, so points are not joined. ``rows``: columns model, dataset, interactions, s/epoch. ``reference``:
    {label: (interactions, s/epoch)} points drawn as crosses (e.g. RecBole's SASRec measured here)."""
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.6))
    rows = rows[rows["s/epoch"] > 0]
    fits = cost_fits(rows)
    markers = dict(zip(sorted(rows["dataset"].unique()), "osD^vP"))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    for k, (model, part) in enumerate(rows.sort_values("interactions").groupby("model", sort=True)):
        c = colours[k % len(colours)]
        for ds, p in part.groupby("dataset"):
            ax.scatter(p["interactions"], p["s/epoch"], marker=markers[ds], color=c, s=36, zorder=3)
        label = model
        if model in fits:
            slope, icpt = fits[model]
            x = np.array([part["interactions"].min(), part["interactions"].max()])
            ax.plot(x, np.exp(icpt) * x ** slope, color=c, ls="--", lw=1)
            label = f"{model} (slope {slope:.2f})"
        handles.append(Line2D([], [], color=c, ls="--", marker="o", label=label))
    handles += [Line2D([], [], color="grey", ls="", marker=m, label=ds) for ds, m in markers.items()]
    for name, (n, s) in (reference or {}).items():
        ax.scatter([n], [s], marker="x", s=60, c="black", zorder=5)
        ax.annotate(name, (n, s), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set(xscale="log", yscale="log", xlabel="interactions in the dataset", ylabel="seconds per training epoch",
           title="Cost growth on 2 CPU threads: one epoch = one pass over the train data")
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.figure.tight_layout()
    return ax.figure
