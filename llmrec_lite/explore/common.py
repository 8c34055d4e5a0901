"""What every notebook's explorers share: the live widget (``explorer``), neighbourhoods in an embedding space
(one cosine kNN helper, ``retrieval.cosine_knn``), popularity bins, and the two-distribution overlay map."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..data.split import Split
from ..retrieval import cosine_knn


def explorer(draw, manual: bool = False, **controls):
    """Controls above one live output: every explorer's ipywidgets front-end.

    ``draw(**values)`` gets each control's value by name and returns a matplotlib figure, a tuple whose first
    element is one, a table (anything IPython displays), or None when it printed what it shows. Each draw
    replaces the previous one in the output, and a figure is closed once displayed, so the notebook keeps no
    stale copy of it below the widget; the returned ``VBox`` is the cell's only output (``interact`` also
    returned its function, which the notebook printed). ``manual=True`` adds a Run button and draws only when
    it is pressed (for explorers that train something); otherwise it draws now and on every change. A
    ``ValueError`` from ``draw`` (a combination of choices that has nothing to show) is printed as one line.
    The box carries ``.controls``, ``.output``, ``.draws`` (how many draws so far) and ``.result`` (the last)."""
    import ipywidgets as w
    from IPython.display import display
    from matplotlib.figure import Figure

    for name, c in controls.items():
        c.description = c.description or name.replace("_", " ")
    out = w.Output()
    button = w.Button(description="Run", button_style="primary") if manual else None
    box = w.VBox([*controls.values(), *([button] if button else []), out])
    box.controls, box.output, box.draws, box.result = controls, out, 0, None

    def render(*_):
        with out:
            out.clear_output(wait=True)
            try:
                result = draw(**{name: c.value for name, c in controls.items()})
            except ValueError as e:  # a choice that cannot be drawn: one line saying why, not a traceback
                plt.close("all")
                print(f"cannot draw this choice: {e}")
                result = e
            fig = result[0] if isinstance(result, tuple) and result else result
            if isinstance(fig, Figure):
                display(fig)
                plt.close(fig)
            elif result is not None and not isinstance(result, Exception):
                display(result)
        box.draws, box.result = box.draws + 1, result

    if manual:
        button.on_click(render)
    else:
        for c in controls.values():
            c.observe(render, names="value")
        render()
    return box


def neighbour_agreement(x: np.ndarray, labels, k: int = 10) -> float:
    """Share of each row's k cosine-nearest neighbours (itself excluded) with the same label, averaged:
    how much a space groups items by ``labels`` (genre, popularity bin, ...)."""
    labels = np.asarray(labels)
    nn_idx = knn(x, k)
    return float((labels[nn_idx] == labels[:, None]).mean())


def knn(x: np.ndarray, k: int = 10) -> np.ndarray:
    """[n, k] indices of each row's k cosine-nearest other rows, most similar first."""
    return cosine_knn(x, k)


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's k nearest neighbours that two spaces (same rows) agree on: 1 = the
    same semantic relations, k/n = unrelated. E.g. LM item vectors before vs after fine-tuning."""
    if len(a) != len(b):
        raise ValueError(f"both spaces need the same rows, got {len(a)} and {len(b)}")
    na, nb = knn(a, k), knn(b, k)
    return float(np.mean([len(np.intersect1d(r, s)) / k for r, s in zip(na, nb)]))


def popularity_bins(split: Split) -> np.ndarray:
    """Label per item by train popularity: 'head (top 20%)', 'torso', 'tail (bottom 50%)', 'unseen'."""
    pop = split.item_popularity
    rank = np.argsort(np.argsort(-pop, kind="stable"), kind="stable") / len(pop)
    lab = np.where(rank < 0.2, "head (top 20%)", np.where(rank < 0.5, "torso", "tail (bottom 50%)"))
    return np.where(pop == 0, "unseen", lab)


def plot_overlay(text: np.ndarray, ids: np.ndarray, ax=None, method: str = "umap", title: str = "", seed: int = 0):
    """Two item distributions (projected text vectors, ID vectors) in one 2-D map fitted on both."""
    from sklearn.decomposition import PCA

    from ..plots import umap_2d

    both = np.vstack([text, ids])
    xy = umap_2d(both, seed=seed, metric="euclidean") if method == "umap" else PCA(2, random_state=seed).fit_transform(both)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    n = len(text)
    ax.scatter(xy[n:, 0], xy[n:, 1], s=4, alpha=0.5, label="ID embeddings", c="tab:blue")
    ax.scatter(xy[:n, 0], xy[:n, 1], s=4, alpha=0.5, label="projected text embeddings", c="tab:orange")
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(frameon=False, fontsize=8, markerscale=3)
    return ax.figure
