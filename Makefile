# The two set-up commands of the README: `make demo` (the judge deciding: a release promoted, a bad one caught)
# and `make test`. `make demo PERIOD=300` bounds the 25 % stage at 300 s instead of 120 s.
# `make demo BACKEND=docker` runs the same rollout on containers; `make docker-up`, `make images` prepare them.
PYTHON ?= python3
VERSION ?= v0.2.0
PERIOD ?= 120
BACKEND ?= process

# Any backend but processes needs Docker, the docker SDK and the release images: install.sh adds them.
ifneq ($(BACKEND),process)
export CANARY_DOCKER = 1
endif

.PHONY: install demo test lint format bench docker-up images report

install:
	bash scripts/install.sh

demo: install
	bash scripts/demo.sh $(VERSION) $(PERIOD) $(BACKEND)

# The whole suite includes the container tests: Docker and the release images are installed first.
# The tiers without servers of their own run on both cores; the live tiers one test at a time (they time
# real traffic, and two stages at once would share the cores they measure).
# (tests/unit/test_suite_layout.py checks that the two lists hold every test directory.)
FAST_TIERS = tests/unit tests/plugin tests/statistics app/tests
LIVE_TIERS = tests/integration tests/reliability
test: export CANARY_DOCKER = 1
test: install
	$(PYTHON) -m pytest -n 2 $(FAST_TIERS)
	$(PYTHON) -m pytest --durations=25 $(LIVE_TIERS)

LINTED = src app tests canary_tests load benchmarks plugins examples conftest.py

# Checks only (CI runs it before the tests); `make format` rewrites the files the format check names.
lint:
	ruff check $(LINTED)
	ruff format --check $(LINTED)
	mypy src

format:
	ruff format $(LINTED)

bench:
	for script in benchmarks/*.py; do $(PYTHON) $$script || exit 1; done

docker-up:
	bash scripts/docker-up.sh

images: docker-up
	canary images build

# The HTML report (Allure) of the last rollout in the run directory: .canary/allure-report/index.html.
report:
	canary report
