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

.PHONY: book test execute venv clean assignments

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e .
	@touch $(STAMP)

# `make book HIDE_SOLUTIONS=1` builds the same book with every exercise's solution left out
# (sphinx-exercise's hide_solutions), into _build/no-solutions/_build/html: the version to publish
# while a class is working on the exercises.
ifeq ($(HIDE_SOLUTIONS),1)
BOOK_OUT   := _build/no-solutions
BOOK_FLAGS := --config $(BOOK_OUT)/_config.yml --path-output $(BOOK_OUT)
BOOK_HTML  := $(BOOK_OUT)/_build/html
else
BOOK_FLAGS :=
BOOK_HTML  := _build/html
endif

book: $(STAMP)
ifeq ($(HIDE_SOLUTIONS),1)
	@mkdir -p $(BOOK_OUT)
	$(PY) -c "import yaml; c = yaml.safe_load(open('_config.yml')); c.setdefault('sphinx', {}).setdefault('config', {})['hide_solutions'] = True; yaml.safe_dump(c, open('$(BOOK_OUT)/_config.yml', 'w'), sort_keys=False)"
endif
	$(VENV)/bin/jupyter-book build . -W --keep-going $(BOOK_FLAGS)
	@echo
	@echo "The book is at $(abspath $(BOOK_HTML)/index.html)"

# Student notebooks and autograder zips for every master in assignments/ (otter assign),
# in _build/assignments/NAME/{student,autograder}; fails if a master's solutions fail its tests.
ASSIGNMENTS_OUT ?= _build/assignments
assignments: $(STAMP)
	$(PY) assignments/manage.py build --out $(ASSIGNMENTS_OUT)

# Unit, equivalence and reliability tests, every notebook under the smoke budget (nbval),
# and the book build, in parallel.
test: $(STAMP)
	$(PY) -m pytest -n auto --dist loadscope --nbval-lax tests notebooks

# Re-run notebooks in place with the full budget (cpu, or gpu when CUDA is present).
execute: $(STAMP)
	$(PY) -m seqlab execute $(NB)

clean:
	rm -rf _build
