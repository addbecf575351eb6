"""``python -m asyncmachine.visualizer`` runs am-vis."""

import sys

from . import main

sys.exit(main())
