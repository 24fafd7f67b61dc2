"""The drivers' own test suites run through aurora_async against real local servers (fetched at run time)."""
