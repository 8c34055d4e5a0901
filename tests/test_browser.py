"""A real browser on a real JupyterLab: notebook 02's explorer (``gain_widget`` over the benchmark's records) as a
reader meets it. JupyterLab runs headless on loopback with a token; Debian's chromium, driven by Playwright,
runs the notebook, checks the cell shows the widget and nothing else (no stale figure, no function repr),
moves the metric dropdown and checks the figure changed. Screenshots go to ``$LLMREC_ARTIFACTS`` (default
``.artifacts/browser``). With no browser this fails with how to get one; ``LLMREC_NO_BROWSER=1`` skips it
on purpose (a laptop without chromium), never CI."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

CHROMIUM = os.environ.get("LLMREC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CELLS = [
    "%matplotlib inline\nfrom llmrec_lite import evidence\nfrom llmrec_lite.explore import gain_widget",
    f"saved = evidence.runs({str(ROOT / 'benchmarks' / 'evidence.jsonl')!r})\n"
    "records = {r['model']: r for r in saved if r['dataset'] == 'ml-100k' and r['split'] == 'loo'}\n"
    "sorted(records)",
    "gain_widget(records, 'sasrec')",
]


def _browser():
    if os.environ.get("LLMREC_NO_BROWSER", "0") not in ("", "0"):
        pytest.skip("LLMREC_NO_BROWSER is set: the real-browser test is off on purpose")
    if CHROMIUM is None:
        pytest.fail("the browser test needs Debian's chromium: `apt-get install chromium` (or set LLMREC_CHROMIUM "
                    "to a Chromium binary; LLMREC_NO_BROWSER=1 skips the test on purpose)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs the playwright package: pip install -e '.[dev]'")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on loopback with a random token, serving a folder with the explorer notebook."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "explorer.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = os.environ | {"JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / ".rt"),
                        "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
                             "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabServerApp.check_for_updates_class="
                             "jupyterlab.NeverCheckForUpdate"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not answer in 120 s: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_explorer_in_jupyterlab_shows_one_live_figure_and_redraws(lab):
    sync_playwright = _browser()
    url, token = lab
    shots = Path(os.environ.get("LLMREC_ARTIFACTS", ROOT / ".artifacts")) / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(int(os.environ.get('LLMREC_BROWSER_TIMEOUT_MS', 120_000)))
            page.goto(f"{url}/lab/tree/explorer.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()  # the kernel is up and connected
            page.get_by_role("menuitem", name="Run").click()
            page.locator("li[data-command='runmenu:run-all']").click()
            cell = page.locator(".jp-Notebook .jp-CodeCell").nth(2)
            widget_img = cell.locator(".jp-OutputArea-output .widget-output img")
            widget_img.first.wait_for()
            page.screenshot(path=str(shots / "1-opened.png"), full_page=True)
            outputs = cell.locator(".jp-Cell-outputArea > .jp-OutputArea-child")  # the cell's own outputs
            texts = outputs.all_inner_texts()
            assert outputs.count() == 1, f"the explorer cell shows {outputs.count()} outputs, want the widget alone: {texts}"
            assert not any("function" in t for t in texts), texts
            assert cell.locator("img").count() == 1, "a figure outside the widget's own output (a stale copy)"
            first = widget_img.first.get_attribute("src")
            cell.locator("select").first.select_option("hr@20")
            page.wait_for_function(
                "([sel, old]) => { const i = document.querySelectorAll(sel)[2]?.querySelector('.widget-output img');"
                " return i && i.getAttribute('src') !== old; }",
                arg=[".jp-Notebook .jp-CodeCell", first])
            page.screenshot(path=str(shots / "2-after-metric-change.png"), full_page=True)
            assert cell.locator("img").count() == 1 and outputs.count() == 1
            assert widget_img.first.get_attribute("src") != first
        except BaseException:
            page.screenshot(path=str(shots / "failed.png"), full_page=True)
            (shots / "failed.html").write_text(page.content())
            raise
        finally:
            browser.close()
