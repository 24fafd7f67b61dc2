"""The RDS Data API: statements over HTTPS, no connection to keep (work in progress)."""
