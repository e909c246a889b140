# Every target creates .venv when missing; `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow fuzz bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,export]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/birnn demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

test: lint
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

# The property-based fuzz suite (tests/fuzz) with many examples per property; `make test` draws a few.
fuzz: $(STAMP)
	BIRNN_FUZZ=long $(BIN)/python -m pytest -q tests/fuzz

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow || test $$? -eq 5

# Each benchmark prints its table and rewrites its section of docs/performance.md;
# `make bench BENCH_FLAGS=--no-report` leaves the file as it is.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_hmm.py $(BENCH_FLAGS)
	$(BIN)/python benchmarks/bench_birnn.py $(BENCH_FLAGS)
	$(BIN)/python benchmarks/bench_birnn.py --avx2 $(BENCH_FLAGS)   # the same with the libraries capped at AVX2
	$(BIN)/python benchmarks/bench_reference.py $(BENCH_FLAGS)
	$(BIN)/python benchmarks/bench_tagger.py $(BENCH_FLAGS)   # flair peer: FLAIR_PYTHON=...
	$(BIN)/python benchmarks/bench_predict.py $(if $(PREDICT_RUN),--run $(PREDICT_RUN)) $(BENCH_FLAGS)   # PREDICT_RUN=a tagger run (else a small one is trained)
	$(BIN)/python benchmarks/bench_lm.py --data ../shared/data/timemachine/timemachine.txt $(BENCH_FLAGS)   # d2l peer: D2L_PYTHON=...

clean:
	rm -rf $(VENV) build *.egg-info
