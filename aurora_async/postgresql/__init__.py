"""The postgresql engine: its driver boundary, dialects and connection facade."""
