"""notebooks/execute.py: full-mode execution in place, and the pause that lets the last cells be written after the
results (the cells before it run once, the edited cells after it run in the same kernel)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

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
