"""Wording that more than one group of the doctor's checks uses: how an instance host pattern is written,
and why a connection could not be opened."""

from __future__ import annotations

import ssl

from .._config import Config


def pattern_text(config: Config) -> str:
    pattern = config.options.cluster_instance_host_pattern
    if pattern is None:
        return ""
    return pattern.template + ("" if pattern.port is None else f":{pattern.port}")


def connect_failure(config: Config, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if config.driver.is_login_error(exc):
        return f"the server refused the login: {exc}"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS failed: {exc}"
    return f"{type(exc).__name__}: {exc}"
