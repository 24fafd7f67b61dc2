"""The credentials plugins' options (``iam``, ``aws_secrets_manager``): their requirements, checked
before any I/O, and the credential source a connection gets from them."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from typing import Any

from ._auth import CredentialSource, IamSource, SecretSource
from ._exceptions import ConfigurationError
from ._options import Options
from ._plugins import Plugin
from ._rds_hosts import RdsUrlType, classify_host
from ._tls import Tls

MYSQL_CLEAR_PASSWORD = "mysql_clear_password"
_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:secretsmanager:(?P<region>[a-z0-9-]+):")


def iam_region(options: Options, host: str) -> str | None:
    """The region IAM tokens are signed for: ``iam_region``, else the one in the RDS host name."""
    return options.iam_region or classify_host(options.iam_host or host).region


def secret_region(options: Options) -> str | None:
    """The secret's region: ``secrets_manager_region``, else the one in its ARN."""
    if options.secrets_manager_region:
        return options.secrets_manager_region
    match = _ARN_REGION.match(options.secrets_manager_secret_id or "")
    return match.group("region") if match else None


def check_credentials_options(options: Options, host: str, user: Any, password: Any) -> None:
    """The ``iam`` and ``aws_secrets_manager`` plugins' requirements, checked before any I/O."""
    iam, secrets = options.has(Plugin.IAM), options.has(Plugin.AWS_SECRETS_MANAGER)
    if not (iam or secrets):
        return
    if iam and secrets:
        raise ConfigurationError(
            "plugins 'iam' and 'aws_secrets_manager' both supply the password: choose one"
        )
    plugin = "iam" if iam else "aws_secrets_manager"
    if importlib.util.find_spec("aioboto3") is None:
        raise ConfigurationError(f"plugin {plugin!r} needs aioboto3: pip install 'aurora_async[aws]'")
    if password is not None:
        raise ConfigurationError(f"password given together with plugin {plugin!r}, which supplies it")
    if iam:
        if not user:
            raise ConfigurationError("plugin 'iam' needs the database user (user= or in the DSN)")
        if iam_region(options, host) is None:
            named = options.iam_host or host
            why = (
                "is an Aurora Global Database writer endpoint, which names no region (give the "
                "primary region's: from the first connection on, each token is signed for the region "
                "of the instance it logs in to)"
                if classify_host(named).url_type is RdsUrlType.RDS_GLOBAL_WRITER_CLUSTER
                else "is not an RDS host name"
            )
            raise ConfigurationError(
                f"plugin 'iam' needs a region: {named!r} {why}, so set iam_region (e.g. 'us-east-1')"
            )
    if secrets:
        if not options.secrets_manager_secret_id:
            raise ConfigurationError(
                "plugin 'aws_secrets_manager' needs secrets_manager_secret_id (name or ARN)"
            )
        if secret_region(options) is None:
            raise ConfigurationError(
                "plugin 'aws_secrets_manager' needs a region: set secrets_manager_region, or give the "
                "secret's ARN as secrets_manager_secret_id"
            )


def check_iam_tls(options: Options, tls: Tls, *, dsn_sslmode: bool) -> None:
    """An IAM token is a password good for 15 minutes: it is sent only over TLS that verifies the
    server (certificate and host name), unless the caller opted out. ``dsn_sslmode``: the engine's
    DSN can ask for TLS (``?sslmode=verify-full``)."""
    if not options.has(Plugin.IAM) or options.iam_allow_plaintext:
        return
    needed = Tls.ENCRYPTED if options.iam_allow_unverified_tls else Tls.VERIFIED
    if tls >= needed:
        return
    how = "ssl=ssl.create_default_context(cafile='global-bundle.pem'), the RDS CA bundle" + (
        ", or ?sslmode=verify-full&sslrootcert=global-bundle.pem in the DSN" if dsn_sslmode else ""
    )
    raise ConfigurationError(
        f"plugin 'iam' sends its token as the password, so it needs TLS that verifies the server; this "
        f"connection has {tls.label}: pass {how} (iam_allow_unverified_tls=True accepts TLS without "
        "verification; iam_allow_plaintext=True turns this check off, for local testing only)"
    )


def check_iam_auth_plugin(options: Options, driver_kwargs: Mapping[str, Any]) -> None:
    """MySQL: an IAM token is sent with ``mysql_clear_password`` (what Aurora's
    ``AWSAuthenticationPlugin`` asks for), which the ``iam`` plugin chooses; another ``auth_plugin``
    would hash or withhold the token, and the server would refuse it."""
    plugin = driver_kwargs.get("auth_plugin")
    if options.has(Plugin.IAM) and plugin not in (None, "", MYSQL_CLEAR_PASSWORD):
        raise ConfigurationError(
            f"plugin 'iam' logs in to MySQL with auth_plugin={MYSQL_CLEAR_PASSWORD!r} (the IAM token in "
            f"clear text, over TLS), not auth_plugin={plugin!r}: leave auth_plugin out"
        )


def credential_source(options: Options, host: str, user: str | None) -> CredentialSource | None:
    """Where a connection's password comes from, when a credentials plugin supplies it."""
    if options.has(Plugin.IAM) and user:
        region = iam_region(options, host)
        if region is not None:
            return IamSource(
                user=user,
                region=region,
                host=options.iam_host,
                port=options.iam_port,
                expiration=options.iam_expiration,
                aws_session=options.aws_session,
                allow_plaintext=options.iam_allow_plaintext,
            )
    if options.has(Plugin.AWS_SECRETS_MANAGER) and options.secrets_manager_secret_id:
        region = secret_region(options)
        if region is not None:
            return SecretSource(
                secret_id=options.secrets_manager_secret_id,
                region=region,
                endpoint=options.secrets_manager_endpoint,
                username_key=options.secrets_manager_secret_username_key,
                password_key=options.secrets_manager_secret_password_key,
                expiration=options.secrets_manager_expiration,
                aws_session=options.aws_session,
            )
    return None
