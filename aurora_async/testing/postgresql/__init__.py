"""Simulated Aurora PostgreSQL: PostgreSQL servers with streaming replication and Aurora's faked catalog."""
