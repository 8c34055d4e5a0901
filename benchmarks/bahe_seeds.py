"""BAHE against token level over model seeds, on the same click-through rows (notebook 05's comparison).

    python benchmarks/bahe_seeds.py                     # every row, seeds 2020 1 2 (about 1 h 15 min on 2 CPU cores, alone)
    python benchmarks/bahe_seeds.py --seeds 2020        # one seed
    python benchmarks/bahe_seeds.py --report            # print the stored rows and the paired gains

The rows are a fixed sample of the ml-100k click-through view (M = 20 behaviours per row; 1600 train, 300 valid,
1200 test rows drawn with seed 2020, the same for every model seed), SmolLM2 cut at layer 4 (layers 0-3 frozen,
4-5 trainable), 24 tokens per behaviour, two epochs of batches of 16, validation AUC picks the epoch. Only the
model seed varies between seeds: initial weights, dropout, batch order (and the random control's table).

Rows (labels in the evidence store's ``runs``, split "ctr"):

- ``bahe-token-mean`` / ``bahe-token-skip``: token level, its target item read from a table pooled by the plain
  mean / with the first token left out. Both at seed 2020; the one with the higher validation AUC is the baseline
  and gets the other seeds (BAHE's pooling never enters it);
- ``bahe-paper``: BAHE as the paper describes it (plain mean, no sink input);
- ``bahe-s``: BAHE + S, our addition (the lower layers' mean first-token state read before the behaviours);
- ``bahe-s-random``: BAHE + S with a random behaviour table (seeded by the model seed, at the LM table's scale).

Each finished run is written to ``benchmarks/evidence.jsonl`` at once, with its test probabilities (table
``bahe_test_predictions``: notebook 05 pairs its live BAHE with the stored token level over the same test users) (a cut-off run keeps the others; a stored
(label, seed) is skipped). ``--report`` gives each model's mean over seeds and its gain over the baseline paired
by seed with a 95% t-interval (``leaderboard.seed_gain``). Run it alone: another torch process on the same cores
distorts the times many-fold.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from llmrec_lite.explore.bahe import COMPARISON, comparison_view  # noqa: E402  (notebook 05 reads the same)

DATASET = COMPARISON["dataset"]
ROW_SEED = COMPARISON["row_seed"]
SEEDS = (2020, 1, 2)
LM, TRAIN = COMPARISON["lm"], COMPARISON["train"]
TOKEN = {"bahe-token-mean": dict(encoding="token", target_pooling="mean"),
         "bahe-token-skip": dict(encoding="token", target_pooling="mean_skip_first")}
MODELS = {"bahe-paper": dict(encoding="atomic", sink=False),
          "bahe-s": dict(encoding="atomic", sink=True),
          "bahe-s-random": dict(encoding="atomic", sink=True, atomic="random")}
NAMES = {"bahe-token-mean": "token level (target: plain mean)", "bahe-token-skip": "token level (target: first token skipped)",
         "bahe-paper": "BAHE (paper)", "bahe-s": "BAHE + S (ours)", "bahe-s-random": "BAHE + S, random table"}


PREDICTIONS = "bahe_test_predictions"


def command(label: str, seed: int) -> str:
    return f"python benchmarks/bahe_seeds.py --only {label} --seeds {seed}"


def stored(records: list[dict] | None = None) -> list[dict]:
    """The store's runs of this comparison."""
    from llmrec_lite import evidence

    records = evidence.runs() if records is None else records
    return [r for r in records if r.get("split") == "ctr" and r.get("label") in NAMES and r["dataset"] == DATASET
            and not r.get("superseded")]


def baseline(records: list[dict]) -> str | None:
    """The token-level row validation picks at seed 2020 (None until both are stored)."""
    valid = {r["label"]: r["best_valid"] for r in records if r["label"] in TOKEN and r["seed"] == ROW_SEED}
    return max(valid, key=valid.get) if len(valid) == len(TOKEN) else None


def settings(label: str, seed: int) -> dict:
    kw = LM | TRAIN | (TOKEN | MODELS)[label]
    if kw.get("atomic") == "random":
        kw["atomic_seed"] = seed
    return kw


def run(labels: list[str], seeds: list[int]) -> None:
    from llmrec_lite import evidence
    from llmrec_lite.experiment import train_and_test
    from llmrec_lite.verdicts import write_docs

    split = None
    for seed in seeds:
        for label in labels:
            recs = stored()
            if any(r["label"] == label and r["seed"] == seed for r in recs):
                continue
            if label in TOKEN and seed != ROW_SEED and baseline(recs) not in (None, label):
                continue  # the other target pooling lost on validation: seed 2020 only
            if label in TOKEN and seed != ROW_SEED and baseline(recs) is None:
                raise SystemExit(f"{label}, seed {seed}: run both token-level rows at seed {ROW_SEED} first "
                                 f"(validation picks the baseline's target pooling there)")
            split = split or comparison_view()
            _, res, rec = train_and_test("bahe", split, seed=seed, progress=False, **settings(label, seed))
            rec["rows"] = COMPARISON["rows"] | {"row_seed": ROW_SEED, "history": COMPARISON["history"]}
            evidence.write([evidence.as_run(rec, label, command(label, seed)),
                            evidence.table_row(PREDICTIONS, [label, seed], evidence.ctr_predictions(res.test_rows),
                                               command(label, seed), rec["rows"])])
            write_docs()  # the README's verdicts follow the store
            print(f"{NAMES[label]:42s} seed {seed:5d}: test AUC {rec['metrics']['auc']:.4f}  valid {rec['best_valid']:.4f}  "
                  f"{rec['seconds_per_train_step']:.3f} s/step  trained in {rec['train_seconds']:.0f} s", flush=True)


def report(records: list[dict] | None = None) -> str:
    """Markdown: mean ± std over seeds per row, then each BAHE row minus the baseline, paired by seed."""
    import statistics

    from llmrec_lite.leaderboard import seed_gain

    recs = stored(records)
    base = baseline(recs)
    lines = ["| row | seeds | valid AUC | test AUC |", "|---|---|---|---|"]
    for label in NAMES:
        mine = sorted((r for r in recs if r["label"] == label), key=lambda r: r["seed"])
        if not mine:
            continue
        fmt = lambda xs: f"{statistics.mean(xs):.4f}" + (f" ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else "")
        lines.append(f"| {NAMES[label]}{' (baseline)' if label == base else ''} | {len(mine)} | "
                     f"{fmt([r['best_valid'] for r in mine])} | {fmt([r['metrics']['auc'] for r in mine])} |")
    if base:
        lines += ["", "| gain in test AUC | seeds | mean [95% over seeds] |", "|---|---|---|"]
        for a, b in (("bahe-paper", base), ("bahe-s", base), ("bahe-s", "bahe-paper"), ("bahe-s", "bahe-s-random")):
            try:
                g = seed_gain(recs, a, b, DATASET, metric="auc")
            except ValueError:
                continue
            lines.append(f"| {NAMES[a]} − {NAMES[b]} | {g['n']} | {g['gain']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}] |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", default=None, metavar="LABEL", help=f"some of: {', '.join(NAMES)}")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--report", action="store_true", help="print the stored rows and gains and stop")
    args = ap.parse_args()
    for lab in args.only or []:
        if lab not in NAMES:
            raise SystemExit(f"unknown row {lab!r}; valid: {', '.join(NAMES)}")
    if not args.report:
        run(args.only or list(NAMES), args.seeds)
    print(report())


if __name__ == "__main__":
    main()
