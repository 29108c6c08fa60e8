# The README's commands. Each target sets itself up first (creates .venv and installs the
# pinned requirements and igkd, editable), so on a fresh machine `make demo` or `make test`
# is all there is to type; the set-up reruns only when requirements.txt or pyproject.toml change.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
INSTALLED := $(VENV)/.installed
PROFILE ?= profiles/demo
REPORT ?= results/digits/report.html

.PHONY: setup demo test report screenshots clean-demo

setup: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements.txt -e .
	$(VENV)/bin/python -c "import igkd, torch; print('igkd', igkd.__version__, 'torch', torch.__version__)"
	touch $@

demo: $(INSTALLED)  ## every experiment, small, on the digits demo (about 5 minutes on 2 CPU cores)
	$(VENV)/bin/snakemake --profile $(PROFILE)

test: $(INSTALLED)  ## the default test suite (about 10 minutes on 2 CPU cores)
	$(VENV)/bin/python -m pytest -q

report: $(INSTALLED)  ## the HTML report of the demo run (figures, tables, captions)
	$(VENV)/bin/snakemake --profile $(PROFILE) --report $(REPORT)

screenshots: report  ## look at the report in headless Chromium (skips when none is installed)
	$(VENV)/bin/python tools/report_screenshots.py $(REPORT) results/digits/report_screenshots

clean-demo:  ## remove the demo's results and logs (keeps .venv)
	rm -rf results/digits logs/digits
