"""Notebook 03 (PAD): re-running the alignment stage with other MMD weights / kernels and watching the two
distributions meet; the gate's expert weights per popularity bin."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.split import Split
from ..experiment import refit_stage
from ..metrics import evaluate
from .common import explorer, plot_overlay


def realign(pretrained, split: Split, weight: float = 0.2, kernel: str = "multi", epochs: int = 5, bce: bool = True,
            seed: int = 2020, progress: bool = False):
    """PAD stage 2 on a copy of ``pretrained`` (a PAD after stage 1) for exactly ``epochs`` epochs (last
    weights kept, no early stopping) with MMD ``weight`` (official units, PAD's 0.2), ``kernel`` and the BCE term on
    or off; ``progress``: a bar over the epochs."""
    m, _ = refit_stage(pretrained, "pad", split, "align", seed=seed, epochs=epochs, patience=epochs,
                       restore_best=False, progress=progress, mmd_weight=weight, kernel=kernel, bce_in_alignment=bce)
    return m


def draw_alignment(pretrained, split: Split, weight: float = 0.2, kernel: str = "multi", epochs: int = 5,
                   bce: bool = True, method: str = "pca", seed: int = 2020, progress: bool = False):
    """A short re-alignment (``realign``) with MMD ``weight`` and ``kernel``: before/after overlay of the two
    distributions, the MMD estimates and the aligned expert's validation NDCG@10 (validation, never test:
    this is for exploring settings)."""
    import copy

    start = copy.deepcopy(pretrained).set_stage("align")
    before, vec_before = start.alignment_stats(), [v.numpy() for v in start.alignment_vectors()]
    m = realign(pretrained, split, weight, kernel, epochs, bce, seed, progress)
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

    return explorer(
        lambda weight, kernel, bce, epochs: draw_alignment(pretrained, split, weight, kernel, epochs, bce), manual=True,
        weight=w.FloatLogSlider(value=0.2, base=10, min=-2, max=2, step=0.1),
        kernel=w.Dropdown(options=["multi", "single", "linear"], value="multi"),
        bce=w.Checkbox(value=True, description="BCE during alignment"),
        epochs=w.IntSlider(value=5, min=1, max=30))


def plot_gate_weights(model, ax=None, bin_items=None):
    """PAD's gate: each expert's weight against the item-popularity bin (bins hold equal interaction mass).
    ``model``: a PAD, or its [3, n_bins] gate weights (a stored table's) with ``bin_items``, the items per bin."""
    from ..models.pad import EXPERTS

    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            w = model.gate_weights().cpu().numpy()
        pop = np.bincount(model.bins.cpu().numpy(), minlength=w.shape[1])
    else:
        w = np.asarray(model, dtype=float)
        if bin_items is None or w.ndim != 2 or w.shape[0] != len(EXPERTS):
            raise ValueError(f"give a PAD, or [{len(EXPERTS)}, n_bins] gate weights with bin_items (items per bin)")
        pop = np.asarray(bin_items)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.2))
    for k, name in enumerate(EXPERTS):
        ax.plot(np.arange(w.shape[1]), w[k], marker="o", lw=2, label=f"{name} expert")
    ax.set_xticks(np.arange(w.shape[1]), [f"{b}\n({n})" for b, n in enumerate(pop)], fontsize=9)
    ax.tick_params(axis="y", labelsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_xlabel("popularity bin, rare → popular (items in the bin)", fontsize=10)
    ax.set_ylabel("gate weight (the three sum to 1)", fontsize=10)
    ax.set_title("PAD's gate: which expert scores which items", fontsize=11)
    ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the lines
    ax.figure.tight_layout()
    return ax.figure
