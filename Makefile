# `make run` and `make test` do all set-up on a fresh Debian/Ubuntu machine (as root).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: run test lint image system-packages demo bench bench-throughput bench-http bench-hosts bench-queue bench-rules clean

run: system-packages $(VENV)/.installed demo
	@$(BIN)/hb2r plan examples/demo.yaml || [ $$? -eq 2 ]
	@echo "Starting the agent on the demo library; stop it with Ctrl-C. Output goes to demo/archive/."
	@$(BIN)/hb2r run examples/demo.yaml

test: system-packages $(VENV)/.installed-test
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check agent tests bench scripts
	$(BIN)/mypy agent
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint -q playbooks/

# hb2r's container image from this checkout (packaging/Containerfile), with podman or else docker.
# `make image IMAGE=registry.example/hb2r:1.2`; BUILD_ARGS for more, e.g. --build-arg PIP_INDEX_URL=...
IMAGE ?= localhost/hb2r:latest
ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
BUILD_ARGS ?=
# Behind a TLS-intercepting proxy, podman mounts the CA bundle PIP_CERT (or SSL_CERT_FILE) names into the build.
PIP_CA := $(or $(PIP_CERT),$(SSL_CERT_FILE))
image:
	$(ENGINE) build $(if $(filter podman,$(notdir $(ENGINE))),--format=docker $(if $(wildcard $(PIP_CA)),--volume $(realpath $(PIP_CA)):/etc/ssl/build-ca.pem:ro --build-arg PIP_CERT=/etc/ssl/build-ca.pem)) \
	  --file packaging/Containerfile --tag $(IMAGE) $(BUILD_ARGS) .
	@$(ENGINE) image inspect --format 'built $(IMAGE): {{.Size}} bytes' $(IMAGE)

system-packages:
	@bash scripts/install-system-packages.sh

demo:
	@bash scripts/make-demo.sh demo

bench: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/scan.py

bench-throughput: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/throughput.py

bench-http: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/api.py

bench-hosts: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/hosts.py

bench-queue: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/queue.py

bench-rules: system-packages $(VENV)/.installed-test
	$(BIN)/python bench/rules.py

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
