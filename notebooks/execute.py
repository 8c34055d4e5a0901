"""Execute notebooks in full mode and store their outputs in place (what `make notebooks` runs).

    python notebooks/execute.py                      # every notebook, in order
    python notebooks/execute.py 02_llm_esr.ipynb     # some of them

Runs each notebook top to bottom with nbclient (LLMREC_SMOKE unset: the default run), keeps widget state so a
reader on GitHub sees the widgets' last drawing, writes the executed notebook atomically (a failed run leaves the
committed one untouched), and records the wall time in notebooks/run_times.json. A notebook over 2 MB fails: lower
its figure dpi or sizes. CI never calls this; it executes smoke copies with nbmake.
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

MAX_BYTES = 2_000_000


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ.pop("LLMREC_SMOKE", None)
    t = time.perf_counter()
    try:
        NotebookClient(nb, timeout=4 * 3600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                       store_widget_state=True).execute()
    except CellExecutionError as e:  # keep what ran (every output up to the failing cell) for diagnosis
        failed = HERE / "failed" / path.name
        failed.parent.mkdir(exist_ok=True)
        nbformat.write(nb, failed)
        first = str(e).strip().splitlines()[-1][:300]
        raise SystemExit(f"{path.name} failed after {time.perf_counter() - t:.0f} s ({first}); the committed notebook is "
                         f"unchanged, the partial run is in {failed.relative_to(HERE.parent)}") from None
    seconds = time.perf_counter() - t
    with atomic_path(path) as tmp:
        nbformat.write(nb, tmp)
        size = tmp.stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"{path.name}: {size / 1e6:.1f} MB executed, over the 2 MB limit; lower figure dpi or sizes")
    return seconds


def main(names: list[str]) -> None:
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    times_file = HERE / "run_times.json"
    failures = []
    for p in paths:
        if not p.is_file():
            raise SystemExit(f"no notebook {p}")
        print(f"executing {p.name} (full mode) ...", flush=True)
        try:
            s = execute(p)
        except SystemExit as e:  # one failing notebook does not stop the others
            print(e, flush=True)
            failures.append(p.name)
            continue
        # read just before writing: another execute.py run beside this one keeps its entries
        times = json.loads(times_file.read_text()) if times_file.is_file() else {}
        times[p.name] = {"seconds": round(s), "date": time.strftime("%Y-%m-%d"), "threads": os.environ.get("OMP_NUM_THREADS", "all")}
        save_json(times, times_file)
        print(f"{p.name}: {s:.0f} s, {p.stat().st_size / 1e6:.2f} MB", flush=True)
    if failures:
        raise SystemExit(f"failed: {', '.join(failures)}")


if __name__ == "__main__":
    main(sys.argv[1:])
