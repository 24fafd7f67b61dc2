"""Compatibility runs: other projects' own test suites, fetched from PyPI at run time (never copied into
this repository), run against aurora_async's local stand-ins.

``compat.data_api_suite``: the ``aurora-data-api`` client's suite against ``DataApiEmulator``.
"""
