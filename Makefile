# The two commands a newcomer runs: `make demo` and `make test`.
# Both run scripts/setup first, which installs what is missing and nothing else.

VENV := .venv/bin

.PHONY: setup demo test lint typecheck unit bench

setup:
	@bash scripts/setup

demo: setup
	$(VENV)/zoningsync demo < /dev/null

test: setup lint typecheck unit

lint:
	$(VENV)/ruff check .

typecheck:
	$(VENV)/mypy --strict zoningsync

unit:
	$(VENV)/pytest

# make bench BENCH_ARGS="--parcels 20000 --repeat 2 --large 0" for a short run.
BENCH_ARGS ?=

bench: setup
	$(VENV)/python bench/arcgis_vs_ogr2ogr.py $(BENCH_ARGS)
