"""``python -m asyncmachine.gen`` runs am-gen."""

import sys

from . import main

sys.exit(main())
