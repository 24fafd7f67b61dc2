"""The exceptions aurora_async raises. SQL errors from the driver are never wrapped.

::

    AuroraError
    ├── ConfigurationError(AuroraError, ValueError)   bad DSN, option or value; names it
    ├── ReadWriteSplittingError                       set_read_only() refused (inside a transaction)
    ├── CustomEndpointError                           a custom endpoint's members could not be read
    ├── CredentialsError                              no credentials could be obtained
    │   ├── IamAuthError                              an IAM token could not be generated
    │   └── SecretsManagerError                       the secret could not be fetched or read
    └── FailoverError
        ├── FailoverSuccessError                      now on the new instance: re-run the statement
        ├── TransactionResolutionUnknownError         failed inside a transaction or its COMMIT
        └── FailoverFailedError                       no instance reachable in time: unusable

A failover error's ``__cause__`` is the driver error that triggered it, and its message quotes it.
Raised by a connection, each failover error is also that driver's own error for a lost connection
(``aurora_async.postgresql.errors``: asyncpg's ``ConnectionDoesNotExistError``;
``aurora_async.mysql.errors``: pymysql's ``OperationalError`` with ``args[0]`` 2013, or 2003 when the
failover failed), so code written for the driver handles a failover as it handled a lost connection.
"""

from __future__ import annotations


class AuroraError(Exception):
    """Base class of every error raised by aurora_async itself."""


class ConfigurationError(AuroraError, ValueError):
    """A DSN, option or value is not acceptable. Raised by ``connect()`` before any network I/O where
    possible; the message names the option and what it accepts."""


class ReadWriteSplittingError(AuroraError):
    """``set_read_only()`` cannot switch now: the session is inside a transaction, which lives on the
    current physical connection. Commit or roll back first."""


class CustomEndpointError(AuroraError):
    """The members of a custom endpoint could not be read from the RDS API (``DescribeDBClusterEndpoints``
    refused: the AWS principal lacks ``rds:DescribeDBClusterEndpoints``; no such endpoint; no answer in
    time). ``code`` is the AWS error code when AWS gave one (``AccessDenied``, ...). Give the members
    with ``custom_endpoint_members`` to connect without the API."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class CredentialsError(AuroraError):
    """Credentials for a connection could not be obtained. ``code`` is the AWS error code when AWS gave
    one (``ResourceNotFoundException``, ``AccessDeniedException``, ...); messages never contain a
    password, token or secret value."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class IamAuthError(CredentialsError):
    """An IAM database authentication token could not be generated (no AWS credentials, no region)."""


class SecretsManagerError(CredentialsError):
    """The Secrets Manager secret could not be fetched, or is not JSON with the expected keys."""


class FailoverError(AuroraError):
    """The connection lost its instance and a failover ran. See the subclasses for what to do."""


class FailoverSuccessError(FailoverError):
    """The failover succeeded: the same connection object now talks to another instance (see
    ``conn.instance``). Session state set with raw ``SET`` is gone; re-apply it and re-run the
    statement that raised this.

    ``may_have_run`` tells whether the statement had reached the old instance when the connection
    failed. When it is True, an autocommit write may have committed there before the connection was
    lost (the server cannot tell the client once its socket is gone): make such writes idempotent, or
    check for their effect before re-running them. When it is False the statement was never sent.
    """

    def __init__(self, message: str, *, may_have_run: bool = True) -> None:
        super().__init__(message)
        self.may_have_run = may_have_run


class TransactionResolutionUnknownError(FailoverError):
    """The failure hit an open transaction or its COMMIT, so whether it committed is unknown. The
    connection is usable again (on another instance); re-run the whole transaction, idempotently.

    The outcome no longer changes once this is raised: when the failover came back to the same
    instance, the old server session was ended first, so a read-back tells whether it committed."""


class FailoverFailedError(FailoverError):
    """No suitable instance could be reached before ``failover_timeout``. The connection is closed and
    cannot be used again."""
