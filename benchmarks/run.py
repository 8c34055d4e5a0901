"""Accuracy and speed benchmark of the baselines against RecBole 1.2.1 on the same protocols.

    python benchmarks/run.py                  # everything below (about 4 hours on 2 CPU cores)
    python benchmarks/run.py --all-seeds      # every job over seeds 2020, 1, 2 (about three times that)
    python benchmarks/run.py --quick          # one seed, ml-100k only
    python benchmarks/run.py --only pop alpharec   # re-run these models, keep the other saved records
    python benchmarks/run.py --only llmesr --exact --datasets amazon-scientific   # that one label, not its variants
    OMP_NUM_THREADS=1 python benchmarks/run.py --datasets amazon-scientific --contended   # beside another job

ml-100k, all ratings implicit, per-user random 80/10/10, full ranking, train (+valid) items masked:
MF-BPR and LightGCN against RecBole 1.2.1's numbers measured on its equivalent setting (seed 2020).
A single random split moves Recall@20 by a few percent, so we report the mean and spread over
several split seeds next to the seed-2020 run. SASRec: leave-one-out by time, full ranking.
Writes each run into the evidence store (benchmarks/evidence.jsonl, one record per label, dataset, split and seed,
replacing the same run and keeping every other), then benchmarks/RESULTS.md and docs/benchmarks.md's cross-dataset block,
and prints the markdown table. `--render` only re-renders them from the store.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec_lite import evidence  # noqa: E402
from llmrec_lite.evidence import label  # noqa: E402  (model, or its benchmark label)
from llmrec_lite.experiment import run  # noqa: E402
from llmrec_lite.io import replace_block  # noqa: E402
from llmrec_lite.leaderboard import CONTRASTS, contrasts  # noqa: E402
from llmrec_lite.models import MODELS  # noqa: E402


def _recbole() -> dict:
    """RecBole 1.2.1's numbers on ml-100k (the store's ``reference`` table): {model: {metric: value}}."""
    try:
        return {r["key"]: {k: v for k, v in r["row"].items() if "@" in k} for r in evidence.rows("reference")}
    except (FileNotFoundError, KeyError):
        return {}


RECBOLE = _recbole()  # RecBole 1.2.1, ml-100k, RS 8:1:1, full ranking, seed 2020 (measured on this project's machines)
RECBOLE_SASREC_SECONDS_PER_EPOCH = 181.0  # one sample per prefix; measured here on ml-100k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="seed 2020 only, ml-100k only")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2020, 1, 2])
    ap.add_argument("--store", type=Path, default=None, help="the evidence store (default benchmarks/evidence.jsonl)")
    ap.add_argument("--render", action="store_true", help="re-render RESULTS.md and docs/benchmarks.md's block from the store")
    ap.add_argument("--only", nargs="+", default=None, metavar="MODEL",
                    help="run only these models (and their variants: `llmesr` includes `llmesr-alpha0`); every other "
                         "stored run is kept")
    ap.add_argument("--exact", action="store_true",
                    help="with --only: run exactly these job labels, not the variants of a model name")
    ap.add_argument("--datasets", nargs="+", default=None, help="only jobs on these datasets")
    ap.add_argument("--all-seeds", action="store_true",
                    help="run every job over all --seeds (default: the seeds only for MF / LightGCN on ml-100k)")
    ap.add_argument("--contended", action="store_true",
                    help="these runs share the machine with another job: mark them timing_contended (times not shown as a cost)")
    args = ap.parse_args()
    if args.render:
        write_markdown(ordered(evidence.runs(args.store)), args.store)
        return
    seeds = [2020] if args.quick else args.seeds
    jobs = [("pop", "ml-100k", [2020])] + [(m, "ml-100k", seeds) for m in ("mf", "lightgcn")] + [("sasrec", "ml-100k", [2020])]
    # every registered paper model (and its variants / controls below), from the model registry
    paper = [n for n, spec in MODELS.items() if spec.paper and spec.task == "ranking" and n not in VARIANTS]
    paper += [f"{n}:random" for n in paper if n == "alpharec-linear"] + list(VARIANTS)
    jobs += [(m, "ml-100k", [2020]) for m in paper]
    jobs += [(m, "ml-100k", [2020]) for m in CTR_MODELS]
    if not args.quick:
        for dataset in ("amazon-pantry", "amazon-scientific"):
            jobs += [(m, dataset, [2020]) for m in ["pop", "mf", "lightgcn", "sasrec"] + paper if not m.endswith("smollm2")]
    if args.all_seeds:  # every job over every seed (mean ± std everywhere; several times the CPU time)
        jobs = [(m, d, seeds) for m, d, _ in jobs]
    jobs = select(jobs, args.only, args.datasets, exact=args.exact)
    if not jobs:
        ap.error(f"no benchmark job for --only {args.only} --datasets {args.datasets}")
    for model, dataset, ss in jobs:
        for seed in ss:
            t = time.perf_counter()
            name, overrides = resolve(model)
            rec = run(name, dataset, seed=seed, progress=False, retrain=True, **overrides)  # recompute; notebooks then load it
            if args.contended:
                rec["timing_contended"] = True
            m = rec["metrics"]
            if rec.get("task") == "ctr":
                print(f"{model:9s} {dataset:14s} seed {seed:5d}: AUC {m['auc']:.4f} LogLoss {m['logloss']:.4f} | "
                      f"{rec['epochs']} ep, {rec['seconds_per_epoch']:.2f} s/ep, {time.perf_counter() - t:.0f} s", flush=True)
            else:
                print(f"{model:9s} {dataset:14s} seed {seed:5d}: R@20 {m['recall@20']:.4f} N@20 {m['ndcg@20']:.4f} "
                      f"HR@10 {m['hr@10']:.4f} N@10 {m['ndcg@10']:.4f} | {rec['epochs']} ep, "
                      f"{rec['seconds_per_epoch']:.2f} s/ep, {time.perf_counter() - t:.0f} s", flush=True)
            evidence.write([evidence.as_run(rec, model)], args.store)  # a cut-off run keeps what it finished
    write_markdown(ordered(evidence.runs(args.store)), args.store)
    print(f"wrote {evidence.path(args.store)}")


NOTES = """
Protocol. All ratings are implicit positives. `random`: per user, shuffle and cut 80/10/10 (RecBole's
`RS: [0.8, 0.1, 0.1]`, `group_by: user`); `loo`: per user, by time, last item = test, second last = valid.
Full ranking over all items with the user's train (and at test time valid) items masked; metrics averaged
over users with a test item. Early stopping reads validation only (Recall@20 for MF/LightGCN, patience 50;
NDCG@10 for SASRec, patience 20). MF-BPR and LightGCN use RecBole's defaults: 64-d, Adam 1e-3, batch 2048,
one uniform negative per positive; LightGCN 2 layers, L2 1e-5. SASRec: 2 layers, 2 heads, 64-d, dropout 0.2,
max length 50, full-softmax cross-entropy at every position, one pass per user sequence per epoch.

Reading the RecBole column. RecBole's numbers are one run on one random split (seed 2020). Our own seed-2020
split is a different random draw; split-to-split spread is of the same size as the gap (see ± = standard
deviation over split seeds 2020, 1, 2, each also seeding the model), so the mean over seeds is the fair
comparison. {recbole_sentence}

AlphaRec (`alpharec`): centred MiniLM title embeddings (frozen), users = mean of their train items, MLP
384->192->64, 2 graph-convolution layers, cosine InfoNCE (tau 0.15, 256 uniform negatives shared by the batch, each
masked where it is one of the row's user's train items), an epoch = as many samples as train interactions taken
user by user in turn (the official trainer), Adam 5e-4, batch 4096, patience 30 on validation Recall@20.
`alpharec-linear`: the paper's linear-mapping probe (one bias-free 384x64 matrix, same loss).
`alpharec-linear:random`: the same probe on random unit vectors of the same width: the control that separates what
the language space contributes from what "user = mean of item vectors" already does. AlphaRec runs vary by about
+-0.005 Recall@20 from run to run (the summation order of multi-threaded kernels, which follows memory alignment:
with one thread two runs of 4 ml-100k epochs were bit-identical; everything else is seeded).

Sequential models (`sasrec`, `llmesr`, `pad`, `id-text-concat`): one SASRec (N(0, 0.02) item table, chosen on
validation over xavier, see SEEDS.md; the shared causal encoder, negatives never in the user's train sequence, BCE = mean over positives + mean over
negatives as the official LLM-ESR / PAD code). Their headline numbers over five model seeds, with paired
differences and whether a gain exceeds the seed spread, are in `SEEDS.md` (`python benchmarks/seeds.py`): at one
seed the spread between training runs is as large as most claimed gains.

Seed-2020 rows of `sasrec-bce`, `llmesr` and `pad` are the seed-2020 runs of `benchmarks/seeds.py` (one record in
the store for each run).

Molar (`molar`, `molar-content`, `molar-early`): MIRM item vectors = SmolLM2's mean-pooled layer 15 over each
item's attribute prompt (64 tokens; the base LM: notebook 04 also fine-tunes it), DUEG = SmolLM2's pre-trained
layer 0 over them (learning rate 1e-3; both chosen on amazon-scientific validation, `benchmarks/molar_sweep.py`),
64-d scoring head, BCE with one negative per position, SASRec's trainer
settings (patience 20; notebook 04 uses 5). `molar` is the paper's post-alignment: stage "id" trains the project's
SASRec-BCE (its seconds are counted), stage "content" freezes it and adds lambda 0.1 x in-batch InfoNCE (tau 0.1)
between each content user embedding and the same user's SASRec embedding; only the content model scores at test.
`molar-content`: DUEG alone; `molar-early`: a trainable ID table added at DUEG's input (the early fusion the paper
argues against).

CTR (`din`): Deep Interest Network over item-ID embeddings of the 20 behaviours rated strictly before each row
(attention MLP 80-40 with sigmoid, Dice MLP 200-80, 32-d, as the original DIN code), BCE, Adam 1e-3, batch 2048,
early stopping on validation AUC (patience 5). {din_sentence}

{stale_sentence}
amazon-pantry: 336 of 12871 leave-one-out test targets (2.6%) repeat an item already in the user's history;
as in RecBole, history items are masked, so these count as misses. `tail-item R@20` = Recall@20 on test items
outside the top 20% by train popularity. s/epoch = one training pass, validation excluded, with
the run's `threads` ("?": an older record that did not store it); "— (contended)": a run trained beside other jobs
(its record says `timing_contended`, set by `--contended`), whose time is not a cost.
"""


CTR_MODELS = [n for n, spec in MODELS.items() if spec.task == "ctr"]  # on the click-through view


def ordered(records: list[dict]) -> list[dict]:
    order = (["pop", "mf", "lightgcn", "sasrec", "alpharec-linear:random", "alpharec-linear", "alpharec"] + list(VARIANTS)
             + ["id-text-concat", "pad"] + CTR_MODELS)
    return sorted(records, key=lambda r: (r["dataset"] != "ml-100k", r["dataset"],
                                          order.index(label(r)) if label(r) in order else 99))


def select(jobs: list[tuple], only: list[str] | None, datasets: list[str] | None, exact: bool = False) -> list[tuple]:
    """The (label, dataset, seeds) jobs that --only / --datasets keep. A model name in ``only`` keeps its variants
    (``llmesr`` -> ``llmesr``, ``llmesr-alpha0``, ...; ``alpharec-linear`` -> its ``:random`` control too) unless
    ``exact``, which keeps the named labels alone."""
    if only:
        jobs = [j for j in jobs if j[0] in only or (not exact and resolve(j[0])[0] in only)]
    if datasets:
        jobs = [j for j in jobs if j[1] in datasets]
    return jobs


VARIANTS = {  # benchmark label: (model, overrides) for runs that differ from a model's defaults
    "sasrec-bce": ("sasrec", {"loss_type": "bce"}),
    "llmesr": ("llmesr", {}),
    "llmesr-alpha0": ("llmesr", {"distill": False}),
    "llmesr-ce-alpha0": ("llmesr", {"distill": False, "loss_type": "ce"}),
    "llmesr-alpha0-smollm2": ("llmesr", {"distill": False, "encoder": "smollm2",  # ml-100k only
                                         "encoder_kwargs": {"pooling": "mean", "layer": 15, "center": True}}),
    "molar": ("molar", {}),  # post-alignment (the paper's), base MIRM vectors
    "molar-content": ("molar", {"fusion": "none"}),  # DUEG alone: content only
    "molar-early": ("molar", {"fusion": "early"}),  # ID embeddings added at DUEG's input
}


def resolve(job: str) -> tuple[str, dict]:
    """A job label -> (model name, overrides): a VARIANTS entry, or model[:encoder]."""
    if job in VARIANTS:
        return VARIANTS[job][0], dict(VARIANTS[job][1])
    name, _, encoder = job.partition(":")
    return name, ({"encoder": encoder} if encoder else {})


def write_markdown(records: list[dict], store: Path | None = None) -> None:
    """RESULTS.md and docs/benchmarks.md's cross-dataset block from the stored ``records``."""
    across = across_datasets(records)
    if across:
        replace_block(HERE.parent / "docs" / "benchmarks.md", "BENCH", across)
    ctr = [r for r in records if r.get("task") == "ctr"]
    md = table([r for r in records if r.get("task") != "ctr"]) + ("\n\nCTR (click-through view: label = rating >= 4, "
                                                                  "behaviours = the 20 items rated strictly earlier; "
                                                                  "per user by time 80/10/10):\n\n" + ctr_table(ctr) if ctr else "")
    print("\n" + md)
    (HERE / "RESULTS.md").write_text(
        "# Benchmark results\n\nRendered by `python benchmarks/run.py --render` from the evidence store "
        "(`benchmarks/evidence.jsonl`; each row's recompute command is stored with it). Each run's CPU threads are in "
        "the `threads` column, and a run was timed alone on the machine unless its s/epoch says contended.\n\n"
        + md + "\n" + notes(records))


ACROSS = ("ml-100k", "amazon-pantry", "amazon-scientific")
ROW_NAMES = {"mf": "MF-BPR", "lightgcn": "LightGCN", "alpharec-linear:random": "linear probe, random vectors",
             "alpharec-linear": "linear probe, MiniLM", "alpharec": "AlphaRec", "sasrec-bce": "SASRec-BCE",
             "pad": "PAD", "llmesr": "LLM-ESR", "llmesr-alpha0": "LLM-ESR, α = 0", "id-text-concat": "ID + text concat",
             "sasrec": "SASRec-CE", "llmesr-ce-alpha0": "LLM-ESR-CE, α = 0"}
ALPHAREC_ROWS = ("mf", "lightgcn", "alpharec-linear:random", "alpharec-linear", "alpharec")
SEQUENTIAL_ROWS = ("sasrec-bce", "pad", "llmesr", "llmesr-alpha0", "id-text-concat", "sasrec", "llmesr-ce-alpha0")


def _cell(rs: list[dict], keys: tuple[str, ...], tail: str) -> str:
    """`m ± s / m (t) [n]`: ``_stat`` of the first metric in ``keys``, the means over ``rs`` of the others, the
    tail-item mean of ``tail`` in brackets, and the number of runs."""
    if not rs:
        return "–"
    rest = "".join(f" / {statistics.mean(r['metrics'][k] for r in rs):.4f}" for k in keys[1:])
    t = statistics.mean(r["metrics"]["by_group"]["tail_items"][tail] for r in rs)
    return f"{_stat(rs, keys[0])}{rest} ({t:.4f}) [{len(rs)}]"


def across_datasets(records: list[dict]) -> str:
    """docs/benchmarks.md's cross-dataset block: AlphaRec and its baselines (random split), the sequential models
    (leave-one-out), and the paired seed-by-seed contrasts, on every dataset in ACROSS; each cell the mean over the
    seeds stored for it ([n]), ± the std over them where n > 1. Empty when no record is on those datasets."""
    datasets = [d for d in ACROSS if any(r["dataset"] == d for r in records)]
    if not datasets:
        return ""

    ranking = [r for r in records if r.get("task") != "ctr" and not r.get("stale")]

    def row(lab, split, keys, tail):
        runs = [[r for r in ranking if label(r) == lab and r["dataset"] == d and r["split"] == split] for d in datasets]
        return f"| {ROW_NAMES[lab]} (`{lab}`) | " + " | ".join(_cell(rs, keys, tail) for rs in runs) + " |"

    head = "| " + " | ".join(datasets) + " |"
    rule = "|---|" + "---|" * len(datasets)
    lines = ["| random 80/10/10, Recall@20 ± std / NDCG@20 (tail-item R@20) [seeds] " + head, rule]
    lines += [row(lab, "random", ("recall@20", "ndcg@20"), "recall@20") for lab in ALPHAREC_ROWS]
    lines += ["", "| leave-one-out, NDCG@10 ± std (tail-item N@10) [seeds] " + head, rule]
    lines += [row(lab, "loo", ("ndcg@10",), "ndcg@10") for lab in SEQUENTIAL_ROWS]
    lines += ["", "| paired over the seeds both have: gain [95% interval] (seeds) " + head, rule]
    paired = {(g["comparison"], g["dataset"]): g for g in contrasts(records, datasets).to_dict("records")}
    for model, base, metric in CONTRASTS:
        cells = []
        for d in datasets:
            g = paired.get((f"{model} − {base}", d))
            interval = f" [{g['low']:+.4f}, {g['high']:+.4f}]" if g and g["n"] > 1 else ""
            cells.append(f"{g['gain']:+.4f}{interval} ({g['n']})" if g else "–")
        lines.append(f"| {ROW_NAMES[model]} − {ROW_NAMES[base]}, {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(records: list[dict]) -> str:
    """NOTES with its sentences about the numbers rendered from ``records`` (never fixed strings)."""
    gaps, first = [], []
    for model in RECBOLE:
        rs = [r for r in records if label(r) == model and r["dataset"] == "ml-100k" and r["split"] == "random"]
        for key in RECBOLE[model]:
            if rs:
                gaps.append(statistics.mean(r["metrics"][key] for r in rs) / RECBOLE[model][key] - 1)
                first += [r["metrics"][key] / RECBOLE[model][key] - 1 for r in rs if r["seed"] == 2020]
    recbole = (f"Over MF-BPR's and LightGCN's Recall@20 and NDCG@20, the mean over seeds is within "
               f"{max(abs(g) for g in gaps):.1%} of RecBole" + (f" and the single seed-2020 draw within "
               f"{min(abs(g) for g in first):.1%}-{max(abs(g) for g in first):.1%}." if first else ".")) if gaps else \
        "(no MF-BPR / LightGCN run on ml-100k in this results file)"
    din = [r for r in records if label(r) == "din" and r["dataset"] == "ml-100k"]
    din_sentence = (f"Its best validation epoch is {', '.join(str(r['best_epoch']) for r in din)} of "
                    f"{', '.join(str(r['epochs']) for r in din)} trained (seed{'s' if len(din) > 1 else ''} "
                    f"{', '.join(str(r['seed']) for r in din)}): IDs of a time-split ml-100k carry little beyond the "
                    "user's and item's base rates, and it overfits soon after.") if din else "(no DIN run in this results file)"
    stale = sorted({f"{label(r)} ({r['dataset']})" for r in records if r.get("stale")})
    stale_sentence = ("† Rows marked † (" + ", ".join(stale) + ") were measured before issue 10's fidelity fixes "
                      "(official BCE scale, negatives that exclude the user's sequence, one SASRec with a N(0, 0.02) item "
                      "table, LLM-ESR's fixed teachers and official cross-attention roles, PAD's concat fusion / "
                      "all-trainable stage 3 / official gate start, AlphaRec's user-by-user sampler and masked negatives) "
                      "and have not been re-run since; refresh them with `python benchmarks/run.py --only <model>`.\n"
                      if stale else "Every row was measured with issue 10's fidelity fixes in place.\n")
    return NOTES.format(recbole_sentence=recbole, din_sentence=din_sentence, stale_sentence=stale_sentence)


def _stat(rs: list[dict], key: str, group: str | None = None) -> str:
    vals = [(r["metrics"]["by_group"][group] if group else r["metrics"])[key] for r in rs]
    return f"{statistics.mean(vals):.4f}" + (f" ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else "")


def _vs_recbole(rs: list[dict], model: str, key: str) -> str:
    mean = statistics.mean(r["metrics"][key] for r in rs)
    first = next(r for r in rs if r["seed"] == 2020)["metrics"][key]
    return f"{mean / RECBOLE[model][key] - 1:+.1%} (seed 2020: {first / RECBOLE[model][key] - 1:+.1%})"


def ctr_table(records: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((label(r), r["dataset"]), []).append(r)
    lines = ["| model | dataset | seeds | test rows | AUC | LogLoss | tail-user AUC | head-user AUC | tail-item AUC | head-item AUC | epochs | s/epoch | threads |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, dataset), rs in groups.items():
        lines.append(f"| {model} | {dataset} | {len(rs)} | {rs[0]['n_test_examples']} | {_stat(rs, 'auc')} | {_stat(rs, 'logloss')} | "
                     f"{_stat(rs, 'auc', 'tail_users')} | {_stat(rs, 'auc', 'head_users')} | {_stat(rs, 'auc', 'tail_items')} | "
                     f"{_stat(rs, 'auc', 'head_items')} | {statistics.mean(r['epochs'] for r in rs):.0f} | "
                     f"{statistics.mean(r['seconds_per_epoch'] for r in rs):.2f} | {threads(rs)} |")
    return "\n".join(lines)


def threads(rs: list[dict]) -> str:
    """The CPU threads the runs trained with (older records did not store it: "?")."""
    return "/".join(sorted({str(r.get("environment", {}).get("threads", "?")) for r in rs}))


def table(records: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((label(r), r["dataset"], r["split"]), []).append(r)
    lines = ["| model | dataset | split | seeds | Recall@20 | NDCG@20 | HR@10 | NDCG@10 | tail-user N@10 | tail-item N@10 | tail-item R@20 | epochs | s/epoch | threads | vs RecBole (R@20 / N@20) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, dataset, split), rs in groups.items():
        ref = "† measured before the issue-10 fixes, see below" if any(r.get("stale") for r in rs) else ""
        if dataset == "ml-100k" and model in RECBOLE and not ref:
            ref = f"{_vs_recbole(rs, model, 'recall@20')} / {_vs_recbole(rs, model, 'ndcg@20')}"
        if model == "sasrec" and dataset == "ml-100k" and not ref:
            ref = f"RecBole SASRec: {RECBOLE_SASREC_SECONDS_PER_EPOCH:.0f} s/epoch"
        epochs = statistics.mean(r["epochs"] for r in rs)
        timed = [r["seconds_per_epoch"] for r in rs if not r.get("timing_contended")]  # see timing_contended
        spe = f"{statistics.mean(timed):.2f}" if timed else "— (contended)"
        lines.append(f"| {model}{' †' if ref.startswith('†') else ''} | {dataset} | {split} | {len(rs)} | {_stat(rs, 'recall@20')} | {_stat(rs, 'ndcg@20')} | "
                     f"{_stat(rs, 'hr@10')} | {_stat(rs, 'ndcg@10')} | {_stat(rs, 'ndcg@10', 'tail_users')} | "
                     f"{_stat(rs, 'ndcg@10', 'tail_items')} | {_stat(rs, 'recall@20', 'tail_items')} | {epochs:.0f} | {spe} | {threads(rs)} | {ref} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
