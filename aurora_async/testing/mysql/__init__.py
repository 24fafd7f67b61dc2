"""Simulated Aurora MySQL: MariaDB servers with GTID replication and Aurora MySQL's faked catalog."""
