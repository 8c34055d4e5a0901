"""Notebook 02 (LLM-ESR): gains over a baseline per user / item group (long-tail users and items), as bars
and as a widget. Paired intervals: ``metrics.difference_table``."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from .common import explorer


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

    if baseline not in records:
        raise ValueError(f"no record named {baseline!r} to measure gains against; records: {list(records)}")
    names = [k for k in records if k != baseline]
    return explorer(
        lambda metric, variants: plot_gains({baseline: records[baseline]} | {v: records[v] for v in variants},
                                            baseline, metric),
        metric=w.Dropdown(options=["ndcg@10", "hr@10", "ndcg@20", "hr@20"], value="ndcg@10"),
        variants=w.SelectMultiple(options=names, value=tuple(names[:2]), rows=min(len(names), 6)))
