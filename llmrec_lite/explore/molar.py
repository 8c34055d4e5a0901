"""Notebook 04 (Molar): how close each user's content embedding is to the same user's ID embedding, before
and after post-alignment, and an explorer that re-trains the content model with another alignment weight and
temperature."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.split import Split
from ..experiment import train_and_test


@torch.no_grad()
def alignment_cosines(model, id_model, split: Split, stage: str = "test", n_users: int | None = 2000,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """cos(u^c_b, u^id_b) for each user ("own") and to another random user's ID embedding ("other"): the
    pairs post-alignment pulls together and the ones it pushes apart. ``id_model``: the SASRec aligned to."""
    rng = np.random.default_rng(seed)
    users = np.arange(split.n_users) if n_users is None or n_users >= split.n_users else \
        np.sort(rng.choice(split.n_users, n_users, replace=False))
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


def draw_molar_alignment(split: Split, item_z: np.ndarray, id_model, align_weight: float = 0.1, tau: float = 0.1,
                         epochs: int = 5, reference: dict | None = None, seed: int = 2020, **model_kw):
    """Train Molar's content stage with ``align_weight`` and ``tau`` against the fitted ``id_model`` (early
    stopping on validation), then draw its alignment histogram beside ``reference`` ({label: cosines});
    returns (figure, test record)."""
    m, _, rec = train_and_test("molar", split, seed=seed, progress=False, item_z=item_z, id_model=id_model,
                               align_weight=float(align_weight), tau=float(tau), epochs=epochs, **model_kw)
    label = f"lambda={align_weight:g}, tau={tau:g}"
    cos = {label: alignment_cosines(m, id_model, split)} | dict(reference or {})
    mt = rec["metrics"]
    fig = plot_alignment(cos, title=f"{label}: test NDCG@10 {mt['ndcg@10']:.4f}, HR@10 {mt['hr@10']:.4f} "
                                    f"(best epoch {rec['best_epoch']})")
    return fig, rec


def molar_widget(split: Split, item_z: np.ndarray, id_model, reference: dict | None = None, **model_kw):
    """ipywidgets front-end of ``draw_molar_alignment``: alignment weight, temperature, epochs, then Run."""
    import ipywidgets as w

    return w.interact_manual(
        lambda align_weight, tau, epochs: draw_molar_alignment(split, item_z, id_model, align_weight, tau, epochs,
                                                               reference, **model_kw)[0],
        align_weight=w.FloatLogSlider(value=0.1, base=10, min=-3, max=1, step=0.5, description="lambda"),
        tau=w.FloatLogSlider(value=0.1, base=10, min=-2, max=0, step=0.25, description="tau"),
        epochs=w.IntSlider(value=5, min=1, max=50, step=1))
