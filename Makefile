# The two set-up commands of the README: `make demo` (a full local rollout) and `make test`.
PYTHON ?= python3
VERSION ?= v0.2.0
PERIOD ?= 20

.PHONY: install demo test lint bench

install:
	bash scripts/install.sh

demo: install
	bash scripts/demo.sh $(VERSION) $(PERIOD)

test: install
	$(PYTHON) -m pytest

lint:
	ruff check src app tests canary_tests load benchmarks
	mypy src

bench:
	for script in benchmarks/*.py; do $(PYTHON) $$script || exit 1; done
