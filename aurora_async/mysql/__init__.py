"""The mysql engine: its driver boundary, dialects and connection facade."""
