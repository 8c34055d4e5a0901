"""The six papers side by side: what each attacks and where its LLM runs (``PAPERS``, the reading group's
comparison table), and the leaderboard of every benchmark run (``leaderboard``), read from the benchmark's
stored results, never re-trained.

    python -m llmrec_lite leaderboard                          # every dataset, markdown
    python -m llmrec_lite leaderboard --dataset ml-100k --format json

Runs come from the evidence store (``benchmarks/evidence.jsonl``: ``benchmarks/run.py`` and ``benchmarks/seeds.py``
write it, one record per (label, dataset, split, seed)). One row per (label, dataset, split): mean and standard
deviation over the seeds it has.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd

from . import evidence

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# label -> paper, for the benchmark's labels (variants and controls included)
PAPER_OF = {"alpharec": "AlphaRec", "alpharec-linear": "AlphaRec", "alpharec-linear:random": "AlphaRec (control)",
            "llmesr": "LLM-ESR", "llmesr-alpha0": "LLM-ESR (no distillation)", "llmesr-ce-alpha0": "LLM-ESR (CE, no distillation)",
            "llmesr-alpha0-smollm2": "LLM-ESR (SmolLM2 vectors)", "pad": "PAD", "id-text-concat": "PAD's baseline",
            "molar": "Molar", "molar-content": "Molar (content only)",
            "molar-early": "Molar (early fusion)", "bahe": "BAHE", "bahe-paper": "BAHE",
            "bahe-s": "BAHE (+ sink input S)", "bahe-s-random": "BAHE (+ S, random control)",
            "bahe-token-skip": "BAHE's baseline (token level)", "bahe-token-mean": "BAHE's baseline (token level, mean)",
            "llmcf-sasrec": "LLM-CF", "llmcf-din": "LLM-CF"}

# The reading notes' comparison (their last section), one row per paper, with where this project's compact
# version runs its language model. "LLM calls per served request" counts forward passes of LLM layers made to
# answer one request once everything offline is stored.
PAPERS = pd.DataFrame([
    {"paper": "AlphaRec", "problem": "do language representations alone carry collaborative signal?",
     "mechanism": "frozen LM title vectors -> MLP -> graph convolution, contrastive loss; no ID embeddings",
     "where the LLM runs": "offline: one encoder pass per item title", "stored offline": "item title vectors",
     "LM passes per item": 1, "LLM calls per served request": 0, "notebook": "01_alpharec.ipynb"},
    {"paper": "LLM-ESR", "problem": "long-tail users and items in sequential recommendation",
     "mechanism": "dual view (frozen LM semantics + IDs) fused, retrieval-augmented self-distillation from similar users",
     "where the LLM runs": "offline: one pass per item", "stored offline": "item vectors, similar-user lists",
     "LM passes per item": 1, "LLM calls per served request": 0, "notebook": "02_llm_esr.ipynb"},
    {"paper": "PAD", "problem": "aligning text and collaborative embeddings without forgetting",
     "mechanism": "pre-train IDs, align with multi-kernel MMD, three experts (ID / text / aligned) behind a gate",
     "where the LLM runs": "offline: one pass per item", "stored offline": "item vectors",
     "LM passes per item": 1, "LLM calls per served request": 0, "notebook": "03_pad.ipynb"},
    {"paper": "Molar", "problem": "text-only items lose modalities; fusing IDs early learns ID regularities",
     "mechanism": "an (M)LLM embeds item attributes, LLM decoder layers read the sequence, post-alignment with an ID model",
     "where the LLM runs": "offline: item embeddings; online: the LLM decoder layers over the item sequence",
     "stored offline": "item embeddings", "LM passes per item": 1, "LLM calls per served request": 1,
     "notebook": "04_molar.ipynb"},
    {"paper": "BAHE", "problem": "cost of LLM CTR models on long textual behaviour sequences",
     "mechanism": "lower LLM layers encode each behaviour once into a table; upper layers model the sequence",
     "where the LLM runs": "offline: lower layers once per behaviour; online: the upper layers over M vectors",
     "stored offline": "behaviour embedding table", "LM passes per item": 1, "LLM calls per served request": 1,
     "notebook": "05_bahe.ipynb"},
    {"paper": "LLM-CF", "problem": "LLM recommenders see few users and items; an LLM call per interaction is too slow",
     "mechanism": "RecGen LLM writes chain-of-thought offline; retrieved examples feed a small in-context transformer",
     "where the LLM runs": "offline: CoT for a sample of train rows (and their embeddings)",
     "stored offline": "in-context CoT dataset with embeddings", "LM passes per item": 0,
     "LLM calls per served request": 0, "notebook": "06_llm_cf.ipynb"},
])

RANKING_COLUMNS = {"ndcg@10": ("ndcg@10", None), "recall@20": ("recall@20", None),
                   "head-item N@10": ("ndcg@10", "head_items"), "tail-item N@10": ("ndcg@10", "tail_items"),
                   "tail-user N@10": ("ndcg@10", "tail_users")}
CTR_COLUMNS = {"auc": ("auc", None), "logloss": ("logloss", None), "tail-item AUC": ("auc", "tail_items"),
               "tail-user AUC": ("auc", "tail_users")}


label = evidence.label


def load_records(store: Path | str | None = None) -> list[dict]:
    """Every benchmark run of the evidence store (``benchmarks/evidence.jsonl``, ``evidence.py``), one record per
    (label, dataset, split, seed); the variants a notebook's full run stores (``notebook`` set) and runs whose
    settings a later pass replaced (``superseded``: why, and the command that reruns them) are left out."""
    return [r for r in evidence.runs(store) if not r.get("notebook") and not r.get("superseded")]


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return math.nan, math.nan
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def leaderboard(records: list[dict], dataset: str | None = None, task: str | None = None) -> pd.DataFrame:
    """One row per (label, dataset, split): seeds, mean and std of the headline metrics (ranking: NDCG@10,
    Recall@20, head/tail items, tail users; CTR: AUC, LogLoss, tail items / users), train seconds, s/epoch,
    trainable / frozen parameters where the run recorded them, and ``stale`` (measured before the issue-10
    fidelity fixes). Sorted by dataset, task, then the headline metric (NDCG@10 or AUC), best first."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        kind = "ctr" if r.get("task") == "ctr" or r["split"] == "ctr" else "ranking"
        if (dataset and r["dataset"] != dataset) or (task and kind != task):
            continue
        groups.setdefault((label(r), r["dataset"], r["split"], kind), []).append(r)
    if not groups:
        have = sorted({r["dataset"] for r in records})
        raise ValueError(f"no stored runs for dataset={dataset!r} task={task!r}; datasets with runs: {have}")
    rows = []
    for (name, ds, split, kind), rs in groups.items():
        row = {"model": name, "paper": PAPER_OF.get(name, "baseline"), "dataset": ds, "split": split, "task": kind,
               "seeds": len(rs)}
        for col, (key, group) in (CTR_COLUMNS if kind == "ctr" else RANKING_COLUMNS).items():
            vals = [(r["metrics"]["by_group"].get(group, {}) if group else r["metrics"]).get(key) for r in rs]
            row[col], row[f"{col} std"] = _mean_std(vals)
        timed = [r for r in rs if not r.get("timing_contended")]  # runs timed beside other jobs carry no cost
        row["train s"] = _mean_std([r.get("train_seconds") for r in timed])[0]
        row["s/epoch"] = _mean_std([r.get("seconds_per_epoch") for r in timed])[0]
        params = rs[0].get("parameters") or {}
        row["trainable params"], row["frozen params"] = params.get("trainable"), params.get("frozen")
        row["interactions"] = (rs[0].get("dataset_stats") or {}).get("interactions")
        row["stale"] = any(r.get("stale") for r in rs)
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in [*RANKING_COLUMNS, *CTR_COLUMNS]:
        for c in (col, f"{col} std"):
            if c not in df:
                df[c] = math.nan
    df["_score"] = df["auc"].where(df["task"] == "ctr", df["ndcg@10"])
    return df.sort_values(["dataset", "task", "split", "_score"], ascending=[True, False, False, False],
                          ignore_index=True).drop(columns="_score")


def missing_papers(board: pd.DataFrame) -> list[str]:
    """Papers of ``PAPERS`` with no stored benchmark run in ``board`` (their notebooks measure them)."""
    have = {PAPER_OF.get(m, "").split(" (")[0] for m in board["model"]}
    return [p for p in PAPERS["paper"] if p not in have]


def _cell(value, std=None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" + ("" if std is None or math.isnan(std) else f" ± {std:.4f}")
    return str(value)


def to_markdown(board: pd.DataFrame) -> str:
    """The leaderboard as markdown tables, one per (dataset, task); † = measured before the issue-10 fixes."""
    out = []
    splits = {"random": "ranking, per-user random 80/10/10", "loo": "ranking, leave-one-out by time",
              "ctr": "CTR view (label = rating >= 4, earlier behaviours)"}
    for (ds, kind, split), part in board.groupby(["dataset", "task", "split"], sort=False):
        cols = list(CTR_COLUMNS if kind == "ctr" else RANKING_COLUMNS)
        head = ["model", "paper", "split", "seeds"] + cols + ["train s", "s/epoch", "trainable params"]
        lines = [f"### {ds} · {splits.get(split, split)}",
                 "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in part.iterrows():
            cells = [r["model"] + (" †" if r["stale"] else ""), r["paper"], r["split"], str(r["seeds"])]
            cells += [_cell(r[c], r[f"{c} std"]) for c in cols]
            cells += ["—" if pd.isna(r["train s"]) else f"{r['train s']:.0f}", _cell(r["s/epoch"]),
                      "—" if pd.isna(r["trainable params"]) else f"{int(r['trainable params']):,}"]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    note = "\n\n† measured before the issue-10 fidelity fixes; refresh with `python benchmarks/run.py --only <model>`." \
        if board["stale"].any() else ""
    missing = missing_papers(board)
    if missing:
        nbs = dict(zip(PAPERS["paper"], PAPERS["notebook"]))
        note += ("\n\nNo stored benchmark run here for " + ", ".join(f"{p} (measured in notebooks/{nbs[p]})" for p in missing)
                 + ".")
    return "\n\n".join(out) + note


def to_json(board: pd.DataFrame) -> str:
    """The leaderboard as a JSON list of rows (NaN -> null; the other task's metric columns left out)."""
    rows = []
    for row in board.astype(object).to_dict("records"):
        other = RANKING_COLUMNS if row["task"] == "ctr" else CTR_COLUMNS
        skip = set(other) | {f"{c} std" for c in other}
        rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items() if k not in skip})
    return json.dumps(rows, indent=1)


def seed_gain(records: list[dict], model: str, baseline: str, dataset: str, metric: str = "ndcg@10",
              group: str | None = None) -> dict:
    """``model`` - ``baseline`` on ``metric`` (optionally within a ``group``), paired seed by seed over the seeds both
    have on ``dataset`` (same split, so only training noise differs): mean, 95% t-interval (n >= 2), n, and whether
    the interval excludes zero."""
    from scipy import stats

    def by_seed(name):
        return {r["seed"]: (r["metrics"]["by_group"][group] if group else r["metrics"])[metric]
                for r in records if label(r) == name and r["dataset"] == dataset}

    a, b = by_seed(model), by_seed(baseline)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed run of both {model!r} and {baseline!r} on {dataset}; "
                         f"{model}: {sorted(a)}, {baseline}: {sorted(b)}")
    d = [a[s] - b[s] for s in seeds]
    mean = statistics.mean(d)
    if len(d) < 2:
        return {"model": model, "baseline": baseline, "n": 1, "gain": mean, "low": math.nan, "high": math.nan,
                "beyond seed noise": False}
    half = float(stats.t.ppf(0.975, len(d) - 1)) * statistics.stdev(d) / math.sqrt(len(d))
    return {"model": model, "baseline": baseline, "n": len(d), "gain": mean, "low": mean - half, "high": mean + half,
            "beyond seed noise": bool(mean - half > 0 or mean + half < 0)}


# The paired comparisons read on every dataset (notebook 07, the README's cross-dataset block): what the paper's
# mechanism adds over the same model without it, or over the control that separates the language space's share.
CONTRASTS = (("alpharec", "lightgcn", "recall@20"), ("alpharec-linear", "alpharec-linear:random", "recall@20"),
             ("pad", "sasrec-bce", "ndcg@10"), ("llmesr", "sasrec-bce", "ndcg@10"))


def contrasts(records: list[dict], datasets: list[str] | None = None) -> pd.DataFrame:
    """``seed_gain`` of each CONTRASTS pair on each dataset (default: every dataset in ``records``, sorted) where
    both have a seed run, overall and on tail items; stale runs left out. One row per (pair, dataset)."""
    records = [r for r in records if not r.get("stale")]
    datasets = datasets if datasets is not None else sorted({r["dataset"] for r in records})
    rows = []
    for model, base, metric in CONTRASTS:
        for dataset in datasets:
            try:
                g = seed_gain(records, model, base, dataset, metric)
            except ValueError:  # no seed with both runs on this dataset
                continue
            tail = seed_gain(records, model, base, dataset, metric, "tail_items")
            rows.append({"comparison": f"{model} − {base}", "model": model, "baseline": base, "metric": metric,
                         "dataset": dataset, "n": g["n"], "gain": g["gain"], "low": g["low"], "high": g["high"],
                         "tail-item gain": tail["gain"]})
    return pd.DataFrame(rows, columns=["comparison", "model", "baseline", "metric", "dataset", "n", "gain", "low",
                                       "high", "tail-item gain"])


# paper model (benchmark label) -> the baseline its seeds are paired with (benchmarks/seeds.py)
SEED_BASELINE = {"llmesr": "sasrec-bce", "llmesr-alpha0": "sasrec-bce", "pad": "sasrec-bce", "id-text-concat": "sasrec-bce",
                 "llmesr-ce-alpha0": "sasrec",  # the benchmark's SASRec is the CE one
                 "sasrec-bce-xavier-init": "sasrec-bce",
                 "molar": "molar-sasrec-bce", "molar-early": "molar-sasrec-bce", "molar-content": "molar-sasrec-bce",
                 **{f"llmcf-sasrec{x}": "llmcf-sasrec-backbone" for x in ("", "-random", "-k0", "-nocot", "-user")}}


def _value(r: dict, key: str) -> float:
    if key == "valid":
        return r["best_valid"] if not r.get("stages") else r["stages"][-1]["best_valid"]
    return r["metrics"]["ndcg@10"] if key == "all" else r["metrics"]["by_group"][key]["ndcg@10"]


def seed_summary(records: list[dict]) -> dict:
    """Leave-one-out runs over model seeds: {dataset: {"models": {label: stats}, "gains": {label: paired stats vs
    its baseline (SEED_BASELINE)}}}. Per label the mean, std and values over seeds of test NDCG@10 overall and on
    tail items / users and of validation NDCG@10; per paper model the paired difference seed by seed with its 95%
    t-interval and a paired t-test (``exceeds_spread``: the interval excludes 0)."""
    import numpy as np
    from scipy import stats

    out: dict = {}
    by: dict = {}
    for r in records:
        if r.get("split", "loo") != "loo" or r.get("task") == "ctr":
            continue
        by.setdefault(r["dataset"], {}).setdefault(label(r), {})[r["seed"]] = r
    for ds, labels in by.items():
        models, gains = {}, {}
        for lab, runs in labels.items():
            models[lab] = {"seeds": sorted(runs), "train_seconds": statistics.mean(r["train_seconds"] for r in runs.values())}
            for key in ("all", "tail_items", "tail_users", "valid"):
                v = [_value(runs[s], key) for s in sorted(runs)]
                models[lab][key] = {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                                    "values": v}
        for lab, base in SEED_BASELINE.items():
            if lab not in labels or base not in labels:
                continue
            g = _paired_over_seeds(labels[lab], labels[base])
            if g is not None:
                gains[lab] = {"baseline": base} | g
        out[ds] = {"models": models, "gains": gains}
    return out


def _paired_over_seeds(runs: dict, base_runs: dict) -> dict | None:
    """Paired difference seed by seed ({seed: record} each): per key the mean, 95% t-interval, p and whether the
    interval excludes 0; None under two common seeds."""
    import numpy as np
    from scipy import stats

    common = sorted(set(runs) & set(base_runs))
    if len(common) < 2:
        return None
    out = {"seeds": common}
    for key in ("all", "tail_items", "valid"):
        a, b = np.array([_value(runs[s], key) for s in common]), np.array([_value(base_runs[s], key) for s in common])
        d = a - b
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        p = float(stats.ttest_rel(a, b).pvalue) if d.std() > 0 else 0.0
        out[key] = {"diff": float(d.mean()), "low": float(d.mean() - half), "high": float(d.mean() + half),
                    "per_seed": d.tolist(), "p": p, "exceeds_spread": bool(d.mean() - half > 0 or d.mean() + half < 0)}
    return out

