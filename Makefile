# KeGuan CRM: `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export FLASK_APP := run.py
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test install migrate lint bench i18n clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/flask crm first-run

run: migrate
	$(PY) run.py

test: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

# Refresh the English catalogue from the code and compile (the .mo files are committed)
i18n: $(STAMP)
	PYTHONPATH=app/translations $(VENV)/bin/pybabel extract -F babel.cfg -k lazy_gettext -k lazy -k _ -k gettext -k lazy_pgettext:1c,2 --sort-by-file -o $(VENV)/messages.pot .
	$(VENV)/bin/pybabel update -i $(VENV)/messages.pot -d app/translations -l en --no-fuzzy-matching
	$(VENV)/bin/pybabel compile -d app/translations --statistics

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
