"""The verdict table: one row per paper, its central claim, what we measured over training seeds and a verdict
word, rendered from the evidence store (never typed).

    python -m llmrec_lite verdicts            # print the table
    python -m llmrec_lite verdicts --write    # and write it into the README (its VERDICTS block), with the cost
                                              # tables of docs/benchmarks.md

Each claim is a paired gain, model − baseline, seed by seed on the same split (``leaderboard.seed_gain``: mean and
95% t-interval over the seeds both have), on one or more datasets. On one dataset the claim *holds* when the
interval lies above ``bar`` (0 for "beats"; a small negative number for "matches": BAHE's parity claim), is
*reversed* when it lies below it and *unclear* when it holds the bar. Over datasets: **holds** (every dataset),
**does not hold here** (none), **partly** (some); **pending** while a dataset has fewer than ``MIN_SEEDS`` seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_SEEDS = 3
SHORT = {"ml-100k": "ml-100k", "amazon-pantry": "pantry", "amazon-scientific": "scientific"}
THREE = ("ml-100k", "amazon-pantry", "amazon-scientific")


@dataclass(frozen=True)
class Claim:
    paper: str
    notebook: str
    claim: str                       # the paper's claim in a few words
    model: str                       # evidence-store labels
    baseline: tuple[str, ...]        # candidates: the one with the most seeds (then the best validation) is used
    metric: str
    datasets: tuple[str, ...]
    group: str | None = None         # e.g. "tail_items"
    bar: float = 0.0
    cost: tuple | None = None        # (table, key, column, words): a measured cost shown beside the gain


CLAIMS = (
    Claim("AlphaRec", "01_alpharec.ipynb", "Frozen LM item vectors, mapped without any ID embedding, beat ID-based CF (LightGCN)",
          "alpharec", ("lightgcn",), "recall@20", THREE),
    Claim("LLM-ESR", "02_llm_esr.ipynb", "LLM embeddings lift long-tail items in sequential recommendation",
          "llmesr", ("sasrec-bce",), "ndcg@10", THREE, group="tail_items"),
    Claim("PAD", "03_pad.ipynb", "Aligned and disentangled LLM embeddings beat the ID model (SASRec)",
          "pad", ("sasrec-bce",), "ndcg@10", THREE),
    Claim("Molar", "04_molar.ipynb", "Aligning content and ID users after training beats early fusion",
          "molar", ("molar-early",), "ndcg@10", ("amazon-scientific", "ml-100k")),
    Claim("BAHE", "05_bahe.ipynb", "Encoding each behaviour once keeps token-level AUC at a fraction of the cost",
          "bahe-paper", ("bahe-token-mean", "bahe-token-skip"), "auc", ("ml-100k",), bar=-0.01,
          cost=("bahe_cost", ["ml-100k", 20], "speed-up", "x faster training step (M = 20)")),
    Claim("LLM-CF", "06_llm_cf.ipynb", "Retrieved in-context examples with LLM reasoning lift the backbone",
          "llmcf-sasrec", ("llmcf-sasrec-backbone",), "ndcg@10", ("ml-100k",)),
)


def _seeds(records: list[dict], lab: str, dataset: str) -> dict:
    from .evidence import label

    return {r["seed"]: r for r in records if label(r) == lab and r["dataset"] == dataset and not r.get("superseded")}


def _baseline(records: list[dict], c: Claim, dataset: str) -> str:
    def rank(lab):
        runs = _seeds(records, lab, dataset)
        first = runs.get(2020, {}).get("best_valid", float("-inf"))
        return len(runs), first
    return max(c.baseline, key=rank)


def assess(c: Claim, records: list[dict]) -> dict:
    """{"per_dataset": [{dataset, baseline, n, gain, low, high, state}], "verdict", "cost"} for one claim."""
    from .leaderboard import seed_gain

    rows = []
    for d in c.datasets:
        base = _baseline(records, c, d)
        try:
            g = seed_gain(records, c.model, base, d, c.metric, c.group)
        except ValueError:
            g = {"n": 0, "gain": float("nan"), "low": float("nan"), "high": float("nan")}
        if g["n"] < MIN_SEEDS:
            state = "pending"
        elif g["low"] > c.bar:
            state = "holds"
        elif g["high"] < c.bar:
            state = "reversed"
        else:
            state = "unclear"
        rows.append({"dataset": d, "baseline": base, "n": g["n"], "gain": g["gain"], "low": g["low"],
                     "high": g["high"], "state": state})
    states = [r["state"] for r in rows]
    verdict = ("pending" if "pending" in states else "holds" if all(s == "holds" for s in states)
               else "does not hold here" if not any(s == "holds" for s in states) else "partly")
    cost = None
    if c.cost is not None:
        from . import evidence

        table, key, column, words = c.cost
        try:
            got = [r["row"][column] for r in evidence.rows(table) if r["key"] == key]
        except (KeyError, FileNotFoundError):
            got = []
        cost = f"{got[0]:.0f}{words}" if got else None
    return {"per_dataset": rows, "verdict": verdict, "cost": cost}


def _metric_words(c: Claim) -> str:
    """The claim's metric as a reader reads it: "NDCG@10 on tail items", "AUC"."""
    what = c.metric.upper() if c.metric == "auc" else c.metric.replace("ndcg", "NDCG").replace("recall", "Recall")
    return what + (" on tail items" if c.group == "tail_items" else "")


def _measured(c: Claim, a: dict) -> str:
    what = _metric_words(c)
    parts = []
    for r in a["per_dataset"]:
        if r["n"] == 0:
            parts.append(f"{SHORT.get(r['dataset'], r['dataset'])}: not yet run")
        elif r["n"] == 1:
            parts.append(f"{SHORT.get(r['dataset'], r['dataset'])} {r['gain']:+.4f} (1 seed)")
        else:
            parts.append(f"{SHORT.get(r['dataset'], r['dataset'])} {r['gain']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}]"
                         f" ({r['n']})")
    text = f"{what}: " + "; ".join(parts)
    if a["cost"]:
        text += f"; {a['cost']}"
    return text


STATE_WORDS = {"holds": "the gain's interval lies above 0", "reversed": "the interval lies below 0",
               "unclear": "the interval includes 0", "pending": f"fewer than {MIN_SEEDS} seeds stored"}


def notebook_verdict(paper: str, measure: str, records: list[dict] | None = None) -> str:
    """The verdict a paper's notebook opens with (markdown): the claim, ``measure`` (what the notebook measures, in
    words), and the answer with the paired gain per dataset, rendered from ``records`` (default: the store's runs)."""
    from . import evidence

    c = next((c for c in CLAIMS if c.paper == paper), None)
    if c is None:
        raise ValueError(f"no claim for paper {paper!r}; papers: {[c.paper for c in CLAIMS]}")
    if records is None:
        records = evidence.runs()
    a = assess(c, [r for r in records if not r.get("superseded")])
    per = "; ".join(f"{r['dataset']} {r['gain']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] over {r['n']} seeds "
                    f"({STATE_WORDS[r['state']]})" if r["n"] >= 2 else f"{r['dataset']}: {STATE_WORDS['pending']}"
                    for r in a["per_dataset"])
    base = a["per_dataset"][0]["baseline"]
    return (f"**Claim.** {c.claim}.\n\n**What we measure.** {measure}\n\n**Answer: {a['verdict']}.** "
            f"{c.model} − {base}, {_metric_words(c)}, paired by seed (95% t-interval): {per}."
            + (f" Cost: {a['cost']}." if a["cost"] else ""))


def table(records: list[dict] | None = None) -> str:
    """The markdown verdict table from ``records`` (default: the evidence store's runs)."""
    from . import evidence

    records = [r for r in (evidence.runs() if records is None else records) if not r.get("superseded")]
    lines = ["| paper | claim | what we measured: gain over the baseline [95% over seeds] (seeds) | verdict | notebook |",
             "|---|---|---|---|---|"]
    for c in CLAIMS:
        a = assess(c, records)
        base = " / ".join(sorted({r["baseline"] for r in a["per_dataset"]}))
        lines.append(f"| {c.paper} | {c.claim} | {c.model} − {base}, {_measured(c, a)} | **{a['verdict']}** | "
                     f"[{c.notebook}](notebooks/{c.notebook}) |")
    return "\n".join(lines)


def cost_tables() -> dict:
    """{block name: markdown} for docs/benchmarks.md, from the evidence store's measured tables: LMCOST (SmolLM2's
    layers, ``benchmarks/lm_cost.py``) and BAHECOST (BAHE's two encodings, ``benchmarks/bahe_cost.py``)."""
    from . import evidence

    out = {}
    rows = sorted(evidence.rows("lm_cost"), key=lambda r: r["row"]["layers"])
    lines = ["| SmolLM2 layers | forward, s per 1k tokens | forward + backward, s per 1k tokens | measured |",
             "|---|---|---|---|"]
    for r in rows:
        x, env = r["row"], r["environment"]
        lines.append(f"| {x['layers']} | {x['forward_s_per_1k_tokens']:.3f} | {x['forward_backward_s_per_1k_tokens']:.3f} | "
                     f"{env.get('date', r.get('date'))}, {env.get('threads')} threads, `{r['command']}` |")
    out["LMCOST"] = "\n".join(lines)
    rows = sorted(evidence.rows("bahe_cost"), key=lambda r: (r["row"]["dataset"], r["row"]["history"]))
    lines = ["| dataset | M | token s/step | BAHE s/step | speed-up (predicted) | step MB token / BAHE | "
             "inference ms/example token / BAHE |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        x = r["row"]
        mb = (x.get("token step MB", x.get("token peak MB")), x.get("atomic step MB", x.get("atomic peak MB")))
        lines.append(f"| {x['dataset']} | {x['history']} | {x['token s/step']:.2f} | {x['atomic s/step']:.3f} | "
                     f"{x['speed-up']:.1f}x ({x['predicted speed-up']:.1f}x) | {mb[0]:.0f} / {mb[1]:.0f} | "
                     f"{x['token ms/example']:.0f} / {x['atomic ms/example']:.1f} |")
    cmd = rows[0]["command"] if rows else "python benchmarks/bahe_cost.py"
    out["BAHECOST"] = "\n".join(lines) + f"\n\nRecomputed by `{cmd}`."
    return out


def gpu_table() -> str:
    """Markdown: every stored run trained on a CUDA GPU beside the same row's runs on this project's CPU (seconds per
    epoch, the CPU's from runs that did not share the machine), from the evidence store."""
    import statistics

    from . import evidence

    runs = [r for r in evidence.runs() if not r.get("superseded") and r.get("epochs")]
    per_epoch = lambda r: r["train_seconds"] / r["epochs"]
    gpu = sorted((r for r in runs if r.get("environment", {}).get("device") == "cuda"),
                 key=lambda r: (r["dataset"], evidence.label(r), r["seed"]))
    if not gpu:
        return "No run on a GPU is stored yet."
    lines = ["| row | dataset | seed | GPU | epochs | GPU s | GPU s/epoch | CPU s/epoch (runs) | CPU / GPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in gpu:
        cpu = [per_epoch(c) for c in runs if evidence.label(c) == evidence.label(r) and c["dataset"] == r["dataset"]
               and c.get("environment", {}).get("device") == "cpu" and not c["environment"].get("contended")]
        env = r["environment"]
        c = statistics.median(cpu) if cpu else None
        lines.append(f"| {evidence.label(r)} | {r['dataset']} | {r['seed']} | {env.get('gpu', 'CUDA')}, torch {env['torch']} | "
                     f"{r['epochs']} | {r['train_seconds']:.0f} | {per_epoch(r):.3f} | "
                     + (f"{c:.2f} ({len(cpu)}) | {c / per_epoch(r):.0f}x |" if c else "none stored | |"))
    return "\n".join(lines) + "\n\nRecomputed by each row's `python benchmarks/seeds.py run <row> --dataset <d> --seeds <s>` on a GPU."


def write_docs(readme=None, benchmarks=None, gpu=None) -> str:
    """The README's verdict table, docs/benchmarks.md's cost tables and docs/gpu.md's GPU times, from the store."""
    from pathlib import Path

    from .io import replace_block

    root = Path(__file__).resolve().parent.parent
    md = table()
    replace_block(readme or root / "README.md", "VERDICTS", md)
    for name, block in cost_tables().items():
        replace_block(benchmarks or root / "docs" / "benchmarks.md", name, block)
    replace_block(gpu or root / "docs" / "gpu.md", "GPUTIMES", gpu_table())
    return md
