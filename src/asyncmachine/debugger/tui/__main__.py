"""`python -m asyncmachine.debugger.tui`: am-dbg's UI."""

import sys

from . import main

sys.exit(main())
