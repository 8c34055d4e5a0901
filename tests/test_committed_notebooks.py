"""The committed notebooks, as a reader on GitHub sees them: clean outputs (no progress-bar text, stderr, warnings,
local paths or widget reprs), figures of at least 100 dpi, each file under 2 MB, prose at the end, and no word of
our process ("issue") in what a reader reads. ``reader_problems`` is the rule; the last tests show it can fail."""
from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 2_000_000
MIN_DPI = 100
PROGRESS = re.compile(r"\d+%\|")  # tqdm's text bar: " 40%|████      | 4/10"
LOCAL_PATH = re.compile(r"/home/|/root/|/tmp/|/work/|\.venv|site-packages")
WIDGET_REPR = re.compile(r"^\s*(VBox|HBox|interactive|Output|Tab|Accordion|Box)\(|^\s*<function ")
PROCESS_WORD = re.compile(r"\bissues?\b", re.I)


def png_dpi(png: bytes) -> float:
    """The resolution a PNG declares in its pHYs chunk (pixels per metre -> dots per inch); 0 when it has none."""
    at = png.find(b"pHYs")
    if at < 0:
        return 0.0
    per_metre, _, unit = struct.unpack(">IIB", png[at + 4:at + 13])
    return per_metre * 0.0254 if unit == 1 else 0.0


def _text(out) -> str:
    text = out.get("text", "")
    plain = out.get("data", {}).get("text/plain", "")
    return "".join(text) + "".join(plain)


def reader_problems(nb, size: int) -> list[str]:
    """What a reader should not meet in a committed notebook, one line each (empty: clean)."""
    found = []
    if size >= MAX_BYTES:
        found.append(f"{size / 1e6:.1f} MB (at most {MAX_BYTES / 1e6:.0f} MB)")
    for i, cell in enumerate(nb.cells):
        where = f"cell {i}"
        if cell.cell_type == "markdown" and PROCESS_WORD.search(cell.source):
            found.append(f"{where}: 'issue' in reader text")
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = _text(out)
            if out.get("name") == "stderr":
                found.append(f"{where}: stderr output")
            if PROGRESS.search(text):
                found.append(f"{where}: progress-bar text")
            if re.search(r"\w*Warning\b", text):
                found.append(f"{where}: a warning")
            if LOCAL_PATH.search(text):
                found.append(f"{where}: a local path")
            if WIDGET_REPR.search(text):
                found.append(f"{where}: a widget's repr instead of its drawing")
            if PROCESS_WORD.search(text):
                found.append(f"{where}: 'issue' in an output")
            png = out.get("data", {}).get("image/png")
            if png and round(png_dpi(base64.b64decode(png))) < MIN_DPI:
                found.append(f"{where}: a figure at {png_dpi(base64.b64decode(png)):.0f} dpi (at least {MIN_DPI})")
    if not nb.cells or nb.cells[-1].cell_type != "markdown":
        found.append("does not end in prose (a markdown cell)")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean_for_a_reader(path):
    nb = nbformat.read(path, as_version=4)
    assert any(c.cell_type == "code" and c.get("outputs") for c in nb.cells), f"{path.name} has no outputs"
    assert reader_problems(nb, path.stat().st_size) == []


def test_there_are_eight_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(8)]


def _figure_png(dpi: int) -> str:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.set_title("t")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def test_the_rule_finds_each_defect_in_a_hand_made_notebook():
    v4 = nbformat.v4
    out = [v4.new_output("stream", name="stderr", text="oops\n"),
           v4.new_output("stream", name="stdout", text=" 40%|████      | 4/10\n"),
           v4.new_output("stream", name="stdout", text="UserWarning: careful\n"),
           v4.new_output("stream", name="stdout", text="read /root/.cache/x.npy\n"),
           v4.new_output("execute_result", data={"text/plain": "VBox(children=(IntSlider(value=3),))"}),
           v4.new_output("display_data", data={"image/png": _figure_png(72), "text/plain": "<Figure>"})]
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# Title\nsee the issue tracker"),
                                v4.new_code_cell("x = 1", outputs=out)])
    got = reader_problems(nb, 3_000_000)
    for want in ("MB", "'issue' in reader text", "stderr", "progress-bar", "warning", "local path", "widget's repr",
                 "72 dpi", "does not end in prose"):
        assert any(want in g for g in got), (want, got)
    clean = v4.new_notebook(cells=[v4.new_code_cell("x = 1", outputs=[
        v4.new_output("display_data", data={"image/png": _figure_png(100), "text/plain": "<Figure>"})]),
        v4.new_markdown_cell("## Takeaways\nIDs still help.")])
    assert reader_problems(clean, 10_000) == []
