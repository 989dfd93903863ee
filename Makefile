# dmlbench: two commands do all the set-up.
#   make demo   create .venv, run the pipeline on config/demo.yaml, render the report (where quarto is)
#   make test   create .venv, run the test suite
#   make lint   ruff check + ruff format --check (src, tests, bench), snakefmt --check, snakemake --lint per config
#   make venv-s3  optional: .venv-s3 with the S3 storage plugin and moto, for the S3 storage test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
S3_VENV ?= .venv-s3
CORES  ?= 2
LINT_CONFIGS := $(wildcard config/*.yaml)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv venv-s3 demo test lint clean

$(STAMP): envs/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r envs/requirements.txt
	$(BIN)/pip install --no-deps -e .
	@# Quarto is optional: its pip package downloads the binary while it builds, which fails offline.
	@$(BIN)/pip install quarto-cli >/dev/null 2>&1 \
	  && echo "quarto: installed from PyPI (quarto-cli)" \
	  || echo "quarto: 'pip install quarto-cli' failed (offline?); going on without it - figures and tables are still made. Install Quarto from https://quarto.org to render the report."
	touch $(STAMP)

venv: $(STAMP)

# The S3 stack needs python-dateutil<3 (botocore), .venv pins 4.0.0: a venv of its own that sees
# .venv's packages after its own (a .pth file), with envs/requirements-s3.txt installed over them.
$(S3_VENV)/.installed: $(STAMP) envs/requirements-s3.txt
	$(PYTHON) -m venv $(S3_VENV)
	@# the setuptools that comes with a new venv would shadow the newer one torch needs in .venv
	$(S3_VENV)/bin/pip uninstall -y -q setuptools
	$(S3_VENV)/bin/pip install --no-deps -r envs/requirements-s3.txt
	$(BIN)/python -c 'import sysconfig; print("import site; site.addsitedir(%r)" % sysconfig.get_paths()["purelib"])' \
	  > "$$($(S3_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_dmlbench_venv.pth"
	$(S3_VENV)/bin/python -m pip check
	touch $@

venv-s3: $(S3_VENV)/.installed

# The rules' conda env (snakemake --sdm conda) lists the pins of envs/requirements.txt itself.
envs/dmlbench.yaml: envs/requirements.txt envs/conda_env.py
	$(PYTHON) envs/conda_env.py

demo: venv
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml

test: venv
	@# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
	$(BIN)/python -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: venv
	@# snakefmt (settings in pyproject.toml) and snakemake --lint for every config; some snakemake
	@# versions exit 0 with findings, so a "Lints for" line fails the target too.
	@fail=0; \
	$(BIN)/ruff check src tests bench || { echo "make lint: ruff check found the problems above (run: $(BIN)/ruff check --fix src tests bench)" >&2; fail=1; }; \
	$(BIN)/ruff format --check src tests bench || { echo "make lint: ruff format would reformat the files above (run: $(BIN)/ruff format src tests bench)" >&2; fail=1; }; \
	$(BIN)/python -m snakefmt --check Snakefile rules/*.smk || { echo "make lint: snakefmt would reformat the files above (run: $(BIN)/python -m snakefmt Snakefile rules/)" >&2; fail=1; }; \
	for c in $(LINT_CONFIGS); do \
	  out=$$($(BIN)/snakemake --lint --configfile $$c 2>&1); rc=$$?; \
	  if [ $$rc -ne 0 ] || printf '%s\n' "$$out" | grep -q '^Lints for'; then \
	    echo "make lint: snakemake --lint --configfile $$c:" >&2; printf '%s\n' "$$out" >&2; fail=1; \
	  else echo "snakemake --lint --configfile $$c: no findings"; fi; \
	done; exit $$fail

clean:
	rm -rf results logs benchmarks report/_output .snakemake
