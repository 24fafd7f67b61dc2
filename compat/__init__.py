"""``make compat``: the drivers' own test suites, and an independent Data API client's, run through
aurora_async against real servers (fetched from PyPI at run time, never copied here)."""
