# The two commands: `make test` and `make report`. Each sets itself up from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model

# Backends replayed from cassettes, and local engines run live on the embedded model.
HTTP_BACKENDS ?= openai,inference-client,litellm,litellm-router,azure,bedrock
LOCAL_BACKENDS ?= transformers,mlx

export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install model test test-harness test-suites report lint mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch, pinned exactly (any other spec pulls the CUDA stack)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

model: install
	$(BIN)/harness fetch-model

test: install model test-harness test-suites

test-harness:
	$(BIN)/python -m harness.cli scan cassettes
	$(BIN)/python -m pytest tests -q

test-suites:
	$(BIN)/python -m pytest suites -q --backend=$(HTTP_BACKENDS)
	@if [ -n "$(LOCAL_BACKENDS)" ]; then $(BIN)/python -m pytest suites -q --backend=$(LOCAL_BACKENDS); fi

report: install model
	$(BIN)/harness report --backend=all --subjects=adapters,smolagents

# Mutants of harness/{stop_sequences,tool_calls,messages}.py and the adapters' wire translation,
# judged by `pytest suites` alone on replayed cassettes. MUTATION_FAIL_UNDER=95 makes a low score fail.
MUTATION_BACKENDS ?= openai,bedrock
MUTATION_JOBS ?= 2
mutation: install
	$(BIN)/python tools/mutation.py --backends=$(MUTATION_BACKENDS) --jobs=$(MUTATION_JOBS) \
		$(if $(MUTATION_FAIL_UNDER),--fail-under=$(MUTATION_FAIL_UNDER))

lint: install
	$(BIN)/ruff check harness adapters suites tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) reports/_runs mutants
