"""Notebook 01 (AlphaRec): the linear-mapping probe over language models, layers and poolings, and the
user-intention explorer (a free-text intention mixed into a user's embedding)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..data.split import Split
from ..experiment import train_and_test
from ..metrics import evaluate
from ..text import item_embeddings
from .common import explorer

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
    ``record["test_per_user"]``: the test evaluation per user (``evaluate(..., per_user=True)``), for paired
    intervals between probes (``metrics.difference_table``).
    """
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; valid: {sorted(PROBES)}")
    kw = {} if encoder.startswith("random") or encoder == "minilm" else {"pooling": pooling, "layer": layer}
    z = item_embeddings(split.dataset.item_texts, encoder, seed=seed, center=center, **kw)
    name, extra = PROBES[probe]
    model, result, rec = train_and_test(name, split, seed=seed, progress=progress, item_z=z, encoder=encoder,
                                        center=False, **(extra | overrides))  # z is centred above if asked
    rec["test_per_user"] = evaluate(model, split, "test", device=model.device, per_user=True)
    rec["label"] = probe_label(encoder, pooling, layer, probe, center)
    rec["history"] = result.history
    return rec


def plot_probe_bars(records: list[dict], metric: str = "recall@20", references: dict[str, float] | None = None,
                    ax=None, title: str | None = None):
    """Horizontal bars of ``metric`` per probe record; ``references`` (e.g. MF, random control) as
    dashed vertical lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.45 * len(records) + 1.4))
    labels = [r.get("label") or r["model"] for r in records]
    vals = [r["metrics"][metric] for r in records]
    colors = ["tab:gray" if lab.startswith("random") else "tab:blue" for lab in labels]
    ax.barh(np.arange(len(vals)), vals, color=colors)
    ax.set_yticks(np.arange(len(vals)), labels)
    ax.invert_yaxis()
    for x, y in zip(vals, range(len(vals))):
        ax.text(x, y, f" {x:.4f}", va="center", fontsize=8)
    for k, (name, v) in enumerate((references or {}).items()):
        ax.axvline(v, ls="--", color=f"C{k + 1}", label=f"{name} {v:.4f}")
    if references:  # beside the axes, never over a bar
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    # the axis starts near the smallest value: from 0 the gaps between probes would not show
    shown = vals + list((references or {}).values())
    lo, hi = min(shown), max(shown)
    pad = 0.1 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-6
    left = max(0.0, lo - pad)
    ax.set_xlim(left, hi + 2.5 * pad)
    ax.set(xlabel=f"test {metric}" + (f" (axis from {left:.3f})" if left > 0 else ""),
           title=title or "linear-mapping probes: is preference in the language space?")
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

    return explorer(
        lambda encoder, layer, pooling, probe_kind, epochs: draw_probe(
            split, encoder, layer, pooling, probe_kind, epochs, references, controls=controls), manual=True,
        encoder=w.Dropdown(options=list(encoders), value=encoders[0]),
        layer=w.Dropdown(options=[("last", -1), ("middle (15)", 15), ("early (5)", 5)], value=-1),
        pooling=w.Dropdown(options=["mean", "last"], value="mean"),
        probe_kind=w.Dropdown(options=list(PROBES), value="linear", description="probe"),
        epochs=w.IntSlider(value=30, min=5, max=200, step=5))


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
    return explorer(
        lambda intention, user, alpha: intention_top_k(model, split, user, encode(intention), alpha), manual=True,
        intention=w.Text(value="a funny animated movie for kids"),
        user=w.Dropdown(options=users, value=users[0]),
        alpha=w.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05))
