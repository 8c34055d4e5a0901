"""Execute notebooks and store their outputs in place (what `make notebooks` runs).

    python notebooks/execute.py                      # every notebook, in order, default run
    python notebooks/execute.py 02_llm_esr.ipynb     # some of them
    python notebooks/execute.py --mode full 03_pad.ipynb      # LLMREC_FULL=1: recompute everything in the notebook
    python notebooks/execute.py --out /tmp/nb --record notebooks/run_times_before.json   # time them, keep the files
    python notebooks/execute.py 06_llm_cf.ipynb --pause-before "# Takeaways"   # last cells written after the results
    python notebooks/execute.py --second-run 00_quickstart.ipynb   # again, models from the store: first explorer after?
    python notebooks/execute.py --report              # the run-time table of docs/performance.md from run_times.json

Each run records in run_times.json (or --record FILE): wall and CPU seconds, threads, the cores other jobs used
meanwhile and the load average (profiling.RunMeter; a run beside other jobs is marked ``contended`` and its time is
never quoted as a cost), the mode, the date and the slowest cells (nbclient also keeps every cell's start and end in
its metadata).

`--pause-before TEXT` stops before the first code cell whose source starts with TEXT, writes the partial run to
notebooks/failed/<name> (read its outputs), and waits for notebooks/failed/<name>.resume to appear; it then re-reads
that cell, every later one and the markdown just above it from the notebook file (edit them meanwhile; the cells
before must stay in place) and runs them in the same kernel. It is for
takeaway and claims cells written after the numbers are known, without re-running hours of training; the run time
recorded includes the wait, so run_times.json says so in a note.

Runs each notebook top to bottom with nbclient (LLMREC_SMOKE unset; LLMREC_FULL set in --mode full), keeps widget state so a
reader on GitHub sees the widgets' last drawing, writes the executed notebook atomically (a failed run leaves the
committed one untouched), and records the wall time in notebooks/run_times.json. A notebook over 2 MB fails: lower
its figure dpi or sizes. Kernel messages are read in waits of at most 2 s each (kernel_wait.py: a guard against a
hang seen three times, kernel and client both idle). CI never calls this; it executes smoke copies with nbmake.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from llmrec_lite.io import atomic_path, replace_block, save_json  # noqa: E402
from llmrec_lite.profiling import RunMeter  # noqa: E402

sys.path.insert(0, str(HERE))
import kernel_wait  # noqa: E402

kernel_wait.install()  # a lost zmq wake-up costs seconds, not the 4 h cell timeout (kernel_wait.py says why)

MAX_BYTES = 2_000_000


def _save_partial(nb, path: Path) -> Path:
    """Write a partly executed notebook to notebooks/failed/<name> (outside git) and return where."""
    partial = HERE / "failed" / path.name
    partial.parent.mkdir(exist_ok=True)
    nbformat.write(nb, partial)
    return partial


def _run_cells(client: NotebookClient, nb, path: Path, pause_before: str | None, timing: dict) -> float:
    """NotebookClient.execute, cell by cell, with the optional pause described in the module docstring; returns
    the seconds spent paused. ``timing`` gets the RunMeter readings of the kernel and this process, and each code
    cell's seconds."""
    paused = 0.0
    client.reset_execution_trackers()
    with client.setup_kernel():
        pids = [os.getpid()] + [p.pid for p in [getattr(getattr(client.km, "provisioner", None), "process", None)] if p]
        meter = RunMeter(pids=pids, threads=_threads())
        cells = timing.setdefault("cells", [])
        started = time.perf_counter()
        info = client.wait_for_reply(client.kc.kernel_info())
        if info is not None and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        i = 0
        while i < len(nb.cells):
            if pause_before and nb.cells[i].cell_type == "code" and nb.cells[i].source.startswith(pause_before):
                partial = _save_partial(nb, path)
                resume = partial.with_name(f"{path.name}.resume")
                print(f"paused before cell {i}; outputs so far in {partial.relative_to(HERE.parent)}; edit cells {i}.. "
                      f"of {path.name}, then: touch {resume.relative_to(HERE.parent)}", flush=True)
                t = time.perf_counter()
                while not resume.exists():
                    time.sleep(5)
                paused = time.perf_counter() - t
                resume.unlink()
                # the markdown just above the paused cell comes back too (a takeaway text is written with it)
                i = max((j for j in range(i) if nb.cells[j].cell_type == "code"), default=-1) + 1
                nb.cells[i:] = nbformat.read(path, as_version=4).cells[i:]
                pause_before = None
                continue
            t = time.perf_counter()
            client.execute_cell(nb.cells[i], i, execution_count=client.code_cells_executed + 1)
            if nb.cells[i].cell_type == "code":  # a hang (kernel and client both idle, seen with nbclient) names its cell
                dt = time.perf_counter() - t
                cells.append({"cell": i, "seconds": round(dt, 1), "starts": nb.cells[i].source.strip()[:60]})
                if "first_explorer_seconds" not in timing and _shows_explorer(nb.cells[i]):
                    timing["first_explorer_seconds"] = round(time.perf_counter() - started - paused)
                print(f"  cell {i} of {len(nb.cells)}: {dt:.0f} s", flush=True)
            i += 1
        client.set_widgets_metadata()
        timing.update(meter.stop())
    return paused


def _shows_explorer(cell) -> bool:
    """The cell displays an interactive widget (an explorer), not a progress bar."""
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        text = data.get("text/plain", "")
        if "application/vnd.jupyter.widget-view+json" in data and not PROGRESS.search("".join(text)):
            return True
    return False


def _threads() -> int:
    """The threads torch will use in the kernel: OMP_NUM_THREADS if set, else every core."""
    try:
        return int(os.environ["OMP_NUM_THREADS"])
    except (KeyError, ValueError):
        return os.cpu_count() or 1


MODES = ("default", "full", "smoke")


PROGRESS = re.compile(r"\d+%\||(Float|Int)Progress\(")  # a bar's frozen text, or tqdm's widget repr
WIDGET_REPR = re.compile(r"\s*(VBox|HBox|interactive|Output|Tab|Accordion|IntProgress|FloatProgress)\(")


def clean_outputs(nb) -> int:
    """What a reader on GitHub should not see in the saved notebook: frozen progress bars (tqdm's text and its widget),
    stderr (progress text, library warnings) and widgets' text reprs (a widget keeps its view for Jupyter and, where
    the notebook draws it, a static figure beside it). Returns how many outputs were dropped or trimmed."""
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        keep = []
        for o in cell.get("outputs", []):
            text = o.get("text", "") if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                changed += 1
                continue
            if PROGRESS.search(text):  # a progress bar's frozen text (a stream or tqdm's widget)
                changed += 1
                continue
            data = o.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data and WIDGET_REPR.match(text):
                data.pop("text/plain")
                changed += 1
            keep.append(o)
        cell.outputs = keep
    return changed + prune_widget_state(nb)


def prune_widget_state(nb) -> int:
    """Drop the saved widget models no kept output shows (a dropped progress bar's HBox, bar and labels, with their
    layouts and styles): a model stays when a kept output's view names it or a kept model refers to it
    ("IPY_MODEL_<id>"). Returns how many models were dropped."""
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    if not saved or not saved.get("state"):
        return 0
    state = saved["state"]
    todo = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for cell in nb.cells
            if cell.cell_type == "code" for o in cell.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    keep = set()
    while todo:
        m = todo.pop()
        if m in keep or m not in state:
            continue
        keep.add(m)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[m]))
    saved["state"] = {k: v for k, v in state.items() if k in keep}
    return len(state) - len(keep)


def execute(path: Path, pause_before: str | None = None, mode: str = "default", out: Path | None = None,
            timing: dict | None = None) -> tuple[float, float]:
    """Run the notebook (``mode``: default, full = LLMREC_FULL=1, smoke = LLMREC_SMOKE=1) and write it in place, or
    to the folder ``out``; returns (wall seconds, seconds paused). ``timing`` (a dict) receives the run's meter
    readings and per-cell seconds."""
    if mode not in MODES:
        raise SystemExit(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    nb = nbformat.read(path, as_version=4)
    os.environ.pop("LLMREC_SMOKE", None)
    os.environ.pop("LLMREC_FULL", None)
    if mode != "default":
        os.environ[f"LLMREC_{mode.upper()}"] = "1"
    timing = {} if timing is None else timing
    t = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=4 * 3600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                                store_widget_state=True)
        paused = _run_cells(client, nb, path, pause_before, timing)
    except CellExecutionError as e:  # keep what ran (every output up to the failing cell) for diagnosis
        failed = _save_partial(nb, path)
        first = str(e).strip().splitlines()[-1][:300]
        raise SystemExit(f"{path.name} failed after {time.perf_counter() - t:.0f} s ({first}); the committed notebook is "
                         f"unchanged, the partial run is in {failed.relative_to(HERE.parent)}") from None
    seconds = time.perf_counter() - t
    clean_outputs(nb)
    target = path if out is None else Path(out) / path.name
    with atomic_path(target) as tmp:
        nbformat.write(nb, tmp)
        size = tmp.stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"{path.name}: {size / 1e6:.1f} MB executed, over the 2 MB limit; lower figure dpi or sizes")
    return seconds, paused


def _option(names: list[str], flag: str, example: str) -> tuple[str | None, list[str]]:
    """Take ``flag VALUE`` out of the argument list."""
    if flag not in names:
        return None, names
    k = names.index(flag)
    if k + 1 >= len(names):
        raise SystemExit(f"{flag} needs a value, e.g. {flag} {example}")
    return names[k + 1], names[:k] + names[k + 2:]


# What each notebook's default run trains live, and what it reads from the evidence store (recomputed by its full run,
# `python notebooks/execute.py --mode full NB`, or by the benchmark command stored with each run).
DEFAULT_RUN = {
    "00_quickstart.ipynb": ("Pop, MF-BPR, LightGCN on ml-100k, checked against their stored runs",
                            "RecBole's reference numbers and the benchmark's split seeds"),
    "01_alpharec.ipynb": ("AlphaRec vs LightGCN, the MiniLM and random linear probes, MF, cold start, UMAP, intention",
                          "the SmolLM2 probe grid and its intervals, the sampler choice, the mean-cosine table, "
                          "amazon-pantry rows"),
    "02_llm_esr.ipynb": ("SASRec vs LLM-ESR with paired intervals, retrieval overlap, 100-negative protocol, latency",
                         "the five ablations, single-view scores, semantic drift, the SmolLM2 variant, five seeds"),
    "03_pad.ipynb": ("PAD's three stages on ml-100k against their stored runs; the MMD toy, UMAP, alignment explorer",
                     "the forgetting runs, the MMD-weight sweep, the stage-3 choices, ID+text concat, five seeds"),
    "04_molar.ipynb": ("Molar and its SASRec teacher on ml-100k, checked against their stored runs; the alignment "
                       "cosines and explorer", "the validation sweep, the MIRM fine-tune, content only's alignment, "
                       "three seeds of four rows on two datasets"),
    "05_bahe.ipynb": ("BAHE (paper) and BAHE + S on ml-100k, checked against their stored runs; DIN; the step costs",
                      "token level's runs, the pooling and depth variants, the split-layer grid, three seeds"),
    "06_llm_cf.ipynb": ("DIN and DIN + ICT on ml-100k, checked against their stored runs; retrieval explorer, "
                        "serving cost", "RecGen's abilities, the SASRec rows and controls, three seeds"),
    "07_side_by_side.ipynb": ("the atlas's MF, LightGCN and AlphaRec on ml-100k, UMAP maps",
                              "the leaderboard, paired contrasts and cost growth (every benchmark run)"),
}
TARGETS = {"00_quickstart.ipynb": 180}  # seconds for a default run, alone on 2 cores; every other notebook: 600
DOCS = HERE.parent / "docs" / "performance.md"


def report(times_file: Path | None = None, before_file: Path | None = None) -> str:
    """The notebooks' run times as a markdown table (run_times.json beside run_times_before.json, the notebooks as
    they were before default runs read the evidence store), written between the TIMES markers of docs/performance.md."""
    times = json.loads((times_file or HERE / "run_times.json").read_text())
    before_path = before_file or HERE / "run_times_before.json"
    before = json.loads(before_path.read_text()) if before_path.is_file() else {}
    rows = ["| notebook | before: default run | now: default run | CPU s | first explorer after | target | "
            "full run (LLMREC_FULL=1) | where the default run's time goes |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda e: "–" if not e else (f"{e['seconds']} s ({e['date']})" + (
        ", contended" if e.get("contended") else ", not timed alone" if e.get("contended") is None else ""))
    for nb in sorted(p.name for p in HERE.glob("[0-9][0-9]_*.ipynb")):
        now, full = times.get(nb), times.get(f"{nb} (full)")
        cells = ", ".join(f"cell {c['cell']} {c['seconds']:.0f} s" for c in (now or {}).get("slowest_cells", [])[:3])
        ok = now and now.get("mode") == "default" and not now.get("contended") and now["seconds"] <= TARGETS.get(nb, 600)
        rows.append(f"| {nb} | {fmt(before.get(nb))} | {fmt(now if now and now.get('mode') else None)}"
                    f"{' ✓' if ok else ''} | {(now or {}).get('cpu_seconds', '–')} | "
                    f"{_explorer(now)} | ≤ {TARGETS.get(nb, 600)} s | "
                    f"{fmt(full)} | {cells or '–'} |")
    table = "\n".join(rows)
    replace_block(DOCS, "TIMES", table)
    readme = ["| notebook | a default run trains live | default run |", "|---|---|---|"]
    for nb, (live, stored) in DEFAULT_RUN.items():
        now = times.get(nb) or {}
        t = f"{round(now['seconds'] / 60)} min" if now.get("mode") == "default" and not now.get("contended") else \
            "not yet timed alone"
        readme.append(f"| [`{nb}`](notebooks/{nb}) | {live} | {t} |")
    replace_block(HERE.parent / "README.md", "NOTEBOOKS", "\n".join(readme))
    return table


def _explorer(e: dict | None) -> str:
    """First explorer of the default run, and of a second run (the model store warm) where recorded."""
    if not e or e.get("first_explorer_seconds") is None:
        return "–"
    again = e.get("second_run_first_explorer_seconds")
    return f"{e['first_explorer_seconds']} s" + (f" (second run: {again} s)" if again is not None else "")


def main(names: list[str]) -> None:
    if names == ["--report"]:
        print(report())
        return
    pause_before, names = _option(names, "--pause-before", "'# Claims'")
    mode, names = _option(names, "--mode", "full")
    out, names = _option(names, "--out", "/tmp/executed")
    record, names = _option(names, "--record", "notebooks/run_times_before.json")
    second = "--second-run" in names
    names = [n for n in names if n != "--second-run"]
    if second and not out:
        import tempfile

        out = tempfile.mkdtemp(prefix="second-run-")  # the committed notebook keeps the first run's outputs
    mode = mode or "default"
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    times_file = Path(record) if record else HERE / "run_times.json"
    failures = []
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"no notebook {p}")
        print(f"executing {p.name} ({mode} run) ...", flush=True)
        timing = {}
        try:
            s, paused = execute(p, pause_before, mode=mode, out=Path(out) if out else None, timing=timing)
        except SystemExit as e:  # one failing notebook does not stop the others
            print(e, flush=True)
            failures.append(p.name)
            continue
        # read just before writing: another execute.py run beside this one keeps its entries
        times = json.loads(times_file.read_text()) if times_file.is_file() else {}
        key = p.name if mode == "default" else f"{p.name} ({mode})"
        if second:  # a second Run All (the model store warm): only how soon its first explorer shows is kept
            times.setdefault(key, {}).update({
                "second_run_first_explorer_seconds": timing.get("first_explorer_seconds"),
                "second_run_seconds": round(s), "second_run_contended": timing.get("contended")})
            save_json(times, times_file)
            print(f"{p.name}: second run {s:.0f} s, first explorer after {timing.get('first_explorer_seconds')} s",
                  flush=True)
            continue
        slowest = sorted(timing.get("cells", []), key=lambda c: -c["seconds"])[:8]
        times[key] = {"seconds": round(s), "cpu_seconds": round(timing.get("cpu_seconds", 0)), "mode": mode,
                      "date": time.strftime("%Y-%m-%d"), "threads": timing.get("threads"),
                      "other_cpu_cores": timing.get("other_cpu_cores"), "load_average": timing.get("load_average"),
                      "contended": timing.get("contended"), "first_explorer_seconds": timing.get("first_explorer_seconds"),
                      "slowest_cells": slowest}
        if paused:
            times[p.name]["note"] = (f"paused {paused:.0f} s before the cell starting {pause_before!r} while it and the "
                                     "later cells were written; the seconds and the notebook's own printed time include it")
        save_json(times, times_file)
        written = Path(out) / p.name if out else p
        flag = " (CONTENDED: other jobs used the cores; this time is not a cost)" if timing.get("contended") else ""
        print(f"{p.name}: {s:.0f} s, {timing.get('cpu_seconds', 0):.0f} CPU s, {written.stat().st_size / 1e6:.2f} MB"
              f"{flag}", flush=True)
    if failures:
        raise SystemExit(f"failed: {', '.join(failures)}")


if __name__ == "__main__":
    main(sys.argv[1:])
