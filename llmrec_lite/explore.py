"""Explorers for the notebooks: plain functions that train something small and draw a figure (callable
in CI and in tests), plus thin ipywidgets wrappers for interactive use."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .data.split import Split
from .experiment import refit_stage, train_and_test
from .metrics import evaluate, paired_difference
from .text import item_embeddings, unit_rows

PROBES = {"linear": ("alpharec-linear", {}), "mlp": ("alpharec", {"n_layers": 0})}


def probe_label(encoder: str, pooling: str = "mean", layer: int = -1, probe: str = "linear",
                center: bool = True) -> str:
    if encoder.startswith("random"):
        return f"{encoder} ({probe})"
    name = encoder if encoder == "minilm" else f"{encoder} {pooling}@{'last' if layer == -1 else layer}"
    return f"{name}{'' if center else ' raw'} ({probe})"


def probe(split: Split, encoder: str = "minilm", pooling: str = "mean", layer: int = -1, probe: str = "linear",
          center: bool = True, seed: int = 2020, progress: bool = False, **overrides) -> dict:
    """Train a probe on frozen LM item vectors and return its test record (label in ``record["label"]``).

    probe "linear": AlphaRec's linear mapping (one bias-free W); "mlp": AlphaRec's MLP without graph
    convolution. Same loss (cosine InfoNCE), same split and evaluator as every other model.
    center: subtract the catalogue's mean LM vector first (see ``text.item_embeddings``).
    """
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; valid: {sorted(PROBES)}")
    kw = {} if encoder.startswith("random") or encoder == "minilm" else {"pooling": pooling, "layer": layer}
    z = item_embeddings(split.dataset.item_texts, encoder, seed=seed, center=center, **kw)
    name, extra = PROBES[probe]
    _, result, rec = train_and_test(name, split, seed=seed, progress=progress, item_z=z, encoder=encoder,
                                    center=False, **(extra | overrides))  # z is centred above if asked
    rec["label"] = probe_label(encoder, pooling, layer, probe, center)
    rec["history"] = result.history
    return rec


def plot_probe_bars(records: list[dict], metric: str = "recall@20", references: dict[str, float] | None = None,
                    ax=None, title: str | None = None):
    """Horizontal bars of ``metric`` per probe record; ``references`` (e.g. MF, random control) as
    dashed vertical lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.45 * len(records) + 1.4))
    labels = [r.get("label", r["model"]) for r in records]
    vals = [r["metrics"][metric] for r in records]
    colors = ["tab:gray" if lab.startswith("random") else "tab:blue" for lab in labels]
    ax.barh(np.arange(len(vals)), vals, color=colors)
    ax.set_yticks(np.arange(len(vals)), labels)
    ax.invert_yaxis()
    for x, y in zip(vals, range(len(vals))):
        ax.text(x, y, f" {x:.4f}", va="center", fontsize=8)
    for k, (name, v) in enumerate((references or {}).items()):
        ax.axvline(v, ls="--", color=f"C{k + 1}", label=f"{name} {v:.4f}")
    if references:
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set(xlabel=f"test {metric}", title=title or "linear-mapping probes: is preference in the language space?")
    ax.figure.tight_layout()
    return ax.figure


def draw_probe(split: Split, encoder: str = "minilm", layer: int = -1, pooling: str = "mean", probe_kind: str = "linear",
               epochs: int = 30, references: dict[str, float] | None = None, metric: str = "recall@20",
               controls: list[dict] | None = None):
    """Train one probe briefly and draw it beside ``controls`` (earlier probe records, e.g. the random
    control) and ``references`` (e.g. MF's value)."""
    rec = probe(split, encoder, pooling, layer, probe_kind, epochs=epochs)
    return plot_probe_bars(list(controls or []) + [rec], metric, references,
                           title=f"{rec['label']}: {epochs} epochs (best {rec['best_epoch']})")


def probe_widget(split: Split, references: dict[str, float] | None = None, controls: list[dict] | None = None,
                 encoders=("minilm", "smollm2", "random")):
    """ipywidgets front-end of ``draw_probe``: pick encoder, layer, pooling, probe, epochs, then Run."""
    import ipywidgets as w

    return w.interact_manual(
        lambda encoder, layer, pooling, probe_kind, epochs: draw_probe(
            split, encoder, layer, pooling, probe_kind, epochs, references, controls=controls),
        encoder=w.Dropdown(options=list(encoders), value=encoders[0]),
        layer=w.Dropdown(options=[("last", -1), ("middle (15)", 15), ("early (5)", 5)], value=-1),
        pooling=w.Dropdown(options=["mean", "last"], value="mean"),
        probe_kind=w.Dropdown(options=list(PROBES), value="linear", description="probe"),
        epochs=w.IntSlider(value=30, min=5, max=200, step=5))


# ------------------------------------------------------------------------------------ embeddings
def neighbour_agreement(x: np.ndarray, labels, k: int = 10) -> float:
    """Share of each row's k cosine-nearest neighbours (itself excluded) with the same label, averaged:
    how much a space groups items by ``labels`` (genre, popularity bin, ...)."""
    labels = np.asarray(labels)
    nn_idx = knn(x, k)
    return float((labels[nn_idx] == labels[:, None]).mean())


def knn(x: np.ndarray, k: int = 10) -> np.ndarray:
    """[n, k] indices of each row's k cosine-nearest other rows (unordered)."""
    e = unit_rows(np.asarray(x, dtype=np.float32))
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return np.argpartition(-sim, k, axis=1)[:, :k]


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


# ------------------------------------------------------------------------------------ intention
def _top_k(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    scores = np.where(seen, -np.inf, scores)
    return np.argsort(-scores, kind="stable")[:k]


def intention_top_k(model, split: Split, user: int, z_intention: np.ndarray, alpha: float = 0.3,
                    k: int = 10, stage: str = "test"):
    """Top-k titles for ``user`` without and with a text intention mixed in (``model.intention_scores``);
    seen items are masked as in evaluation."""
    import pandas as pd

    seen = split.seen(stage)[user].toarray().ravel() > 0
    items = split.dataset.items
    out = {}
    for name, a in (("before", 0.0), (f"with intention (alpha={alpha})", alpha)):
        s = model.intention_scores([user], z_intention, a)[0].cpu().numpy()
        top = _top_k(s, seen, k)
        out[name] = [f"{items.title[i]} [{', '.join(items.genres[i][:2])}]" for i in top]
    return pd.DataFrame(out, index=pd.RangeIndex(1, k + 1, name="rank"))


def intention_sweep(model, split: Split, z_intention: np.ndarray, genres, alphas=(0, 0.1, 0.2, 0.3, 0.5),
                    k: int = 10, stage: str = "test") -> dict[float, float]:
    """For each alpha, the share of all users' top-k (seen masked) carrying one of ``genres``."""
    wanted = np.array([bool(set(g) & set(genres)) for g in split.dataset.items.genres])
    seen = split.seen(stage).toarray() > 0
    users = np.arange(split.n_users)
    out = {}
    for a in alphas:
        s = model.intention_scores(users, z_intention, a).cpu().numpy()
        s[seen] = -np.inf
        top = np.argpartition(-s, k, axis=1)[:, :k]
        out[float(a)] = float(wanted[top].mean())
    return out


def plot_intention_sweep(sweeps: dict[str, dict[float, float]], ylabel: str = "share of top-10"):
    """One line per intention text: share of recommended items matching it vs alpha."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, sw in sweeps.items():
        ax.plot(list(sw), list(sw.values()), marker="o", label=name)
    ax.set(xlabel="alpha (weight of the intention)", ylabel=ylabel, title="user intention steers the ranking")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def intention_widget(model, split: Split, encode, users=None):
    """ipywidgets front-end of ``intention_top_k``: type an intention, pick a user and alpha.
    ``encode(text) -> LM vector`` must use the model's encoder (and centering)."""
    import ipywidgets as w

    users = list(users if users is not None else range(min(split.n_users, 50)))
    return w.interact_manual(
        lambda intention, user, alpha: intention_top_k(model, split, user, encode(intention), alpha),
        intention=w.Text(value="a funny animated movie for kids"),
        user=w.Dropdown(options=users, value=users[0]),
        alpha=w.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05))


# ------------------------------------------------------------------------------------ long-tail gains
def plot_gains(records: dict[str, dict], baseline: str, metric: str = "ndcg@10",
               groups=("all", "tail_users", "head_users", "tail_items", "head_items"), ax=None):
    """Relative gain (%) of each record over ``baseline`` on ``metric``, per user/item group.
    ``records``: {label: record as written by train_and_test}."""
    def value(r, g):
        return r["metrics"][metric] if g == "all" else r["metrics"]["by_group"][g][metric]

    base = records[baseline]
    others = [k for k in records if k != baseline]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(len(others), 1)
    x = np.arange(len(groups))
    for k, name in enumerate(others):
        gains = [100 * (value(records[name], g) / value(base, g) - 1) if value(base, g) > 0 else np.nan for g in groups]
        ax.bar(x + k * width - 0.4 + width / 2, gains, width, label=name)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [g.replace("_", " ") for g in groups])
    ax.set(ylabel=f"{metric} gain over {baseline} (%)", title=f"where the gains land ({metric}, test)")
    ax.legend(frameon=False, fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def gain_widget(records: dict[str, dict], baseline: str):
    """ipywidgets front-end of ``plot_gains``: pick the metric and the variants to compare."""
    import ipywidgets as w

    names = [k for k in records if k != baseline]
    return w.interact(
        lambda metric, variants: plot_gains({baseline: records[baseline]} | {v: records[v] for v in variants},
                                            baseline, metric),
        metric=w.Dropdown(options=["ndcg@10", "hr@10", "ndcg@20", "hr@20"], value="ndcg@10"),
        variants=w.SelectMultiple(options=names, value=tuple(names[:2]), rows=min(len(names), 6)))


def difference_table(results: dict[str, dict], baseline: str, metric: str = "ndcg@10",
                     groups=("all", "tail_users", "head_users", "tail_items", "head_items"), seed: int = 0) -> pd.DataFrame:
    """Each variant minus ``baseline`` on ``metric`` per group, as "diff [95% interval]" (paired
    bootstrap over test users, ``metrics.paired_difference``). ``results``: {label: evaluate(...,
    per_user=True)}. An interval that excludes 0 is a difference the test set can see."""
    rows = {}
    for name, res in results.items():
        if name == baseline:
            continue
        cells = {}
        for g in groups:
            d = paired_difference(res, results[baseline], metric, None if g == "all" else g, seed=seed)
            cells[g.replace("_", " ")] = f"{d['diff']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        rows[name] = cells
    return pd.DataFrame(rows).T.rename_axis(f"{metric} − {baseline}")


# ------------------------------------------------------------------------------------ PAD
def plot_overlay(text: np.ndarray, ids: np.ndarray, ax=None, method: str = "umap", title: str = "", seed: int = 0):
    """Two item distributions (projected text vectors, ID vectors) in one 2-D map fitted on both."""
    from sklearn.decomposition import PCA

    from .plots import umap_2d

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


def realign(pretrained, split: Split, weight: float = 0.2, kernel: str = "multi", epochs: int = 5, bce: bool = True,
            seed: int = 2020):
    """PAD stage 2 on a copy of ``pretrained`` (a PAD after stage 1) for exactly ``epochs`` epochs (last
    weights kept, no early stopping) with MMD ``weight`` (official units, PAD's 0.2), ``kernel`` and the BCE term on
    or off."""
    m, _ = refit_stage(pretrained, "pad", split, "align", seed=seed, epochs=epochs, patience=epochs,
                       restore_best=False, mmd_weight=weight, kernel=kernel, bce_in_alignment=bce)
    return m


def draw_alignment(pretrained, split: Split, weight: float = 0.2, kernel: str = "multi", epochs: int = 5,
                   bce: bool = True, method: str = "pca", seed: int = 2020):
    """A short re-alignment (``realign``) with MMD ``weight`` and ``kernel``: before/after overlay of the two
    distributions, the MMD estimates and the aligned expert's validation NDCG@10 (validation, never test:
    this is for exploring settings)."""
    import copy

    start = copy.deepcopy(pretrained).set_stage("align")
    before, vec_before = start.alignment_stats(), [v.numpy() for v in start.alignment_vectors()]
    m = realign(pretrained, split, weight, kernel, epochs, bce, seed)
    after, vec_after = m.alignment_stats(), [v.numpy() for v in m.alignment_vectors()]
    ndcg = evaluate(m, split, "valid", groups=False)["ndcg@10"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    fmt = lambda s: f"MK-MMD {s['MK-MMD']:.3f} · 1-kernel {s['single-kernel MMD']:.3f} · linear {s['linear-kernel MMD']:.3f}"
    plot_overlay(*vec_before, ax=axes[0], method=method, title="before alignment\n" + fmt(before), seed=seed)
    plot_overlay(*vec_after, ax=axes[1], method=method, title=f"after {epochs} epochs\n" + fmt(after), seed=seed)
    fig.suptitle(f"weight {weight}, {kernel} kernel{'' if bce else ', no BCE'}: aligned expert valid NDCG@10 {ndcg:.4f}, "
                 f"ID drift {after['drift from pre-trained IDs']:.2f}", fontsize=10)
    fig.tight_layout()
    return fig


def alignment_widget(pretrained, split: Split):
    """ipywidgets front-end of ``draw_alignment``: alignment weight, kernel set, BCE on/off."""
    import ipywidgets as w

    return w.interact_manual(
        lambda weight, kernel, bce, epochs: draw_alignment(pretrained, split, weight, kernel, epochs, bce),
        weight=w.FloatLogSlider(value=0.2, base=10, min=-2, max=2, step=0.1),
        kernel=w.Dropdown(options=["multi", "single", "linear"], value="multi"),
        bce=w.Checkbox(value=True, description="BCE during alignment"),
        epochs=w.IntSlider(value=5, min=1, max=30))


def plot_gate_weights(model, ax=None):
    """PAD's gate: each expert's weight against the item-popularity bin (bins hold equal interaction mass)."""
    from .models.pad import EXPERTS

    with torch.no_grad():
        w = model.gate_weights().cpu().numpy()
    bins = model.bins.cpu().numpy()
    pop = np.bincount(bins, minlength=w.shape[1])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    for k, name in enumerate(EXPERTS):
        ax.plot(np.arange(w.shape[1]), w[k], marker="o", label=f"{name} expert")
    ax.set_xticks(np.arange(w.shape[1]), [f"{b}\n({n})" for b, n in enumerate(pop)], fontsize=7)
    ax.set(xlabel="popularity bin, rare → popular (items in bin)", ylabel="gate weight", ylim=(0, 1),
           title="which expert scores which items")
    ax.legend(frameon=False)
    ax.figure.tight_layout()
    return ax.figure
