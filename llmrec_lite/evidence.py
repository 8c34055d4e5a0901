"""The evidence store: every number a notebook or the README quotes that is not computed live, in one file of one
schema, each row with the command that recomputes it.

    from llmrec_lite import evidence
    runs = evidence.runs()                          # every stored training run (benchmark, seeds, notebooks' sweeps)
    rows = evidence.rows("bahe_cost")               # a measured table (cost, sweep) as plain rows
    evidence.frame("molar_sweep")                   # ... as a DataFrame, one column per field, plus ``command``

``benchmarks/evidence.jsonl`` holds one JSON object per line. Every line has

- ``table``: ``runs`` (a training run's record as ``experiment.train_and_test`` writes it, with its ``label``) or
  the name of a measured table (``molar_sweep``, ``bahe_cost``, ``cost_growth``, ``lm_cost``, ``reference``);
- ``command``: the one command that recomputes this row (it is printed beside every table a notebook reads);
- ``environment``: where it was measured (package versions, device, threads; runs also CPU seconds and whether
  other jobs shared the machine: ``timing_contended``);
- ``hyperparameters`` (runs) or ``settings`` (tables): what produced it;
- ``date`` where known (rows written before 2026-12-04 did not store it).

A run is identified by (label, dataset, split, seed); a table row by (table, ``key``). Writes replace rows with the
same identity and keep everything else, atomically: a cut-off job loses nothing it finished.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pandas as pd

from .io import atomic_path

STORE = Path(__file__).resolve().parents[1] / "benchmarks" / "evidence.jsonl"
EVIDENCE_ENV = "LLMREC_EVIDENCE"
RUNS = "runs"


def path(store: str | os.PathLike | None = None) -> Path:
    return Path(store or os.environ.get(EVIDENCE_ENV) or STORE)


def label(r: dict) -> str:
    return r.get("label", r["model"])


def identity(r: dict) -> tuple:
    if r["table"] == RUNS:
        return (RUNS, label(r), r["dataset"], r["split"], r["seed"])
    return (r["table"], json.dumps(r.get("key"), sort_keys=True))


def read(store: str | os.PathLike | None = None) -> list[dict]:
    """Every record of the store, in file order. A missing store is an error that says how to make it."""
    p = path(store)
    if not p.is_file():
        raise FileNotFoundError(f"no evidence store at {p}: run `python benchmarks/run.py` (or set {EVIDENCE_ENV})")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            rec["table"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{p}, line {n}, is not an evidence record ({e}); restore the file from git "
                             f"(git checkout {p.name}) and re-run the command that wrote it") from None
        out.append(rec)
    return out


def runs(store: str | os.PathLike | None = None, **where) -> list[dict]:
    """Stored training runs, optionally filtered on top-level fields (``dataset="ml-100k"``, ``label="pad"``)."""
    out = [r for r in read(store) if r["table"] == RUNS]
    for k, v in where.items():
        out = [r for r in out if (label(r) if k == "label" else r.get(k)) == v]
    return out


def rows(table: str, store: str | os.PathLike | None = None, missing_ok: bool = False) -> list[dict]:
    """The records of one measured table (each with ``row``, ``key``, ``settings``, ``environment``, ``command``);
    a table with no row is an error naming the tables there are (``missing_ok``: an empty list)."""
    out = [r for r in read(store) if r["table"] == table]
    if not out and not missing_ok:
        tables = sorted({r["table"] for r in read(store)})
        raise KeyError(f"the evidence store has no table {table!r}; tables: {tables}")
    return out


def frame(table: str, store: str | os.PathLike | None = None) -> pd.DataFrame:
    """A measured table as a DataFrame: the fields of each ``row``, then ``command``."""
    return pd.DataFrame([r["row"] | {"command": r["command"]} for r in rows(table, store)])


def run_command(r: dict) -> str:
    """The command that recomputes a stored run (the benchmark job of its label, dataset and seed)."""
    return (f"python benchmarks/run.py --only {label(r)} --exact --datasets {r['dataset']} --all-seeds "
            f"--seeds {r['seed']}")


def as_run(record: dict, lab: str | None = None, command: str | None = None) -> dict:
    """A train_and_test record as a store row: ``table``, ``label``, ``command`` and the date added."""
    r = {"table": RUNS, **record}
    if lab is not None:
        r["label"] = lab
    r.setdefault("date", time.strftime("%Y-%m-%d"))
    r["command"] = command or run_command(r)
    return r


def table_row(table: str, key, row: dict, command: str, settings: dict | None = None,
              environment: dict | None = None) -> dict:
    """A measured table's row as a store record."""
    return {"table": table, "key": key, "row": row, "settings": settings or {}, "environment": environment or {},
            "date": time.strftime("%Y-%m-%d"), "command": command}


def write(records: list[dict], store: str | os.PathLike | None = None, replace_table: str | None = None) -> Path:
    """Add ``records``, replacing stored ones of the same identity (and, with ``replace_table``, every stored row of
    that table); everything else is kept in place. One atomic write."""
    p = path(store)
    with _locked(p):  # two scripts writing at once would each drop the other's rows (read, then replace)
        old = read(store) if p.is_file() else []
        new = {identity(r): r for r in records}
        kept = [r for r in old if identity(r) not in new and r["table"] != replace_table]
        with atomic_path(p) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept + list(new.values())),
                           encoding="utf-8")
    return p


@contextlib.contextmanager
def _locked(p: Path):
    """An exclusive lock on the store's ``.lock`` twin for a read-modify-write (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: one writer at a time is the user's to keep
        yield
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p.with_name(p.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _rows_hash(per_row: dict) -> str:
    """A short hash of CTR test rows (user, item, label, in order)."""
    import hashlib

    import numpy as np

    return hashlib.sha256(b"".join(np.asarray(per_row[k], np.int64).tobytes()
                                   for k in ("user", "item", "label"))).hexdigest()[:16]


def ctr_predictions(per_row: dict) -> dict:
    """A CTR run's test probabilities as a store row (5 decimals, in the split's row order) with a hash of the rows
    they belong to: ``load_ctr_predictions`` gives them back for ``metrics.paired_ctr_difference``."""
    return {"prob": [round(float(p), 5) for p in per_row["prob"]], "rows": _rows_hash(per_row)}


def load_ctr_predictions(table: str, key, split, store: str | os.PathLike | None = None) -> dict:
    """The stored test probabilities ``key`` of ``table`` as ``evaluate_ctr(..., per_row=True)["per_row"]`` on
    ``split``'s test rows; an error when they were made on other rows."""
    import numpy as np

    got = [r for r in rows(table, store) if r["key"] == key]
    if not got:
        raise KeyError(f"no stored test predictions {key} in {table!r}")
    t = split.arrays("test")
    per_row = {"user": t["user"], "item": t["item"], "label": t["label"], "prob": np.asarray(got[-1]["row"]["prob"])}
    if len(per_row["prob"]) != len(t["label"]) or _rows_hash(per_row) != got[-1]["row"]["rows"]:
        raise ValueError(f"the stored predictions {key} of {table!r} belong to other test rows than this split's; "
                         f"recompute them: {got[-1]['command']}")
    return per_row


# The same run on the same machine gives the same numbers; another thread count or machine changes the summation
# order of multi-threaded kernels, which moves a metric by up to about 1e-3 (AlphaRec's run-to-run spread is larger:
# see benchmarks/RESULTS.md). A live headline further than this from its stored record is a different run.
TOLERANCE = 2e-3


def compare(live: dict[str, dict], metrics: tuple[str, ...] = ("recall@20", "ndcg@10"), tol: float = TOLERANCE,
            store: str | os.PathLike | None = None) -> pd.DataFrame:
    """A notebook's live runs ({label: record}) beside the stored record of the same label, dataset, split and seed:
    one row per (label, metric) with ``live``, ``stored``, ``diff`` and ``same`` (|diff| <= tol; False where nothing
    is stored). The command that recomputes the stored row is its last column."""
    stored = {identity(r): r for r in runs(store)}
    out = []
    for lab, rec in live.items():
        r = stored.get((RUNS, lab, rec["dataset"], rec["split"], rec["seed"]))
        for m in metrics:
            if m not in rec["metrics"]:
                continue
            s = r["metrics"].get(m) if r else None
            out.append({"run": lab, "dataset": rec["dataset"], "seed": rec["seed"], "metric": m,
                        "live": rec["metrics"][m], "stored": s,
                        "diff": None if s is None else rec["metrics"][m] - s,
                        "same": s is not None and abs(rec["metrics"][m] - s) <= tol,
                        "command": r["command"] if r else run_command(rec | {"label": lab})})
    return pd.DataFrame(out)


def save_frame(name: str, df: pd.DataFrame, command: str, settings: dict | None = None,
               environment: dict | None = None, store: str | os.PathLike | None = None) -> Path:
    """Store a notebook's computed table (a full run's sweep, ablation or cost table) as the rows of table ``name``,
    replacing its old rows; ``command`` recomputes it (e.g. the notebook's full run). The index is kept."""
    import platform

    import torch

    flat = df.reset_index()
    index = [c for c in flat.columns if c not in df.columns]
    env = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
           "machine": platform.machine()} | (environment or {})
    records = [table_row(name, [row[c] for c in index] if index else k, row, command,
                         (settings or {}) | {"index": index}, env)
               for k, row in enumerate(json.loads(flat.to_json(orient="records", double_precision=15)))]
    return write(records, store, replace_table=name)


def load_frame(name: str, store: str | os.PathLike | None = None) -> pd.DataFrame:
    """A table stored by ``save_frame``, index restored; ``df.attrs`` holds its ``command`` and ``date``."""
    recs = rows(name, store)
    df = pd.DataFrame([r["row"] for r in recs])
    index = recs[0]["settings"].get("index") or []
    if index:
        df = df.set_index(index)
        if len(index) == 1 and index[0] == "index":
            df.index.name = None
    df.attrs = {"command": recs[0]["command"], "date": recs[0].get("date")}
    return df


def source(name: str, store: str | os.PathLike | None = None) -> str:
    """One line for a notebook: where a stored table comes from and the command that recomputes it."""
    r = rows(name, store)[0]
    return f"from the evidence store (table {name!r}, measured {r.get('date') or 'before 2026-12-04'}); recompute: {r['command']}"
