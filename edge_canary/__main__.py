import sys

from edge_canary.cli import main

sys.exit(main())
