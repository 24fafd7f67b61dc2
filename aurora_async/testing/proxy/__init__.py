"""The fault proxy: a child process that forwards TCP connections to the database servers and injects
network faults, and the parent-side handle that drives it."""
