"""Notebook 05 (BAHE): how often a token-level LLM CTR model re-encodes the same behaviour, what the
complexity formulas predict for this data and model, and the measured cost of both encodings."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from .common import explorer


# The AUC comparison of notebook 05 and benchmarks/bahe_seeds.py: a fixed sample of the ml-100k click-through rows
# (the same for every model seed), SmolLM2 cut at layer 4 (0-3 frozen, 4-5 trainable), 24 tokens per behaviour
COMPARISON = {"dataset": "ml-100k", "history": 20, "rows": {"train": 1600, "valid": 300, "test": 1200},
              "row_seed": 2020, "lm": {"split_layer": 4, "upper_layers": 2, "tokens": 24},
              "train": {"epochs": 2, "patience": 2, "batch_size": 16}}


def comparison_view(dataset=None, **changes):
    """The click-through rows of ``COMPARISON`` (``changes`` override its history / rows / row_seed), from
    ``dataset`` or the comparison's dataset loaded."""
    from ..data import ctr_view, load_dataset

    c = COMPARISON | changes
    ds = dataset if dataset is not None else load_dataset(c["dataset"], verbose=False)
    return ctr_view(ds, max_history=c["history"]).subsample(**c["rows"], seed=c["row_seed"])


def behaviour_counts(dataset, histories=(10, 20, 50, 100)) -> pd.DataFrame:
    """Per history length M: how many behaviour encodings the CTR view's rows ask for token-level (every
    behaviour of every row's history, each a fresh LM pass over its tokens) against BAHE (each distinct
    behaviour once). Rows and histories as ``data.ctr_view`` builds them (strictly earlier ratings, the last M),
    counted without building the view."""
    df = dataset.interactions.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    idx = np.arange(len(df))
    start = df.groupby("user").cumcount().to_numpy()
    end = idx - df.groupby(["user", "timestamp"]).cumcount().to_numpy()  # history = rows [lo, end)
    earlier = end - (idx - start)  # ratings strictly before this one
    out = []
    for m in histories:
        length = np.minimum(earlier, m)
        distinct = _distinct_behaviours(df, end, length)
        total = int(length.sum())
        out.append({"history M": m, "rows": len(df), "mean behaviours per row": length.mean(),
                    "token-level encodings": total, "BAHE encodings (distinct)": distinct,
                    "times each behaviour is re-encoded": total / max(distinct, 1)})
    return pd.DataFrame(out).set_index("history M")


def _distinct_behaviours(df: pd.DataFrame, end: np.ndarray, length: np.ndarray) -> int:
    """Distinct items appearing in at least one row's history (rows [end - length, end))."""
    n = len(df)
    cover = np.zeros(n + 1, np.int64)
    np.add.at(cover, end - length, 1)
    np.add.at(cover, end, -1)
    covered = np.cumsum(cover)[:n] > 0  # row i is inside some history
    return int(np.unique(df["item"].to_numpy()[covered]).size)


def predicted_cost(n_seq: int, m: int, k: float, l_low: int, l_high: int, hidden: int, layer_params: int) -> dict:
    """FLOPs of one training example under the two encodings, from the layer shapes: a decoder layer costs
    2 P T (its P weights, per token) + 4 T^2 H (attention scores and mixing) forward over T positions, and a
    trainable layer 3x that (forward + backward); frozen lower layers run forward only. Token level runs
    N sequences of M K tokens through L_low + L_high layers; BAHE runs N sequences of M behaviour vectors
    through L_high layers (its table was paid once, offline)."""
    def layer(t):
        return 2 * layer_params * t + 4 * t * t * hidden

    t_tok = m * k
    token = n_seq * (l_low * layer(t_tok) + 3 * l_high * layer(t_tok))
    atomic = n_seq * 3 * l_high * layer(m)
    return {"token-level FLOPs": token, "BAHE FLOPs": atomic, "predicted speed-up": token / atomic,
            "table FLOPs per behaviour (once)": l_low * layer(k)}


def measure_encodings(view, batch_size: int = 16, reps: int = 3, device="cpu", seed: int = 0,
                      encodings=("token", "atomic"), min_seconds: float = 0.0, build_table: bool = True,
                      **model_kw) -> dict:
    """The cost of each encoding on one fixed batch of ``view``'s train rows whose history is full
    (``view.max_history`` behaviours); the encodings are built with the same seed (same weights):

    - ``{enc} s/step``: median seconds of a training step (loss, backward, Adam step) over at least ``reps``
      steps after a warm-up, more until they add up to ``min_seconds``; ``speed-up`` = token / atomic medians,
      ``speed-up low`` / ``high`` the same ratio from the steps' quartiles (how stable it is), ``steps timed``;
    - ``{enc} step MB``: peak tensor memory of a step above what is allocated before it (activations and
      gradients; not the weights, not Adam's state, which exist before the step), ``memory ratio`` their ratio;
    - ``{enc} total MB``: that plus the model's weights and buffers (token level: the frozen lower layers; BAHE:
      the behaviour table) and Adam's state, ``total memory ratio`` their ratio;
    - ``{enc} ms/example``: inference on the same batch (equal batch size for both encodings);
    - ``table build s``: BAHE's behaviour table built cold (every item of the dataset through the lower layers,
      no cache), paid once; ``items``;
    - ``predicted speed-up`` (``predicted_cost``) for the batch's real tokens per behaviour.
    """
    import torch

    from ..models import BAHE
    from ..models.base import ctr_batch
    from ..profiling import measure_times, peak_memory_mb
    from ..text.layers import load_decoder

    a = view.arrays("train")
    m = view.max_history
    full = np.flatnonzero((a["hist"] > 0).sum(1) == m)
    if len(full) < batch_size:
        raise ValueError(f"only {len(full)} train rows have {m} behaviours; a smaller batch_size or history")
    batch = ctr_batch(a, np.random.default_rng(seed).choice(full, batch_size, replace=False), device)
    row = {"history": m, "batch": batch_size}
    steps = {}
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts) / 2 ** 20
    for enc in encodings:
        torch.manual_seed(seed)
        model = BAHE(view, encoding=enc, **model_kw).to(device)
        opt = torch.optim.Adam([p for g in model.param_groups(1e-4) for p in g["params"]], lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            model.loss(batch).backward()
            opt.step()

        def infer():
            with torch.no_grad():
                model.predict(batch)

        model.train()
        steps[enc] = measure_times(step, device, reps, min_seconds=min_seconds)  # the warm-up makes Adam's state
        step_mb = peak_memory_mb(step, device)
        held = (nbytes(model.parameters()) + nbytes(b for b in model.buffers() if b is not None)
                + nbytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)))
        model.eval()
        si = measure_times(infer, device, reps, min_seconds=min_seconds / 4)
        row |= {f"{enc} s/step": steps[enc][len(steps[enc]) // 2], f"{enc} step MB": step_mb,
                f"{enc} total MB": held + step_mb, f"{enc} ms/example": 1000 * si[len(si) // 2] / batch_size}
    pair = model_kw.get("lm") or load_decoder(model_kw.get("encoder", "smollm2"), fresh=False)
    if build_table and "atomic" in encodings:
        import time

        texts = list(view.dataset.item_texts)
        t = time.perf_counter()
        BAHE.behaviour_tables(texts, model_kw.get("encoder", "smollm2"), pair, None, model_kw.get("split_layer", 4),
                              model_kw.get("tokens", 16), [model_kw.get("pooling", "mean"), "first"])
        row |= {"table build s": time.perf_counter() - t, "items": len(texts)}
    k_max = model_kw.get("tokens", 16)
    ids = batch["hist"][batch["hist"] > 0].cpu().numpy() - 1
    texts = view.dataset.item_texts
    k = float(np.mean([len(pair[0](str(texts[i]), truncation=True, max_length=k_max)["input_ids"]) for i in ids]))
    lm = model.upper
    layer_params = sum(p.numel() for p in lm.layers[0].parameters())
    pred = predicted_cost(model.n_seq, m, k, model_kw.get("split_layer", 4), model_kw.get("upper_layers", 2),
                          model.atoms.shape[1], layer_params)
    row["tokens per behaviour"] = k
    if "token" in steps and "atomic" in steps:
        q = lambda ts, f: ts[int(f * (len(ts) - 1))]
        row |= {"speed-up": row["token s/step"] / row["atomic s/step"],
                "speed-up low": q(steps["token"], 0.25) / q(steps["atomic"], 0.75),
                "speed-up high": q(steps["token"], 0.75) / q(steps["atomic"], 0.25),
                "steps timed": f"{len(steps['token'])} / {len(steps['atomic'])}",
                "memory ratio": row["token step MB"] / max(row["atomic step MB"], 1e-9),
                "total memory ratio": row["token total MB"] / row["atomic total MB"]}
    row["predicted speed-up"] = pred["predicted speed-up"]
    return row


# the cost grid (benchmarks/bahe_cost.py and notebook 05's full run measure it, into the store's ``bahe_cost`` table)
COST_GRID = {"datasets": ("ml-100k", "ml-1m"), "histories": (10, 20, 50, 100), "batch_size": 8, "reps": 3,
             "min_seconds": 15.0, "users": 400, "build_at": ("ml-100k", 20)}
COST_TABLE = "bahe_cost"


def cost_grid(loaded: dict | None = None, device="cpu", progress: bool = True, **changes) -> pd.DataFrame:
    """``measure_encodings`` for every dataset and history of ``COST_GRID`` (``changes`` override it; ``lm`` the
    split / upper layers / tokens, default ``COMPARISON["lm"]``) on ``users`` sampled users each (the cost depends on
    M, not on the users); the table's cold build is timed at ``build_at`` only. ``loaded``: {name: Dataset} already
    loaded (the others are loaded here). A history no batch of full rows fits is skipped, and said."""
    from ..data import ctr_view, load_dataset

    g = COST_GRID | {"lm": COMPARISON["lm"]} | changes
    rows = []
    for name in g["datasets"]:
        ds = (loaded or {}).get(name)
        ds = load_dataset(name, verbose=False) if ds is None else ds
        if ds.n_users > g["users"]:
            ds = ds.sample_users(g["users"], seed=COMPARISON["row_seed"])
        for m in g["histories"]:
            try:
                row = {"dataset": name} | measure_encodings(ctr_view(ds, max_history=m), g["batch_size"], g["reps"], device,
                                                         min_seconds=g["min_seconds"],
                                                         build_table=(name, m) == tuple(g["build_at"]), **g["lm"])
            except ValueError as e:
                print(f"{name}, M = {m}: skipped ({e})")
                continue
            rows.append(row)
            if progress:
                print(f"{name}, M = {m}: token {row['token s/step']:.2f} s/step, BAHE {row['atomic s/step']:.3f} s/step, "
                      f"{row['speed-up']:.1f}x", flush=True)
    return pd.DataFrame(rows)


def save_cost_grid(cost: pd.DataFrame, command: str, settings: dict | None = None) -> None:
    """Replace the store's ``bahe_cost`` table with ``cost`` (one row per dataset and M), with the environment."""
    import os
    import platform
    import time

    import torch

    from .. import evidence

    env = {"threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    rows = json.loads(cost.to_json(orient="records", double_precision=15))
    evidence.write([evidence.table_row(COST_TABLE, [r["dataset"], r["history"]], r, command,
                                       settings or {k: (list(v) if isinstance(v, tuple) else v) for k, v in COST_GRID.items()},
                                       env) for r in rows], replace_table=COST_TABLE)


def load_cost_grid() -> pd.DataFrame:
    """The stored ``bahe_cost`` table as ``cost_grid`` returns it (``attrs``: its command and date)."""
    from .. import evidence

    recs = evidence.rows(COST_TABLE)
    df = pd.DataFrame([r["row"] for r in recs])
    df.attrs = {"command": recs[0]["command"], "date": recs[0]["environment"].get("date")}
    return df


def plot_counts(counts: dict, ax=None):
    """How many times each behaviour is encoded token-level (BAHE: once) per history length, per dataset:
    ``counts`` = {dataset: behaviour_counts(...)}."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.2))
    for k, (name, t) in enumerate(counts.items()):
        ax.plot(t.index, t["times each behaviour is re-encoded"], "o-", c=f"C{k}", label=name)
    ax.set(xscale="log", yscale="log", xlabel="behaviours per row (history M)",
           ylabel="encodings per distinct behaviour", title="token level re-encodes each behaviour (BAHE: once)")
    ax.set_xticks(list(next(iter(counts.values())).index), [str(m) for m in next(iter(counts.values())).index])
    ax.legend(frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def plot_costs(cost: pd.DataFrame, axes=None):
    """Seconds per training step, the memory a step adds above weights and optimizer state (activations and
    gradients; log scales) and the speed-up, measured against predicted, across history lengths: ``cost`` = rows of
    ``measure_encodings`` with a "dataset" column."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for k, (name, t) in enumerate(cost.groupby("dataset", sort=False)):
        for enc, ls in (("token", "-"), ("atomic", "--")):
            label = f"{name}, {'token level' if enc == 'token' else 'BAHE'}"
            axes[0].plot(t["history"], t[f"{enc} s/step"], ls, marker="o", c=f"C{k}", label=label)
            axes[1].plot(t["history"], t[f"{enc} step MB"], ls, marker="o", c=f"C{k}", label=label)
        axes[2].plot(t["history"], t["speed-up"], "-", marker="o", c=f"C{k}", label=f"{name}, measured")
        axes[2].plot(t["history"], t["predicted speed-up"], ":", marker="x", c=f"C{k}", label=f"{name}, predicted")
    for ax, ylabel, title in zip(axes, ("seconds per training step", "MB per step (activations, gradients)",
                                        "token level / BAHE time"),
                                 ("time of a training step", "memory a step adds", "speed-up: measured vs predicted")):
        ax.set(xscale="log", yscale="log", xlabel="history M", ylabel=ylabel, title=title)
        ax.legend(frameon=False, fontsize=7)
    axes[0].figure.tight_layout()
    return axes[0].figure


def draw_bahe_point(grid: pd.DataFrame, split_layer: int, history: int):
    """The explorer's drawing: per split layer, the time and memory of a training step across histories, and
    BAHE's test AUC per split layer (trained at one history: the AUC is not a function of the grid's histories);
    the chosen point circled. ``grid``: rows with split_layer, history, "atomic s/step", "atomic step MB",
    "token s/step" and optionally "auc"."""
    import matplotlib.pyplot as plt

    cols = [c for c in ("atomic s/step", "token s/step", "atomic step MB") if c in grid]
    has_auc = "auc" in grid and grid["auc"].notna().any()
    n = len(cols) + has_auc
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.3), squeeze=False)
    pick = grid[(grid["split_layer"] == split_layer) & (grid["history"] == history)]
    titles = {"atomic s/step": "BAHE: s per training step", "token s/step": "token level: s per training step",
              "atomic step MB": "BAHE: MB a step adds"}
    for ax, c in zip(axes[0], cols):
        for k, (sl, t) in enumerate(grid.groupby("split_layer")):
            ax.plot(t["history"], t[c], "o-", c=f"C{k}", label=f"split at layer {sl}")
        if len(pick):
            ax.scatter(pick["history"], pick[c], s=160, facecolors="none", edgecolors="k", lw=1.5)
        ax.set(xlabel="history M", ylabel=c, xscale="log", yscale="log", title=titles[c])
        ax.legend(frameon=False, fontsize=8)
    if has_auc:
        ax = axes[0][-1]
        per_k = grid.dropna(subset=["auc"]).groupby("split_layer")["auc"].first()
        ax.plot(per_k.index, per_k.values, "o-", c="tab:green")
        if split_layer in per_k.index:
            ax.scatter([split_layer], [per_k[split_layer]], s=160, facecolors="none", edgecolors="k", lw=1.5)
        ax.set(xlabel="split layer k", ylabel="test AUC", title="BAHE test AUC by split layer")
        ax.set_xticks(list(per_k.index))
    if len(pick):
        r = pick.iloc[0]
        fig.suptitle(f"split at layer {split_layer}, history {history}: " +
                     ", ".join(f"{c} {r[c]:.3g}" for c in cols + (["auc"] if has_auc and pd.notna(r.get("auc")) else [])),
                     fontsize=9)
    fig.tight_layout()
    return fig


def grid_point(grid: pd.DataFrame, split_layer: int, history: int, measure=None) -> pd.DataFrame:
    """``grid`` with the (split_layer, history) point in it: when it is missing and ``measure(split_layer,
    history)`` is given, that call's row (the grid's cost columns) is measured and appended; otherwise the grid
    as it is."""
    have = ((grid["split_layer"] == split_layer) & (grid["history"] == history)).any()
    if have or measure is None:
        return grid
    row = {"split_layer": split_layer, "history": history} | dict(measure(split_layer, history))
    return pd.concat([grid, pd.DataFrame([row])], ignore_index=True).sort_values(["split_layer", "history"],
                                                                                 ignore_index=True)


def bahe_widget(grid: pd.DataFrame, measure=None, split_layers=(), histories=(), split_layer=None, history=None):
    """ipywidgets front-end of ``draw_bahe_point``: browse a computed grid, and with ``measure`` (e.g. a call of
    ``measure_encodings`` for one split and history) also measure points it lacks live, keeping them
    (``split_layers`` / ``histories``: extra choices besides the grid's). It opens at (``split_layer``,
    ``history``), by default the grid's first point."""
    import ipywidgets as w

    state = {"grid": grid}

    def show(split_layer, history):
        state["grid"] = grid_point(state["grid"], split_layer, history, measure)
        return draw_bahe_point(state["grid"], split_layer, history)

    choices = (lambda col, extra: sorted(set(grid[col].tolist()) | set(extra if measure is not None else ())))
    first = grid.iloc[0]
    return explorer(show, split_layer=w.Dropdown(options=choices("split_layer", split_layers),
                                                   value=int(first["split_layer"] if split_layer is None else split_layer)),
                      history=w.Dropdown(options=choices("history", histories),
                                         value=int(first["history"] if history is None else history)))
