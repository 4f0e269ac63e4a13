"""edge-canary's tools: the on-call commands (ops), game days, benchmarks and the lab.

One console command, `edge-canary <subcommand>` (or `python -m edge_canary <subcommand>`), reaches them
all; edge_canary.cli lists the subcommands. The SLI watcher is its own package, `watcher`.
"""
