"""The RDS Data API emulator: the ``rds-data`` protocol over HTTP, run on a simulator's real databases."""
