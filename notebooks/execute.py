"""Execute notebooks in full mode and store their outputs in place (what `make notebooks` runs).

    python notebooks/execute.py                      # every notebook, in order
    python notebooks/execute.py 02_llm_esr.ipynb     # some of them
    python notebooks/execute.py 06_llm_cf.ipynb --pause-before "# Takeaways"   # last cells written after the results

`--pause-before TEXT` stops before the first code cell whose source starts with TEXT, writes the partial run to
notebooks/failed/<name> (read its outputs), and waits for notebooks/failed/<name>.resume to appear; it then re-reads
that cell, every later one and the markdown just above it from the notebook file (edit them meanwhile; the cells
before must stay in place) and runs them in the same kernel. It is for
takeaway and claims cells written after the numbers are known, without re-running hours of training; the run time
recorded includes the wait, so run_times.json says so in a note.

Runs each notebook top to bottom with nbclient (LLMREC_SMOKE unset: the default run), keeps widget state so a
reader on GitHub sees the widgets' last drawing, writes the executed notebook atomically (a failed run leaves the
committed one untouched), and records the wall time in notebooks/run_times.json. A notebook over 2 MB fails: lower
its figure dpi or sizes. Kernel messages are read in waits of at most 2 s each (kernel_wait.py: a guard against a
hang seen three times, kernel and client both idle). CI never calls this; it executes smoke copies with nbmake.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from llmrec_lite.io import atomic_path, save_json  # noqa: E402

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


def _run_cells(client: NotebookClient, nb, path: Path, pause_before: str | None) -> float:
    """NotebookClient.execute, cell by cell, with the optional pause described in the module docstring; returns
    the seconds spent paused."""
    paused = 0.0
    client.reset_execution_trackers()
    with client.setup_kernel():
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
                print(f"  cell {i} of {len(nb.cells)}: {time.perf_counter() - t:.0f} s", flush=True)
            i += 1
        client.set_widgets_metadata()
    return paused


def execute(path: Path, pause_before: str | None = None) -> tuple[float, float]:
    """Run the notebook in full mode and write it in place; returns (wall seconds, seconds paused)."""
    nb = nbformat.read(path, as_version=4)
    os.environ.pop("LLMREC_SMOKE", None)
    t = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=4 * 3600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                                store_widget_state=True)
        paused = _run_cells(client, nb, path, pause_before)
    except CellExecutionError as e:  # keep what ran (every output up to the failing cell) for diagnosis
        failed = _save_partial(nb, path)
        first = str(e).strip().splitlines()[-1][:300]
        raise SystemExit(f"{path.name} failed after {time.perf_counter() - t:.0f} s ({first}); the committed notebook is "
                         f"unchanged, the partial run is in {failed.relative_to(HERE.parent)}") from None
    seconds = time.perf_counter() - t
    with atomic_path(path) as tmp:
        nbformat.write(nb, tmp)
        size = tmp.stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"{path.name}: {size / 1e6:.1f} MB executed, over the 2 MB limit; lower figure dpi or sizes")
    return seconds, paused


def main(names: list[str]) -> None:
    pause_before = None
    if "--pause-before" in names:
        k = names.index("--pause-before")
        if k + 1 >= len(names):
            raise SystemExit("--pause-before needs the text a cell starts with, e.g. --pause-before '# Claims'")
        pause_before, names = names[k + 1], names[:k] + names[k + 2:]
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    times_file = HERE / "run_times.json"
    failures = []
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"no notebook {p}")
        print(f"executing {p.name} (full mode) ...", flush=True)
        try:
            s, paused = execute(p, pause_before)
        except SystemExit as e:  # one failing notebook does not stop the others
            print(e, flush=True)
            failures.append(p.name)
            continue
        # read just before writing: another execute.py run beside this one keeps its entries
        times = json.loads(times_file.read_text()) if times_file.is_file() else {}
        times[p.name] = {"seconds": round(s), "date": time.strftime("%Y-%m-%d"), "threads": os.environ.get("OMP_NUM_THREADS", "all")}
        if paused:
            times[p.name]["note"] = (f"paused {paused:.0f} s before the cell starting {pause_before!r} while it and the "
                                     "later cells were written; the seconds and the notebook's own printed time include it")
        save_json(times, times_file)
        print(f"{p.name}: {s:.0f} s, {p.stat().st_size / 1e6:.2f} MB", flush=True)
    if failures:
        raise SystemExit(f"failed: {', '.join(failures)}")


if __name__ == "__main__":
    main(sys.argv[1:])
