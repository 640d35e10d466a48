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

# The book's JavaScript is served by the built site itself, never by a CDN, so that math and
# widgets render offline: MathJax, require.js and the ipywidgets HTML manager are installed from
# the npm registry into _build/npm (never committed) and copied into the site's vendor/ folder
# (not _static/, which Jupyter Book links from every page). _config.yml points at vendor/.
NPM_DIR  := _build/npm
NPM_PKGS := mathjax@3.2.2 requirejs@2.3.8 @jupyter-widgets/html-manager@1.0.6
NODE_MODULES := $(NPM_DIR)/node_modules

$(NPM_DIR)/.installed:
	@command -v npm >/dev/null || { echo "make book needs npm (e.g. apt install npm) to fetch MathJax and the widget manager"; exit 1; }
	@mkdir -p $(NPM_DIR)
	@# under a lock: two builds started together (the parallel tests) install once
	flock $(NPM_DIR)/.lock sh -c 'test -f $@ || { npm install --no-save --no-audit --no-fund --ignore-scripts --loglevel=error --prefix $(NPM_DIR) $(NPM_PKGS) && touch $@; }' 

# `make book HIDE_SOLUTIONS=1` builds the same book with every exercise's solution left out
# (sphinx-exercise's hide_solutions), into _build/no-solutions/_build/html: the version to publish
# while a class is working on the exercises. BOOK_OUT=DIR builds into DIR/_build/html instead.
ifeq ($(HIDE_SOLUTIONS),1)
BOOK_OUT   ?= _build/no-solutions
BOOK_FLAGS  = --config $(BOOK_OUT)/_config.yml
else
BOOK_OUT   ?= .
BOOK_FLAGS  =
endif
BOOK_HTML   = $(BOOK_OUT)/_build/html

book: $(STAMP) $(NPM_DIR)/.installed
ifeq ($(HIDE_SOLUTIONS),1)
	$(PY) -m seqlab config-without-solutions $(BOOK_OUT)/_config.yml
endif
	$(VENV)/bin/jupyter-book build . -W --keep-going --path-output $(BOOK_OUT) $(BOOK_FLAGS)
	rm -rf $(BOOK_HTML)/vendor && mkdir -p $(BOOK_HTML)/vendor/html-manager
	cp -r $(NODE_MODULES)/mathjax/es5 $(BOOK_HTML)/vendor/mathjax
	cp $(NODE_MODULES)/requirejs/require.js $(BOOK_HTML)/vendor/require.js
	cp -r $(NODE_MODULES)/@jupyter-widgets/html-manager/dist $(BOOK_HTML)/vendor/html-manager/dist
	find $(BOOK_HTML)/vendor -name '*.map' -delete
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
