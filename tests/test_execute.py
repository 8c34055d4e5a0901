"""notebooks/execute.py: full-mode execution in place, and the pause that lets the last cells be written after the
results (the cells before it run once, the edited cells after it run in the same kernel)."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from conftest import load_script


@pytest.fixture()
def execute_module(tmp_path, monkeypatch):
    mod = load_script("notebooks/execute.py", "execute_nb")
    monkeypatch.setattr(mod, "HERE", tmp_path)   # partial runs, run_times.json: in tmp
    return mod


def _notebook(path: Path, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) if kind == "code" else nbformat.v4.new_markdown_cell(s) for kind, s in cells]
    nbformat.write(nb, path)


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def test_pause_reruns_edited_cells_in_the_same_kernel(execute_module, tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    _notebook(path, [("code", "x = 41\nprint('first', x)"), ("markdown", "old text"),
                     ("code", "# Takeaways\nprint('old', x)")])

    def edit_then_resume():
        partial = tmp_path / "failed" / "nb.ipynb"
        deadline = time.time() + 120
        while not partial.exists() and time.time() < deadline:
            time.sleep(0.2)
        nb = nbformat.read(path, as_version=4)
        nb.cells[1].source = "new text"
        nb.cells[2].source = "# Takeaways\nprint('new', x + 1)"     # reads a variable the first cell set
        nbformat.write(nb, path)
        (tmp_path / "failed" / "nb.ipynb.resume").touch()

    worker = threading.Thread(target=edit_then_resume)
    worker.start()
    seconds, paused = execute_module.execute(path, pause_before="# Takeaways")
    worker.join()
    out = nbformat.read(path, as_version=4)
    assert _text(out.cells[0]).strip() == "first 41"
    assert out.cells[1].source == "new text"
    assert _text(out.cells[2]).strip() == "new 42"
    assert 0 < paused <= seconds
    assert not (tmp_path / "failed" / "nb.ipynb.resume").exists()
    log = capsys.readouterr().out                   # each code cell is named as it finishes (a hang names its cell)
    assert "  cell 0 of 3: " in log and "  cell 2 of 3: " in log and "cell 1 of 3" not in log


def test_failing_cell_keeps_the_notebook_and_names_the_partial_run(execute_module, tmp_path):
    path = tmp_path / "nb.ipynb"
    _notebook(path, [("code", "print('ok')"), ("code", "assert 1 == 2, 'claim failed'")])
    before = path.read_bytes()
    with pytest.raises(SystemExit, match="claim failed"):
        execute_module.execute(path)
    assert path.read_bytes() == before                                   # the committed notebook untouched
    partial = nbformat.read(tmp_path / "failed" / "nb.ipynb", as_version=4)
    assert _text(partial.cells[0]).strip() == "ok"


def test_pause_option_needs_its_text(execute_module):
    with pytest.raises(SystemExit, match="--pause-before needs"):
        execute_module.main(["x.ipynb", "--pause-before"])


# ---- kernel_wait.py: bounded waits for kernel messages (the idle-kernel hang) -------------------------------------

def _kernel_wait():
    return load_script("notebooks/kernel_wait.py", "kernel_wait_mod")


def test_a_reply_whose_wake_up_was_lost_is_read_at_the_next_short_poll():
    """The fake socket holds a reply from the start, but a poll longer than 0.1 s never wakes for it (a lost
    edge-triggered wake-up) and only gives up at its timeout; a short poll sees it."""
    calls = []

    async def get_msg(self, timeout=None):
        calls.append(timeout)
        if timeout is None or timeout > 0.1:
            await asyncio.sleep(30 if timeout is None else timeout)
            raise Empty
        return {"msg_type": "execute_reply"}

    wait = _kernel_wait().bounded(get_msg, step=0.05)
    t = time.perf_counter()
    assert asyncio.run(wait(None, timeout=3600)) == {"msg_type": "execute_reply"}
    assert time.perf_counter() - t < 1 and calls == [0.05]
    calls.clear()
    assert asyncio.run(wait(None, timeout=None)) == {"msg_type": "execute_reply"}   # no timeout: steps as well
    assert calls == [0.05]


def test_a_bounded_wait_keeps_its_overall_timeout():
    calls = []

    async def never(self, timeout=None):
        calls.append(timeout)
        await asyncio.sleep(timeout)
        raise Empty

    wait = _kernel_wait().bounded(never, step=0.1)
    t = time.perf_counter()
    with pytest.raises(Empty):
        asyncio.run(wait(None, timeout=0.35))
    assert 0.35 <= time.perf_counter() - t < 1.5
    assert len(calls) >= 4 and max(calls) <= 0.1 and abs(sum(calls) - 0.35) < 0.05   # 0.1, 0.1, 0.1, 0.05 (+ a 0)


def test_install_wraps_the_real_channel_once_and_reads_real_messages(monkeypatch):
    """After install(), jupyter_client's asyncio channel still returns a message sent over a real zmq socket and
    raises Empty on a timeout; installing twice does not wrap twice. Loading execute.py, or the notebooks' conftest
    (what nbmake runs under), installs it."""
    import zmq
    import zmq.asyncio
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.session import Session

    plain = getattr(AsyncZMQSocketChannel.get_msg, "__wrapped__", AsyncZMQSocketChannel.get_msg)
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", plain)      # restored after the test
    mod = _kernel_wait()
    mod.install()
    mod.install()
    assert hasattr(AsyncZMQSocketChannel.get_msg, "__wrapped__")
    assert not hasattr(AsyncZMQSocketChannel.get_msg.__wrapped__, "__wrapped__")

    async def round_trip():
        ctx = zmq.asyncio.Context()
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://kernel-wait-test")
        b.connect("inproc://kernel-wait-test")
        session = Session(key=b"k")
        channel = AsyncZMQSocketChannel(b, session)
        try:
            with pytest.raises(Empty):
                await channel.get_msg(timeout=0.2)
            session.send(a, "execute_reply", {"status": "ok"})
            msg = await channel.get_msg(timeout=5)
            return msg["msg_type"], msg["content"]
        finally:
            a.close(0)
            b.close(0)
            ctx.term()

    assert asyncio.run(round_trip()) == ("execute_reply", {"status": "ok"})
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "notebooks"))   # conftest imports kernel_wait
    for script in ("notebooks/execute.py", "notebooks/conftest.py"):
        monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", plain)
        load_script(script, "loaded_" + Path(script).stem)
        assert AsyncZMQSocketChannel.get_msg.__wrapped__ is plain, script


def test_saved_outputs_drop_progress_text_stderr_and_warnings(execute_module, tmp_path):
    path = tmp_path / "nb.ipynb"
    _notebook(path, [("code", "import sys, warnings\nprint('kept')\nsys.stderr.write('  0%|          | 0/5\\n')\n"
                              "warnings.warn('careful')"),
                     ("code", "print(' 40%|####      | 2/5 [00:01<00:01]')")])
    execute_module.execute(path)
    out = nbformat.read(path, as_version=4)
    assert _text(out.cells[0]).strip() == "kept" and out.cells[1].outputs == []
    assert all(o.get("name") != "stderr" for c in out.cells for o in c.outputs)


def test_run_times_record_cpu_threads_mode_and_the_slowest_cells(execute_module, tmp_path):
    import json

    _notebook(tmp_path / "01_x.ipynb", [("code", "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass"),
                                       ("code", "x = 1")])
    execute_module.main(["01_x.ipynb", "--out", str(tmp_path / "out")])
    rec = json.loads((tmp_path / "run_times.json").read_text())["01_x.ipynb"]
    assert rec["mode"] == "default" and rec["threads"] >= 1 and rec["cpu_seconds"] >= 0
    assert {"other_cpu_cores", "load_average", "contended", "date"} <= set(rec)
    assert rec["slowest_cells"][0]["cell"] == 0 and rec["slowest_cells"][0]["seconds"] >= 0.5
    assert (tmp_path / "out" / "01_x.ipynb").is_file()          # --out: executed elsewhere, the source untouched
    assert nbformat.read(tmp_path / "01_x.ipynb", as_version=4).cells[0].outputs == []
    with pytest.raises(SystemExit, match="--mode must be one of default, full, smoke"):
        execute_module.execute(tmp_path / "01_x.ipynb", mode="fast")


def test_the_meter_marks_a_run_beside_a_busy_process_contended():
    import subprocess
    import sys

    from llmrec_lite.profiling import RunMeter

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        meter = RunMeter(threads=2)
        time.sleep(1.5)
        stats = meter.stop()
    finally:
        for p in busy:
            p.kill()
    assert stats["other_cpu_cores"] > 0.5 and stats["contended"] and stats["cpu_seconds"] < 0.5


def test_saved_widget_state_keeps_only_what_a_kept_output_shows(execute_module):
    """A dropped progress bar leaves its HBox, bar, labels and their layouts in the notebook's widget state: pruned.
    A slider that an output shows stays, with the style it refers to."""
    nb = nbformat.v4.new_notebook()
    view = lambda m: {"application/vnd.jupyter.widget-view+json": {"model_id": m, "version_major": 2, "version_minor": 0}}
    nb.cells = [nbformat.v4.new_code_cell("w"), nbformat.v4.new_code_cell("for _ in tqdm(...)")]
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=view("aa01"))]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={**view("bb01"), "text/plain": " 40%|####  | 2/5"})]
    model = lambda name, **st: {"model_name": name, "state": st}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
        "aa01": model("IntSliderModel", style="IPY_MODEL_aa02"), "aa02": model("SliderStyleModel"),
        "bb01": model("HBoxModel", children=["IPY_MODEL_bb02", "IPY_MODEL_bb03"], layout="IPY_MODEL_bb04"),
        "bb02": model("HTMLModel", value=" 40%"), "bb03": model("FloatProgressModel", value=2.0),
        "bb04": model("LayoutModel")}}}
    dropped = execute_module.clean_outputs(nb)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert set(state) == {"aa01", "aa02"}
    assert dropped == 1 + 4 and nb.cells[1].outputs == []
