"""The benchmarks: revert time, drops under load, roll time and the watcher's cost (`edge-canary bench`)."""
