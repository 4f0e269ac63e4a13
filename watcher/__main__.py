"""`python -m watcher`: the same entry point as the edge-canary-watcher console script."""

from watcher.cli import main

raise SystemExit(main())
