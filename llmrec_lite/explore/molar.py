"""Notebook 04 (Molar): how close each user's content embedding is to the same user's ID embedding, before
and after post-alignment, and an explorer that re-trains the content model with another alignment weight and
temperature."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.split import Split
from ..experiment import train_and_test
from .common import explorer


def _users(split: Split, n_users: int | None, rng: np.random.Generator) -> np.ndarray:
    return np.arange(split.n_users) if n_users is None or n_users >= split.n_users else \
        np.sort(rng.choice(split.n_users, n_users, replace=False))


@torch.no_grad()
def user_pairs(model, id_model, split: Split, stage: str = "test", n_users: int | None = 1000,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(content user embeddings, the same users' ID embeddings), unit rows [n_users, d] each: u^c of ``model``
    and u^id of ``id_model`` (the SASRec aligned to) on the window the alignment used (the content model's)."""
    model.eval()
    id_model.eval()
    u = torch.from_numpy(_users(split, n_users, np.random.default_rng(seed))).to(model.device)
    content = torch.nn.functional.normalize(model.user_embeddings(u, stage)[0], dim=-1)
    seq = getattr(model, f"{stage}_seq")[u]
    ids = torch.nn.functional.normalize(id_model.encode(seq)[:, -1], dim=-1)
    return content.cpu().numpy(), ids.cpu().numpy()


def plot_user_map(pairs: dict, n_lines: int = 25, seed: int = 0, axes=None):
    """One UMAP per model of its content user embeddings and the same users' ID embeddings, fitted on both
    (cosine): ``pairs`` = {label: user_pairs(...)}. Grey lines join a few users' two embeddings: after
    post-alignment they should be short."""
    from ..plots import umap_2d

    if axes is None:
        _, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs), 4.2), squeeze=False)
        axes = axes[0]
    rng = np.random.default_rng(seed)
    for ax, (label, (content, ids)) in zip(axes, pairs.items()):
        n = len(content)
        xy = umap_2d(np.vstack([content, ids]), seed=seed)
        ax.scatter(xy[n:, 0], xy[n:, 1], s=4, alpha=0.5, c="tab:blue", label="ID (SASRec) user embeddings")
        ax.scatter(xy[:n, 0], xy[:n, 1], s=4, alpha=0.5, c="tab:orange", label="content user embeddings")
        for i in rng.choice(n, min(n_lines, n), replace=False):
            ax.plot([xy[i, 0], xy[n + i, 0]], [xy[i, 1], xy[n + i, 1]], c="grey", lw=0.5, alpha=0.7)
        ax.set(xticks=[], yticks=[], title=label)
        ax.legend(frameon=False, fontsize=7, markerscale=3)
    axes[0].figure.tight_layout()
    return axes[0].figure


@torch.no_grad()
def alignment_cosines(model, id_model, split: Split, stage: str = "test", n_users: int | None = 2000,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """cos(u^c_b, u^id_b) for each user ("own") and to another random user's ID embedding ("other"): the
    pairs post-alignment pulls together and the ones it pushes apart. ``id_model``: the SASRec aligned to."""
    rng = np.random.default_rng(seed)
    users = _users(split, n_users, rng)
    model.eval()
    id_model.eval()
    u = torch.from_numpy(users).to(model.device)
    content = torch.nn.functional.normalize(model.user_embeddings(u, stage)[0], dim=-1)
    seq = getattr(model, f"{stage}_seq")[u]  # the window the alignment used: the content model's
    ids = torch.nn.functional.normalize(id_model.encode(seq)[:, -1], dim=-1)
    other = ids[torch.from_numpy(rng.permutation(len(users))).to(ids.device)]
    return {"own": (content * ids).sum(-1).cpu().numpy(), "other": (content * other).sum(-1).cpu().numpy()}


def plot_alignment(cosines: dict[str, dict[str, np.ndarray]], ax=None, title: str | None = None):
    """One pair of histograms per model: cos to the user's own ID embedding vs to another user's."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.4))
    bins = np.linspace(-1, 1, 41)
    for k, (name, c) in enumerate(cosines.items()):
        ax.hist(c["own"], bins, histtype="step", lw=1.8, color=f"C{k}", label=f"{name}: own ({c['own'].mean():+.2f})")
        ax.hist(c["other"], bins, histtype="step", lw=1.0, ls="--", color=f"C{k}",
                label=f"{name}: other user ({c['other'].mean():+.2f})")
    ax.set(xlabel="cos(content user embedding, ID user embedding)", ylabel="users",
           title=title or "is each content user embedding next to its own ID embedding?")
    ax.legend(frameon=False, fontsize=7)
    ax.figure.tight_layout()
    return ax.figure


def draw_molar_alignment(split: Split, item_z: np.ndarray, id_model, align_weight: float = 0.3, tau: float = 0.1,
                         epochs: int = 5, reference: dict | None = None, seed: int = 2020, before=None,
                         n_map: int = 1000, **model_kw):
    """Train Molar's content stage with ``align_weight`` and ``tau`` against the fitted ``id_model`` (early
    stopping on validation), then draw its alignment histogram beside ``reference`` ({label: cosines}) and a
    UMAP of its content vs ID user embeddings (``n_map`` test users; ``before``: a content-only model, drawn
    as the map before alignment). Returns (figure, test record)."""
    m, _, rec = train_and_test("molar", split, seed=seed, progress=False, item_z=item_z, id_model=id_model,
                               align_weight=float(align_weight), tau=float(tau), epochs=epochs, **model_kw)
    label = f"lambda={align_weight:g}, tau={tau:g}"
    cos = {label: alignment_cosines(m, id_model, split)} | dict(reference or {})
    mt = rec["metrics"]
    maps = ({"before alignment (content only)": user_pairs(before, id_model, split, n_users=n_map)} if before is not None else {}) \
        | {f"after: {label}": user_pairs(m, id_model, split, n_users=n_map)}
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(6.5 + 4.2 * len(maps), 4.0),
                             gridspec_kw={"width_ratios": [1.5] + [1] * len(maps)})
    plot_alignment(cos, ax=axes[0], title=f"{label}: test NDCG@10 {mt['ndcg@10']:.4f}, HR@10 {mt['hr@10']:.4f} "
                                           f"(best epoch {rec['best_epoch']})")
    plot_user_map(maps, axes=axes[1:])
    return fig, rec


def molar_widget(split: Split, item_z: np.ndarray, id_model, reference: dict | None = None, before=None, **model_kw):
    """ipywidgets front-end of ``draw_molar_alignment``: alignment weight, temperature, epochs, then Run."""
    import ipywidgets as w

    return explorer(
        lambda align_weight, tau, epochs: draw_molar_alignment(split, item_z, id_model, align_weight, tau, epochs,
                                                               reference, before=before, **model_kw), manual=True,
        align_weight=w.FloatLogSlider(value=0.3, base=10, min=-3, max=1, step=0.25, description="lambda"),
        tau=w.FloatLogSlider(value=0.1, base=10, min=-2, max=0, step=0.25, description="tau"),
        epochs=w.IntSlider(value=5, min=1, max=50, step=1))
