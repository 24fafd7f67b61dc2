"""IAM database authentication tokens, signed here with botocore's SigV4 query signer.

A token is a presigned ``rds-db:connect`` request for ``host:port`` and the database user, valid 15
minutes: what ``RDS.Client.generate_db_auth_token`` returns, to the byte. Signing it ourselves needs
only the session's credentials (resolved by aiobotocore's own provider chain, asynchronously), so no
RDS client is made: botocore does not load the RDS service model (a one-off stall of 80-340 ms on the
event loop on a 2-core machine) and no HTTP session is opened per token (4-7 ms each).

A session object that has its own ``generate_db_auth_token`` coroutine (as
:class:`aurora_async.testing.RehearsalSession` does, to make each token a simulated user's password)
makes the tokens itself.
"""

from __future__ import annotations

from typing import Any

TOKEN_LIFETIME = 900  # seconds: what RDS accepts, and what botocore signs for
_SERVICE = "rds-db"
_SCHEME = "https://"


async def generate_token(session: Any, host: str, port: int, user: str, region: str) -> str:
    """An IAM token for ``user`` at ``host:port`` in ``region``, from ``session``'s credentials (or its
    own ``generate_db_auth_token``). Raises botocore's ``NoCredentialsError`` when it has none."""
    own = getattr(session, "generate_db_auth_token", None)
    if own is not None:
        token: str = await own(DBHostname=host, Port=port, DBUsername=user, Region=region)
        return token
    from botocore.exceptions import NoCredentialsError  # noqa: PLC0415 - the optional 'aws' extra

    credentials = await session.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    return sign_token(await credentials.get_frozen_credentials(), host, port, user, region)


def sign_token(credentials: Any, host: str, port: int, user: str, region: str) -> str:
    """The token for ``credentials`` (botocore's frozen credentials), signed now."""
    from botocore.auth import SigV4QueryAuth  # noqa: PLC0415 - the optional 'aws' extra
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415

    request = AWSRequest(
        method="GET", url=f"{_SCHEME}{host}:{port}/", params={"Action": "connect", "DBUser": user}
    )
    SigV4QueryAuth(credentials, _SERVICE, region, expires=TOKEN_LIFETIME).add_auth(request)
    url: str = request.url
    return url[len(_SCHEME) :]
