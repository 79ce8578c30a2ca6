# jitgate: `make run` starts the server on its embedded defaults; `make test` runs everything CI runs.
# Every target installs what it needs: Node 24 (from the npm registry, when the machine's node is older),
# the npm dependencies (npm ci), the OPA CLI (scripts/ensure-opa.sh), and for the tests a PostgreSQL server
# (scripts/ensure-postgres.sh: Debian's package; the tests run their own server on loopback).
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_VERSION := 24.21.0
TOOLS := $(CURDIR)/tools
OPA := $(TOOLS)/bin/opa
BUNDLE := bundles/jitgate.tar.gz
CAPABILITIES := build/wasm-capabilities.json
POLICY_SOURCES := $(shell find policies -type f \( -name '*.rego' -o -name '*.json' -o -name '*.yaml' -o -name '*.yml' \) -not -name '*_test.rego' 2>/dev/null)
COVERAGE_FLOOR := 90

SYSTEM_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
ifeq ($(shell [ "0$(SYSTEM_NODE_MAJOR)" -ge 24 ] && echo yes),yes)
NODE_DEP :=
else
NODE_HOME := $(TOOLS)/node/node_modules/node
NODE_DEP := $(NODE_HOME)/bin/node
export PATH := $(NODE_HOME)/bin:$(PATH)
# Native addons build against Node 24's headers (shipped inside the registry package), not the machine's.
export npm_config_nodedir = $(firstword $(wildcard $(NODE_HOME)/node_modules/node-linux-*))
endif
DEPS := node_modules/.package-lock.json

.PHONY: help run dev demo test test-long check typecheck lint policy-check policy-test bundle opa capabilities bench enforce-package clean
help:
	@echo "make run     install what is missing, build the policy bundle, start jitgate on 127.0.0.1:7443"
	@echo "make test    everything CI runs: policy checks and tests, type checks, lint, unit and end-to-end tests"
	@echo "make test-long  the long fault runs, not part of make test: a 15 s write lock, a 10 s run-away rule, 20 SIGKILLs under load, kill -9 cycles across 3 replicas and 1,000 revocations checked on another replica"
	@echo "make dev     like run, and rebuild the bundle whenever a file under policies/ changes"
	@echo "make bundle  compile policies/ to $(BUNDLE)"
	@echo "make demo    the whole story on loopback: request, approvals, token, calls, revocation"
	@echo "make bench   benchmarks (figures in README.md)"
	@echo "make enforce-package  build the enforcement library for services as dist/jitgate-enforce-<version>.tgz"

$(NODE_DEP):
	@echo "node: the machine's node is $(or $(SYSTEM_NODE_MAJOR),missing); installing Node $(NODE_VERSION) into tools/node"
	npm install --prefix $(TOOLS)/node --no-save --no-package-lock --no-audit --no-fund node@$(NODE_VERSION)
	@touch $@

$(DEPS): package-lock.json $(NODE_DEP)
	# --ignore-scripts: no dependency runs code at install (better-sqlite3 ships prebuilt binaries).
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

opa: $(OPA)
$(OPA):
	scripts/ensure-opa.sh $(OPA)

# Regenerates the builtin allowlist after an OPA or opa-wasm upgrade (needs the OPA sources that
# scripts/ensure-opa.sh keeps beside the binary it builds; set OPA_SRC to use others).
OPA_SRC ?= $(dir $(realpath $(OPA)))
capabilities: $(OPA) $(DEPS)
	node scripts/gen-capabilities.ts $(OPA) $(OPA_SRC)

bundle: $(BUNDLE)
$(BUNDLE): $(POLICY_SOURCES) $(CAPABILITIES) src/policy/build.ts src/policy/entrypoints.ts | $(OPA) $(DEPS)
	node scripts/build-bundle.ts $(OPA) policies $(CAPABILITIES) $(BUNDLE)

policy-check: $(OPA)
	$(OPA) check --strict --capabilities $(CAPABILITIES) --ignore '*_test.rego' policies
	$(OPA) check --strict policies
	@out=$$($(OPA) fmt --list policies); if [ -n "$$out" ]; then echo "not formatted (run: $(OPA) fmt -w policies):"; echo "$$out"; exit 1; fi

policy-test: $(OPA) $(DEPS)
	@mkdir -p .build
	$(OPA) test --coverage --format=json policies > .build/policy-coverage.json || { $(OPA) test -v policies; exit 1; }
	$(OPA) test policies
	node scripts/coverage-floor.ts .build/policy-coverage.json $(COVERAGE_FLOOR)

typecheck: $(DEPS)
	npx tsc --noEmit -p .

lint: $(DEPS)
	npx prettier --check --log-level warn .
	npx eslint --max-warnings 0 .

check: policy-check policy-test typecheck lint

# Each test is bounded (2 min), and so is the whole run (25 min): a failed test that leaves a server running
# ends the run with a failure instead of hanging it.
test: check $(BUNDLE)
	@scripts/ensure-postgres.sh >/dev/null
	timeout 1500 node --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec --test-reporter-destination=stdout "test/**/*.test.ts"

# The long fault runs (a 15 s lock, a 10 s run-away rule, 20 SIGKILLs under load, replicas killed and 1,000
# revocations across replicas on PostgreSQL); not part of make test.
test-long: $(BUNDLE) $(DEPS)
	@scripts/ensure-postgres.sh >/dev/null
	timeout 1200 node --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec --test-reporter-destination=stdout "test/long/*.long.ts"

run: $(BUNDLE) $(DEPS)
	./bin/jitgate serve --dev

dev: $(BUNDLE) $(DEPS)
	./bin/jitgate serve --dev --watch-policies

demo: $(BUNDLE) $(DEPS)
	scripts/demo.sh

bench: $(BUNDLE) $(DEPS)
	node bench/policy-eval.ts
	node bench/policy-handoff.ts
	node bench/enforce.ts
	node bench/check.ts
	node bench/dev-loop.ts
	scripts/ensure-debian-tool.sh h2load nghttp2-client && node bench/overload.ts
	scripts/ensure-debian-tool.sh wrk wrk && node bench/speed.ts
	node bench/in-process-check.ts
	node bench/half-rate.ts
	node bench/rss-millions.ts
	scripts/ensure-postgres.sh >/dev/null && node bench/replicas.ts

enforce-package: $(DEPS)
	node scripts/pack-enforce.ts

clean:
	rm -rf .build dist data $(BUNDLE)
