"""``python -m edge_app`` from a source checkout (a dev build: no baked version or faults)."""

from edge_app.server import main

raise SystemExit(main())
