"""The simulator core: ``AuroraSimulator``, its control plane, failover, timeline, addresses and
temporary directories."""
