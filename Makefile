# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run serve test install lint format bench clean

# For development: DEBUG on (the debug page, the published development key, the demo user).
run: export DEBUG = true
run: install
	@echo "DEBUG is on: make run is for development (make serve runs as in production)."
	@scripts/ensure-bubblewrap --warn
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py ensure_demo_user
	@$(PY) manage.py provider_status
	$(PY) manage.py runserver $(HOST):$(PORT)

# As in production (README, "Deploying"): DEBUG off, static files collected and served by the
# application, Daphne in PROCESSES processes (more than one needs REDIS_URL). Without a
# SECRET_KEY in the environment, one is made once and kept in .secret_key.
PROCESSES ?= 1
serve: install
	@scripts/ensure-bubblewrap --warn
	@test -n "$$SECRET_KEY" -o -f .secret_key || \
	  $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > .secret_key
	@export DEBUG=false SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}"; \
	  $(PY) manage.py migrate --noinput && \
	  STATIC_HASHED=true $(PY) manage.py collectstatic --noinput --verbosity 0 && \
	  $(PY) manage.py provider_status && \
	  $(PY) manage.py serve --host $(HOST) --port $(PORT) --processes $(PROCESSES)

# The tests read static files where they are, never a `make serve` collection of them.
test: install
	@scripts/ensure-chromium "$$PYTEST_ARGS"
	@scripts/ensure-bubblewrap
	@mkdir -p .test-static
	STATIC_ROOT=$(CURDIR)/.test-static $(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

# Any Python >= 3.12 will do; with pyenv, .python-version selects 3.12.
$(PY):
	@py=""; for candidate in python3.14 python3.13 python3.12 python3 python; do \
	  if command -v $$candidate >/dev/null 2>&1 && \
	     $$candidate -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    py=$$candidate; break; fi; done; \
	if [ -z "$$py" ]; then \
	  echo "chatapp needs Python 3.12 or newer (Django 6 does); none was found on PATH." >&2; \
	  echo "Install one (e.g. 'pyenv install 3.12') and run make again." >&2; exit 1; fi; \
	echo "Creating $(VENV) with $$($$py --version)"; \
	$$py -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# Figures, not assertions, each against a baseline measured in the same run: our stream
# parsing against the openai client's typed stream; reading a turn against its bare SQL;
# whole answers through real Daphne processes and websockets against a bare Channels relay
# (LOAD_ARGS: see bench/load.py).
bench: install
	$(PY) bench/stream_lag.py $(BENCH_ARGS)
	$(PY) bench/turn_read.py
	$(PY) bench/load.py $(LOAD_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache test-results
