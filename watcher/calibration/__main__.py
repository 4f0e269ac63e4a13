"""`python -m watcher.calibration`: see watcher.calibration.report."""

from watcher.calibration.report import main

raise SystemExit(main())
