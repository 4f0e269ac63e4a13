"""edge-canary SLI watcher: judge a canary from Prometheus and revert it when it goes red.

Modules, one job each: options (every setting: flag, env var, type), config (flags >
environment > config file: which source wins), settings (the Settings value and its checks),
promql (query templates), prom (Prometheus HTTP client), sli (query results -> SLI values,
shape checks), evidence (true counts from raw counters, per probe, since start and sliding),
stats (exact tests), judge and judge_tests (pure verdict logic), revert (the revert actions),
decision_log (JSON lines, secrets scrubbed), metrics (self-metrics), report (human lines),
watch (the probe loop), cli (wiring), calibration (the harness behind docs/CALIBRATION.md).
"""

EXIT_PROMOTE = 0
EXIT_REVERTED = 1
EXIT_HOLD = 2
EXIT_REVERT_FAILED = 3
EXIT_WOULD_REVERT = 4  # shadow mode: red, but nothing was reverted
EXIT_USAGE = 64
