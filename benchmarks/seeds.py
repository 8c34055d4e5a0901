"""Headline comparisons over model seeds: is a paper model's gain over its baseline larger than the spread
between training runs?

    python benchmarks/seeds.py run sasrec-bce llmesr pad --dataset ml-100k        # 5 model seeds each
    python benchmarks/seeds.py report                                             # table + JSON from the runs

Leave-one-out splits do not depend on the seed, so every seed trains on the same split and is evaluated on
the same test users: seed-to-seed differences are pure training noise (initialisation, dropout, negatives,
batch order). ``run`` adds one record per (label, dataset, seed) to the evidence store, ``benchmarks/evidence.jsonl``
(a cut-off run keeps what it finished; a finished triple is skipped when run again). ``report`` writes
``benchmarks/SEEDS.md`` (``leaderboard.seed_summary`` over the store's leave-one-out runs): per label the mean ± std over seeds of test NDCG@10
overall and on tail items (and validation NDCG@10, the number choices were made on), and per paper model the
paired difference to its baseline seed by seed, with a paired t-test across seeds (the gain "exceeds the seed
spread" when its 95% interval excludes zero).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SEEDS = (2020, 1, 2, 3, 4)
JOBS = {  # label: (model, overrides)
    "sasrec-bce": ("sasrec", {"loss_type": "bce"}),
    "sasrec-bce-xavier-init": ("sasrec", {"loss_type": "bce", "init": "xavier"}),
    "llmesr": ("llmesr", {}),
    "llmesr-alpha0": ("llmesr", {"distill": False}),
    "sasrec": ("sasrec", {"loss_type": "ce"}),  # the CE SASRec, the label benchmarks/run.py gives it too
    "llmesr-ce-alpha0": ("llmesr", {"distill": False, "loss_type": "ce"}),  # paired with "sasrec" (the same loss)
    "pad": ("pad", {}),
    "id-text-concat": ("id-text-concat", {}),
    # Molar's comparison: every row reads DUEG's 20-item window, patience 20, at most 400 epochs (molar's defaults)
    "molar-sasrec-bce": ("sasrec", {"loss_type": "bce", "max_len": 20, "epochs": 400}),  # = Molar's teacher (stage "id")
    "molar": ("molar", {}),
    "molar-early": ("molar", {"fusion": "early"}),
    "molar-content": ("molar", {"fusion": "none"}),
    # LLM-CF's sequential comparison: every row reads a 20-item window (the pool rows' history), CE loss, the committed
    # 10% CoT pool; the ICT without its user embedding, so that "+ICT" and the backbone read the same inputs
    "llmcf-sasrec-backbone": ("sasrec", {"loss_type": "ce", "max_len": 20}),
    "llmcf-sasrec": ("llmcf-sasrec", {"ict_user": False}),
    "llmcf-sasrec-random": ("llmcf-sasrec", {"ict_user": False, "retrieval": "random"}),  # random rows, drawn per row
    "llmcf-sasrec-k0": ("llmcf-sasrec", {"ict_user": False, "k": 0}),                     # the ICT with no example
    "llmcf-sasrec-nocot": ("llmcf-sasrec", {"ict_user": False, "cot": False}),            # examples without their CoT
    "llmcf-sasrec-user": ("llmcf-sasrec", {}),                                            # + the ICT's user embedding
    # LLM-CF's CTR comparison (AUC): DIN with a user field (the official DIN input has one), the same pool
    "llmcf-din-backbone": ("din", {"user_field": True}),
    "llmcf-din": ("llmcf-din", {"user_field": True}),
    "llmcf-din-random": ("llmcf-din", {"user_field": True, "retrieval": "random"}),
    "llmcf-din-k0": ("llmcf-din", {"user_field": True, "k": 0}),
    "llmcf-din-nocot": ("llmcf-din", {"user_field": True, "cot": False}),
}


REUSE = {"molar", "molar-early", "molar-content", "molar-sasrec-bce"}


def run_jobs(labels: list[str], dataset: str, seeds: list[int]) -> None:
    from llmrec_lite.experiment import run

    from llmrec_lite import evidence
    from llmrec_lite.verdicts import write_docs

    done = {(evidence.label(r), r["dataset"], r["seed"]) for r in evidence.runs()
            if evidence.label(r) in JOBS and not r.get("superseded")}
    for lab in labels:
        if lab not in JOBS:
            raise SystemExit(f"unknown label {lab!r}; valid: {sorted(JOBS)}")
        model, overrides = JOBS[lab]
        for seed in seeds:
            if (lab, dataset, seed) in done:
                continue
            t = time.perf_counter()
            # Molar's rows may load what the model store holds: its stage "id" is the molar-sasrec-bce run of the same
            # seed (run that label first), and a stored identical run (a validation row) is the same run; a loaded
            # run keeps its original training time and environment in the record
            rec = run(model, dataset, seed=seed, progress=False, retrain=lab not in REUSE, **overrides)
            rec["label"] = lab
            # one record per finished run: a cut-off run keeps the others
            evidence.write([evidence.as_run(rec, lab, f"python benchmarks/seeds.py run {lab} --dataset {dataset} "
                                                     f"--seeds {seed}")])
            write_docs()  # the README's verdicts follow the store
            m = rec["metrics"]
            score = (f"AUC {m['auc']:.4f}" if "auc" in m else
                     f"N@10 {m['ndcg@10']:.4f} tail items {m['by_group']['tail_items']['ndcg@10']:.4f}")
            print(f"{lab:22s} {dataset:13s} seed {seed:5d}: {score} valid {rec['best_valid']:.4f} | {rec['epochs']} ep, "
                  f"{time.perf_counter() - t:.0f} s", flush=True)


def read_log() -> list[dict]:
    """The store's leave-one-out runs of the labels this script knows (the report's tables; CTR rows, AUC, are
    read by the notebooks and the README's verdicts)."""
    from llmrec_lite import evidence

    return [r for r in evidence.runs() if evidence.label(r) in JOBS and r["split"] == "loo"]


def markdown(summary: dict) -> str:
    lines = ["# Headline comparisons over model seeds", "",
             "Produced by `python benchmarks/seeds.py report` from the evidence store (`benchmarks/evidence.jsonl`). Leave-one-out split (the same "
             "for every seed), full ranking, NDCG@10 on test unless marked; mean ± std over model seeds. Gains are paired "
             "by seed (same seed = same split and test users); the interval is the 95% t-interval of the mean paired "
             "difference over seeds, so a gain inside it is within run-to-run spread.", ""]
    for ds, s in summary.items():
        lines += [f"## {ds}", "", "| model | seeds | valid N@10 | test N@10 | tail users | tail items | train s |",
                  "|---|---|---|---|---|---|---|"]
        fmt = lambda d: f"{d['mean']:.4f} ± {d['std']:.4f}"
        for lab, m in sorted(s["models"].items(), key=lambda kv: list(JOBS).index(kv[0]) if kv[0] in JOBS else 99):
            lines.append(f"| {lab} | {len(m['seeds'])} | {fmt(m['valid'])} | {fmt(m['all'])} | {fmt(m['tail_users'])} | "
                         f"{fmt(m['tail_items'])} | {m['train_seconds']:.0f} |")
        if s["gains"]:
            lines += ["", "| model − baseline | seeds | valid N@10 | test N@10 [95% over seeds] | per seed (seed) | tail items | beyond seed spread? |",
                      "|---|---|---|---|---|---|---|"]
            for lab, g in s["gains"].items():
                a, t = g["all"], g["tail_items"]
                lines.append(f"| {lab} − {g['baseline']} | {len(g['seeds'])} | {g['valid']['diff']:+.4f} | "
                             f"{a['diff']:+.4f} [{a['low']:+.4f}, {a['high']:+.4f}] | "
                             f"{', '.join(f'{x:+.4f} ({sd})' for x, sd in zip(a['per_seed'], g['seeds']))} | {t['diff']:+.4f} [{t['low']:+.4f}, {t['high']:+.4f}] | "
                             f"overall {'yes' if a['exceeds_spread'] else 'no'} (p {a['p']:.3f}), "
                             f"tail {'yes' if t['exceeds_spread'] else 'no'} (p {t['p']:.3f}) |")
        lines.append("")
    return "\n".join(lines)


def report() -> dict:
    from llmrec_lite.io import replace_block

    from llmrec_lite.leaderboard import seed_summary

    summary = seed_summary(read_log())
    md = markdown(summary)
    (HERE / "SEEDS.md").write_text(md + "\n")
    if "ml-100k" in summary:  # the ml-100k tables also live in docs/benchmarks.md, between its SEEDS markers
        replace_block(HERE.parent / "docs" / "benchmarks.md", "SEEDS", md.split("## ml-100k\n\n", 1)[1].split("\n## ", 1)[0].strip())
    print(md)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("labels", nargs="+", help=f"any of {sorted(JOBS)}")
    r.add_argument("--dataset", default="ml-100k")
    r.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    sub.add_parser("report")
    args = ap.parse_args()
    if args.cmd == "run":
        run_jobs(args.labels, args.dataset, args.seeds)
    else:
        report()


if __name__ == "__main__":
    main()
