# edge-canary: the front door. Every knob is a make or environment variable; the work is done by
# playbooks/ and the edge-canary command (edge_canary/). `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export PY
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(VENV)/bin:$(subst $(VENV)/bin:,,$(PATH))

ARTIFACTS_DIR ?= $(CURDIR)/artifacts
PYTEST_ARGS ?=
# Two test labs side by side on two CPUs. Three looked faster on a shared machine, but in CI each
# three-worker run was the slower: 4317 s and 4236 s, against 3522, 3523 and 3527 s with two.
TEST_WORKERS ?= 2
JSON ?=

.PHONY: help setup demo test lint lab-up lab-down lab-clean lab-status artifacts

# <scenarios> in a help line is the game-day scenario list, from edge_canary/gameday/scenarios.py (its one
# home; standard library only, so that this works before make setup).
help: ## List the targets
	@scenarios=$$(python3 -m edge_canary.gameday.scenarios --names) || scenarios='(edge-canary gameday --list)'; \
	grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk -F':.*## ' -v scenarios="$$scenarios" '{sub(/<scenarios>/, scenarios, $$2); printf "  make %-16s %s\n", $$1, $$2}'

setup: ## Install the Debian packages and the Python environment (skipped when present)
	@bash scripts/bootstrap.sh

demo: setup ## Bring the lab up and show it serving traffic
	@bash scripts/demo.sh

test: setup ## Run the whole test suite (brings its own lab up and down)
	@"$(PY)" -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: setup ## ruff, mypy, yamllint, ansible-lint, ansible-test sanity
	@bash scripts/lint.sh

lab-up: setup ## Start the local lab (LAB_NODES, LAB_POPS, LAB_TRAFFIC_RPS, LAB_NOISE_ERRORS, LAB_NOISE_LATENCY, LAB_*_PORT, LAB_MODE, LAB_SUBNET)
	@bash scripts/lab-up.sh

lab-down: setup ## Stop every lab process (state is kept; lab-clean removes it)
	@bash scripts/lab-down.sh

lab-clean: lab-down ## Stop the lab and remove its state folder
	@rm -rf "$${LAB_DIR:-$(CURDIR)/.lab}"

lab-status: setup ## Show each lab component's state (JSON=1 for JSON)
	@"$(PY)" -m edge_canary lab-status $(if $(JSON),--json)

artifacts: setup ## Build the standard edge binaries (v1, v2 and the faulty v2s) into ARTIFACTS_DIR
	@bash scripts/build-standard-artifacts.sh "$$ARTIFACTS_DIR"

# --- Releases -------------------------------------------------------------------------------
# The runbook's variables, handed to `edge-canary deploy-canary` / `edge-canary rollback` through the
# environment: operator input is data, checked by one schema (edge_canary/ops/inputs.py) and passed to
# Ansible as an !unsafe extra-vars file, never through this shell or `-e key=value`.
release_vars := ARTIFACT INVENTORY CANARY_NODE PEER_NODES BATCH CONFIG SLI_WINDOW SLI_PROBE_INTERVAL PROM_URL \
       PROM_P95_THRESHOLD_S PROM_ERR_RATE_THRESHOLD ROLLBACK_BINARY MIGRATIONS_DIR FORCE_MIGRATE FORCE CHECK \
       ARTIFACT_SHA256 NODES MAX_UNAVAILABLE APPROVE APPROVAL_TIMEOUT DEPLOY_ID
# A value given on make's command line is taken as its literal text: make would otherwise expand it
# when exporting it, and NODES='$(shell …)' would run in make itself.
literal = $(foreach v,$(1),$(if $(filter command line,$(origin $(v))),$(eval override $(v) := $$(value $(v)))))
$(call literal,$(release_vars))
export $(release_vars)

.PHONY: deploy-canary rollback approve abort resume

deploy-canary: setup ## Canary deploy: make deploy-canary ARTIFACT=path [CANARY_NODE= BATCH= CONFIG= ARTIFACT_SHA256= APPROVE=1 CHECK=1 …]
	@"$(PY)" -m edge_canary deploy-canary

approve: setup ## Let a deploy waiting for approval (APPROVE=1) roll its peers: make approve DEPLOY_ID=<id>
	@"$(PY)" -m edge_canary approve

abort: setup ## Revert the canary of a deploy waiting for approval, the deploy stops: make abort DEPLOY_ID=<id>
	@"$(PY)" -m edge_canary abort

resume: setup ## Re-judge a held deploy's canary (no re-push) and roll its peers if green: make resume DEPLOY_ID=<id> [APPROVE=1]
	@"$(PY)" -m edge_canary resume

rollback: setup ## Roll nodes back to .previous: make rollback [NODES=edge-2,edge-3|all] [ROLLBACK_BINARY=path] [BATCH= MAX_UNAVAILABLE=] [CHECK=1]
	@"$(PY)" -m edge_canary rollback

# --- On-call: fleet status and rollout_pct moves -------------------------------------------
# PCT, STAGES and ROLLOUT_HOLD go to `edge-canary rollout` through the environment, like the runbook's
# variables above.
$(call literal,PCT STAGES ROLLOUT_HOLD)
export PCT STAGES ROLLOUT_HOLD

.PHONY: status rollout

status: setup ## One row per node; exits non-zero naming drained/down nodes or mixed versions: make status [JSON=1]
	@"$(PY)" -m edge_canary status $(if $(JSON),--json)

rollout: setup ## Move rollout_pct on every node: make rollout PCT=10 | STAGES="1 10 50 100" [ROLLOUT_HOLD=s CHECK=1 FORCE=1]
	@"$(PY)" -m edge_canary rollout

# --- Game days -------------------------------------------------------------------------------
# Drills against the lab (or INVENTORY=): the real playbooks with a deliberately broken release,
# checked by edge-canary gameday itself; reports in REPORT_DIR (reports/). docs/GAMEDAY.md has the knobs.
# Literal like the runbook's variables; ARTIFACTS_DIR too, read by edge-canary gameday from the environment.
gameday_vars := SCENARIO ALLOW_PRODUCTION REPORT_DIR MAX_STALENESS HEALTH_TIMEOUT GAMEDAY_RPS LOADGEN_URL \
       MAX_COLLATERAL BACKGROUND_ERRORS ROLLOUT_STAGES PROM_STOP_CMD PROM_START_CMD ARTIFACTS_DIR
$(call literal,$(gameday_vars))
export $(gameday_vars)

.PHONY: gameday

gameday: setup ## Game-day drill: make gameday SCENARIO=<scenarios> [INVENTORY=]
	@"$(PY)" -m edge_canary gameday

# --- Benchmarks ------------------------------------------------------------------------------
# On a lab of its own (.lab-bench, ports 24080…) unless LAB_DIR/LAB_*_PORT say otherwise; writes
# docs/BENCHMARKS.md. BENCH_ARGS passes more flags (edge-canary bench --help), e.g. --fleets "3:1,2 10:1,5".
.PHONY: bench

bench: setup ## Measure revert time, drops under load, roll time, watcher cost: make bench [BENCH_RUNS=3] [BENCH_QUICK=1] [BENCH_ARGS=]
	@"$(PY)" -m edge_canary bench $(if $(filter 1 true yes,$(BENCH_QUICK)),--quick) $(if $(BENCH_RUNS),--runs $(BENCH_RUNS)) $(BENCH_ARGS)

# --- Calibration -----------------------------------------------------------------------------
# The real judge against simulated traffic with Prometheus semantics (watcher/calibration/):
# false reverts and detection per scenario, written to docs/CALIBRATION.md.
CALIBRATE_WINDOWS ?= 1000
.PHONY: calibrate

calibrate: setup ## Measure the judge's false reverts and detection: make calibrate [CALIBRATE_WINDOWS=1000]
	@nice -n 19 "$(PY)" -m watcher.calibration --windows $(CALIBRATE_WINDOWS) --out docs/CALIBRATION.md
