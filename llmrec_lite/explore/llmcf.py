"""Notebook 06 (LLM-CF): one user's request end to end (the examples retrieved for them, the reasoning the LLM
wrote for those examples, and what the ICT output does to the user's ranking)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..models.llmcf_offline import item_names
from .common import explorer


def examples_table(pool, retrieved, names) -> pd.DataFrame:
    """The retrieved pool rows as a reader sees them: their user's last 3 movies, target, label and CoT."""
    rows = pool.rows.iloc[retrieved]
    return pd.DataFrame({
        "their recent movies": [", ".join(names[i] for i in list(h)[-3:]) for h in rows["history"]],
        "target": [names[i] for i in rows["item"]],
        "liked": rows["label"].astype(int).to_numpy(),
        "reasoning (CoT)": rows["cot"].to_numpy()})


def user_example(model, pool, split, user: int, stage: str = "test", top: int = 5) -> dict:
    """For an ``LLMCFSASRec`` model and one user: the retrieved pool rows (their user's last behaviours, target,
    label and CoT), and the rank of the user's ``stage`` target among the unseen items with the ICT output
    (fusion as trained) and without it (fusion 0, the same model otherwise), with both top lists."""
    names = item_names(split.dataset)
    target = split.part(stage).set_index("user")["item"]
    if user not in target.index:
        raise ValueError(f"user {user} has no {stage} item; pick one of the users in split.{stage}")
    seen = split.seen(stage)[user].indices
    model.eval()
    scores, fusion = {}, model.fusion
    try:
        with torch.no_grad():
            for label, f in (("with ICT", fusion), ("without ICT", 0.0)):
                model.fusion = f
                s = model.score_all(torch.tensor([user], device=model.device), stage)[0].cpu().numpy().copy()
                if label == "with ICT":
                    retrieved = model.last_retrieved[0].cpu().numpy()
                s[seen] = -np.inf
                scores[label] = s
    finally:
        model.fusion = fusion
    t = int(target[user])
    ranks = {k: int((s > s[t]).sum()) + 1 for k, s in scores.items()}
    examples = examples_table(pool, retrieved, names)
    return {"user": user, "history": [names[i] for i in split.histories("train")[user][-5:]],
            "target": names[t], "ranks": ranks, "examples": examples,
            "top": {k: [names[i] for i in np.argsort(-s, kind="stable")[:top]] for k, s in scores.items()}}


def draw_llmcf_example(models: dict, pool, split, user: int, k: int, stage: str = "test"):
    """Print one user's request for the model trained with K = ``k`` (``models``: {K: LLMCFSASRec}) and draw the
    target's rank with and without the ICT output. Returns (figure, the example dict)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    if k not in models:
        raise ValueError(f"no model trained with K = {k}; trained: {sorted(models)}")
    ex = user_example(models[k], pool, split, user, stage)
    print(f"user {user}: last watched {'; '.join(ex['history'])}\n{stage} target: {ex['target']}")
    with pd.option_context("display.max_colwidth", 160):
        display(ex["examples"])
    fig, ax = plt.subplots(figsize=(5, 2.2))
    labels, values = list(ex["ranks"]), list(ex["ranks"].values())
    ax.barh(labels, values, color=["tab:green", "tab:gray"])
    for i, v in enumerate(values):
        ax.text(v, i, f" {v}", va="center")
    ax.set(xscale="log", xlabel="rank of the target among unseen items (1 = top)", title=f"K = {k}")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig, ex


def llmcf_widget(models: dict, pool, split, users, stage: str = "test"):
    """ipywidgets front-end of ``draw_llmcf_example``: pick a user and K (one trained model per K)."""
    import ipywidgets as w

    users = [int(u) for u in users]
    return explorer(lambda user, k: draw_llmcf_example(models, pool, split, user, k, stage),
                      user=w.Dropdown(options=users, value=users[0]),
                      k=w.Dropdown(options=sorted(models), value=4 if 4 in models else sorted(models)[0]))


def ctr_user_example(model, backbone, pool, view, user: int, stage: str = "test", row: int = 0) -> dict:
    """For an ``LLMCFDIN`` model, the backbone trained alone (``DIN``) and one user: the user's ``stage`` rows
    with both click probabilities, and for their ``row``-th row the retrieved pool rows (their recent movies,
    target, label and CoT). Raises a clear error for a user without ``stage`` rows."""
    from ..models.base import ctr_batch

    names = item_names(view.dataset)
    a = view.arrays(stage)
    rows = np.flatnonzero(a["user"] == user)
    if not len(rows):
        raise ValueError(f"user {user} has no {stage} rows; pick one of view.{stage}['user']")
    row = int(np.clip(row, 0, len(rows) - 1))
    batch = ctr_batch(a, rows, model.device)
    model.eval(), backbone.eval()
    with torch.no_grad():
        p_model = torch.sigmoid(model.predict(batch)).cpu().numpy()
        retrieved = model.last_retrieved[row].cpu().numpy()
        p_back = torch.sigmoid(backbone.predict(ctr_batch(a, rows, backbone.device))).cpu().numpy()
    label = a["label"][rows].astype(int)
    table = pd.DataFrame({"target": [names[i] for i in a["item"][rows]], "liked": label,
                          "p backbone": p_back.round(3), "p + ICT": p_model.round(3)})
    table["moved toward the label"] = np.where(label == 1, p_model > p_back, p_model < p_back)
    examples = examples_table(pool, retrieved, names)
    hist = a["hist"][rows[row]]
    return {"user": user, "row": row, "history": [names[i - 1] for i in hist[hist > 0][-5:]],
            "target": names[a["item"][rows[row]]], "rows": table, "examples": examples}


def draw_llmcf_ctr_example(models: dict, backbone, pool, view, user: int, k: int, row: int = 0, stage: str = "test"):
    """Print one user's request for the LLM-CF DIN trained with K = ``k`` (``models``: {K: LLMCFDIN}): the
    retrieved examples and their reasoning for the user's ``row``-th row, and draw every row's click probability
    with and without the ICT (the backbone trained alone). Returns (figure, the example dict)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    if k not in models:
        raise ValueError(f"no model trained with K = {k}; trained: {sorted(models)}")
    ex = ctr_user_example(models[k], backbone, pool, view, user, stage, row)
    print(f"user {user}, {stage} row {ex['row']}: target {ex['target']}; last watched {'; '.join(ex['history'])}")
    with pd.option_context("display.max_colwidth", 160):
        display(ex["examples"])
    t = ex["rows"]
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.28 * len(t)))
    yy = np.arange(len(t))
    colors = np.where(t["liked"] == 1, "tab:green", "tab:red")
    ax.hlines(yy, t["p backbone"], t["p + ICT"], color="lightgray")
    ax.scatter(t["p backbone"], yy, facecolors="none", edgecolors=colors, label="backbone alone")
    ax.scatter(t["p + ICT"], yy, c=colors, label=f"+ ICT (K = {k})")
    ax.set_yticks(yy, [s[:32] for s in t["target"]], fontsize=7)
    ax.set(xlim=(0, 1), xlabel="click probability (green: liked, red: not)", title=f"user {user}'s {stage} rows")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig, ex


def llmcf_ctr_widget(models: dict, backbone, pool, view, users, stage: str = "test"):
    """ipywidgets front-end of ``draw_llmcf_ctr_example``: pick a user, K and which of their rows to explain."""
    import ipywidgets as w

    users = [int(u) for u in users]
    return explorer(lambda user, k, row: draw_llmcf_ctr_example(models, backbone, pool, view, user, k, row, stage),
                      user=w.Dropdown(options=users, value=users[0]),
                      k=w.Dropdown(options=sorted(models), value=4 if 4 in models else sorted(models)[0]),
                      row=w.IntSlider(min=0, max=9, value=0))
