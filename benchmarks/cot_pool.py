"""LLM-CF's chain-of-thought pool at the paper's size: a CoT for 10% of ml-100k's CTR train rows (8036), written
resumably, one JSONL line per finished row.

    python benchmarks/cot_pool.py                          # generate the missing rows (CPU: hours; resumable)
    python benchmarks/cot_pool.py --limit 200              # at most 200 more rows this time
    python benchmarks/cot_pool.py --device cuda --batch 256  # on a GPU (float32: the same keys as a CPU run)
    python benchmarks/cot_pool.py --status                 # how many rows are done
    python benchmarks/cot_pool.py --runs                   # the stored generation runs: rows per minute per device

Rows: a seeded uniform sample (seed 0) of the train rows (``llmcf_offline.sample_rows``), the official prompt's
four points (``cot_prompt``), written by RecGen (SmolLM2 + the LoRA adapter ``recgen(mix="mixed", seed=0)``,
merged into the weights for speed), greedy with no 4-gram of a reply repeated in it (``text.generate.NoRepeatInReply``; plain greedy loops on one
line until the cap), up to 256 new tokens (the official setting), float32. Each line holds
``key`` (``text.generate.row_key``: the exact prompt, RecGen's identity, the system prompt, 256 tokens, float32,
greedy), ``output`` (the CoT) and the row (user, item, label). Missing rows are generated in a seeded order, so
a cut-off run's rows are a random sample of the pool. The committed file is ``artefacts/llmcf/`` + ``POOL_FILE``
(gzip; ``--compress`` writes it), with ``POOL_META`` (the settings the keys hash); ``llmcf_offline.committed_pool``
reads them and calls no LLM. The first pool was generated on an H200 GPU in float32 (batches of 512, about 2.6 s
per 100 rows), the last rows on this CPU: the keys are the same, the greedy text may differ in rare near-ties.
"""
from __future__ import annotations

import argparse
import copy
import gzip
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = "cot_pool_runs"  # the evidence store's table of generation runs: device, batch, rows, seconds
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    from llmrec_lite.config import add_device_args, apply_device_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="the JSONL the rows are appended to (default: the committed pool's "
                                                "uncompressed twin, artefacts/llmcf/<pool>.jsonl)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--status", action="store_true")
    ap.add_argument("--runs", action="store_true", help="print the stored generation runs (rows per minute) and stop")
    ap.add_argument("--compress", action="store_true", help="write the .gz that is committed from the JSONL")
    add_device_args(ap)
    args = ap.parse_args()
    if args.runs:
        from llmrec_lite import evidence

        if not evidence.rows(RUNS, missing_ok=True):
            raise SystemExit("no generation run stored yet: `python benchmarks/cot_pool.py` stores one as it finishes")
        print(evidence.frame(RUNS).to_string())
        return
    dev = apply_device_args(args)

    import torch

    from llmrec_lite.data import ctr_view, load_dataset
    from llmrec_lite.models import llmcf_offline as off
    from llmrec_lite.text.generate import generate_rows, read_rows

    out = Path(args.out) if args.out else off.ARTEFACTS / off.POOL_FILE.removesuffix(".gz")
    gz = off.ARTEFACTS / off.POOL_FILE
    if not out.is_file() and gz.is_file():  # a fresh clone: resume from the committed rows
        out.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(gz, "rb") as g, open(out, "wb") as f:
            shutil.copyfileobj(g, f)
    view = ctr_view(load_dataset(off.POOL_DATASET))
    rows = off.sample_rows(view, len(view.part("train")) // 10, seed=0)
    if args.status or args.compress:
        done = read_rows(out)
        print(f"{len(done)} of {len(rows)} rows done ({out})")
        if args.compress:
            tmp = gz.with_suffix(".tmp")
            with open(out, "rb") as f, gzip.open(tmp, "wb", compresslevel=9) as g:
                shutil.copyfileobj(f, g)
            tmp.replace(gz)
            print(f"wrote {gz} ({gz.stat().st_size / 1e6:.1f} MB)")
        return
    names = off.item_names(view.dataset)
    prompts = [off.cot_prompt(names, h, hl, i, y) for h, hl, i, y in
               zip(rows["history"], rows["history_label"], rows["item"], rows["label"])]
    rg = off.recgen(view, "smollm2", mix="mixed", seed=0, progress=True)
    ident = off.recgen_identity(rg)
    model = copy.deepcopy(rg.model).merge_and_unload().eval().to(dev, torch.float32)
    extra = [{"user": int(u), "item": int(i), "label": int(y)} for u, i, y in zip(rows["user"], rows["item"], rows["label"])]
    from llmrec_lite.io import save_json

    # what the keys hash, for committed_pool to rebuild them (written first: a cut-off run's rows are readable)
    save_json({"dataset": off.POOL_DATASET, "n": len(rows), "seed": 0, "identity": ident, "system": off.SYSTEM,
               "max_new_tokens": off.POOL_TOKENS, "dtype": "float32", "no_repeat": off.POOL_NO_REPEAT,
               "decoding": "greedy", "recgen": "recgen(view, 'smollm2', mix='mixed', seed=0)",
               "command": "python benchmarks/cot_pool.py"}, off.ARTEFACTS / off.POOL_META)
    t = time.perf_counter()
    before = len(read_rows(out))
    got = generate_rows(prompts, out, system=off.SYSTEM, max_new_tokens=off.POOL_TOKENS, batch_size=args.batch,
                        lm=(rg.tokenizer, model), identity=ident, seed=0, limit=args.limit, extra=extra,
                        no_repeat=off.POOL_NO_REPEAT)
    new = sum(g is not None for g in got) - before
    sec = time.perf_counter() - t
    if new:
        import platform

        from llmrec_lite import evidence

        when = time.strftime("%Y-%m-%d %H:%M")
        env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(dev),
               "machine": platform.machine(), "date": when[:10]}
        if dev.type == "cuda":
            env["gpu"] = torch.cuda.get_device_name(dev)
        row = {"device": str(dev), "batch": args.batch, "new rows": new, "seconds": round(sec, 1),
               "rows per minute": round(60 * new / sec, 1), "max new tokens": off.POOL_TOKENS}
        evidence.write([evidence.table_row(RUNS, [str(dev), when], row, "python benchmarks/cot_pool.py "
                                           f"--device {dev.type} --batch {args.batch}", {}, env)])
    print(f"{new} new rows in {sec:.0f} s ({sec / max(new, 1):.2f} s/row, {dev}); "
          f"{sum(g is not None for g in got)} of {len(prompts)} done -> {out}")


if __name__ == "__main__":
    main()
