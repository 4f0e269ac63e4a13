"""edge-canary SLI watcher: judge a canary from Prometheus and revert it when it goes red.

Modules, one job each: options (every setting: flag, env var, type), config (flags >
environment > config file: which source wins), settings (the Settings value and its checks),
promql (query templates), prom (Prometheus HTTP client), sli (query results -> SLI values,
shape checks), judge (pure verdict logic), revert (the revert actions), decision_log (JSON
lines, secrets scrubbed), metrics (self-metrics), report (human lines), watch (the probe
loop), cli (wiring).
"""

EXIT_PROMOTE = 0
EXIT_REVERTED = 1
EXIT_HOLD = 2
EXIT_REVERT_FAILED = 3
EXIT_USAGE = 64
