# Two commands for a newcomer: `make book` and `make test`. See README.md.
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is installed only when the venv has none; override e.g. TORCH='torch --index-url https://download.pytorch.org/whl/cpu'
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.seqlab-installed
NB     ?=
# tests and local runs read corpora from a pre-fetched folder when there is one (CI has no network)
SHARED := $(wildcard ../shared/data)
export SEQLAB_DATA ?= $(if $(SHARED),$(abspath $(SHARED)),)

.PHONY: book test execute venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e .
	@touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@echo
	@echo "The book is at $(abspath _build/html/index.html)"

# Unit, equivalence and reliability tests, every notebook under the smoke budget (nbval),
# and the book build, in parallel.
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope --nbval-lax tests notebooks

# Re-run notebooks in place with the full budget (cpu, or gpu when CUDA is present).
execute: $(STAMP)
	$(PY) -m seqlab execute $(NB)

clean:
	rm -rf _build
