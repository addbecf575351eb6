"""am-dbg: the debugger of asyncmachine (the Textual UI lives in `tui`)."""
