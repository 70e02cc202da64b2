# Two commands matter: `make run` (install what is missing, run the pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
US := $(VENV)/bin/userstream
PYTHON ?= python3

.PHONY: setup install run up down status test test-unit lint bench clean browser images cluster

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed

install: setup
	$(US) install

run: install
	$(US) up --demo

up: install
	$(US) up

down:
	$(US) down

status:
	$(US) status

# the pipeline's container image (podman installed if missing; a second build reuses its layers)
images: install
	$(US) images build

# the whole pipeline as a cluster of containers (deploy/compose.yaml); `userstream cluster down` stops it
cluster: images
	$(US) cluster up

lint: setup
	$(VENV)/bin/ruff check src tests dags
	$(VENV)/bin/mypy

test-unit: setup
	$(VENV)/bin/pytest tests/unit -q

# Debian's chromium for the dashboard's browser test (Playwright drives it; it never downloads a browser)
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "warning: chromium could not be installed: the browser test will be skipped"

test: install lint browser
	$(VENV)/bin/pytest tests -q --durations=20

clean:
	-$(US) down
	rm -rf .userstream .userstream-test
