"""IAM tokens signed without an RDS client are byte for byte what ``generate_db_auth_token`` makes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError
from botocore.session import get_session

from aurora_async._iam_token import generate_token, sign_token

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session+token/=")


@pytest.mark.parametrize(
    ("host", "port", "user", "region"),
    [
        ("db.cluster-abc.eu-west-1.rds.amazonaws.com", 5432, "app_user", "eu-west-1"),
        ("db-2.abc.us-east-1.rds.amazonaws.com", 3306, "user@with+odd/chars", "us-east-1"),
        ("10.0.0.7", 5433, "ümlaut", "ap-southeast-2"),
    ],
)
def test_the_token_is_botocores_own(host: str, port: int, user: str, region: str) -> None:
    session = get_session()
    client = session.create_client(
        "rds",
        region_name=region,
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
        aws_session_token=CREDENTIALS.token,
    )
    for _ in range(3):  # both signed within the same second (the token carries its signing time)
        theirs = client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region)
        ours = sign_token(CREDENTIALS.get_frozen_credentials(), host, port, user, region)
        if theirs.split("X-Amz-Date=")[1][:16] == ours.split("X-Amz-Date=")[1][:16]:
            break
    assert ours == theirs
    assert ours.startswith(f"{host}:{port}/?Action=connect&DBUser=")


class _NoCredentials:
    async def get_credentials(self) -> Any:
        return None


async def test_a_session_without_credentials_says_so() -> None:
    with pytest.raises(NoCredentialsError):
        await generate_token(_NoCredentials(), "h", 5432, "u", "eu-west-1")


class _OwnTokens:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    async def generate_db_auth_token(self, **kwargs: Any) -> str:
        self.asked.append(kwargs)
        return "own-token"


async def test_a_session_that_makes_its_own_tokens_is_asked() -> None:
    session = _OwnTokens()
    assert await generate_token(session, "h", 5432, "u", "eu-west-1") == "own-token"
    assert session.asked == [{"DBHostname": "h", "Port": 5432, "DBUsername": "u", "Region": "eu-west-1"}]
