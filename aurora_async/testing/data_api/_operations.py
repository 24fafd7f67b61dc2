"""The Data API operations of one emulated cluster: each request checked as the service checks it
(ARNs, parameters, an auto-paused cluster), run by the ``StatementRunner``, and answered as JSON."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ...data_api._placeholders import statement_count
from ._backend import Session, StatementResult, Translated
from ._protocol import (
    LINK_FAILURE,
    MULTISTATEMENTS,
    ApiError,
    Param,
    Request,
    ResultOptions,
    bad_request,
    check_response,
    check_rows,
    dumps,
    endpoint_not_enabled,
    formatted_records,
    parse_request,
)
from ._runner import StatementRunner

PauseError = Literal["resuming", "link_failure"]


@dataclass
class Pause:
    """An auto-paused cluster: until when (``time.monotonic()``), and which error requests get."""

    until: float = 0.0
    error: PauseError = "resuming"


class Operations:
    """ExecuteStatement, BatchExecuteStatement, BeginTransaction, CommitTransaction and
    RollbackTransaction on the cluster whose ARNs are given; ``running`` returns the statement runner,
    or raises when the emulator is not running."""

    def __init__(
        self,
        *,
        resource_arn: str,
        secret_arn: str,
        cluster_id: str,
        response_limit: int,
        row_limit: int,
        pause: Pause,
        running: Callable[[], StatementRunner],
    ) -> None:
        self._resource_arn = resource_arn
        self._secret_arn = secret_arn
        self._cluster_id = cluster_id
        self._response_limit = response_limit
        self._row_limit = row_limit
        self._pause = pause
        self._running = running

    async def execute_statement(self, body: dict[str, Any]) -> bytes:
        request = self._request(body, needs_sql=True)
        assert request.sql is not None
        statement = self._translate(request.sql, request.parameters)
        self._check_paused()
        options = request.options

        def encode(result: StatementResult) -> bytes:
            return self._execute_response(result, request)

        runner = self._running()
        if request.transaction_id is not None:
            tx = runner.claim(request.transaction_id, request.resource_arn, "TransactionNotFoundException")
            try:
                result = await runner.run_in_transaction(
                    tx, lambda session: session.execute(statement, options, implicit_transaction=False)
                )
                return encode(result)
            finally:
                runner.release(tx)
        return await runner.run_alone(
            request.database,
            lambda session: session.execute(statement, options, implicit_transaction=True),
            encode,
            continue_after_timeout=request.continue_after_timeout,
        )

    def _execute_response(self, result: StatementResult, request: Request) -> bytes:
        body: dict[str, Any] = {"numberOfRecordsUpdated": result.updated, "generatedFields": result.generated}
        if result.records is not None:
            check_rows(result.records, self._row_limit)
            if request.json_records:
                labels = [column.label for column in result.columns]
                body["formattedRecords"] = formatted_records(labels, result.records)
            else:
                body["records"] = result.records
                if request.options.include_metadata:
                    body["columnMetadata"] = [column.metadata for column in result.columns]
        return check_response(dumps(body), self._response_limit)

    async def batch_execute_statement(self, body: dict[str, Any]) -> bytes:
        request = self._request(body, needs_sql=True)
        assert request.sql is not None
        sets = request.parameter_sets or []
        statements = [self._translate(request.sql, params) for params in sets]
        if not statements:
            statements = [self._translate(request.sql, {})]
        self._check_paused()

        async def run(session: Session) -> list[list[Any]]:
            generated = []
            for statement in statements:
                result = await session.execute(statement, ResultOptions(), implicit_transaction=False)
                generated.append(result.generated)
            return generated

        async def run_alone(session: Session) -> list[list[Any]]:
            await session.begin()  # all or nothing
            generated = await run(session)
            await session.commit()
            return generated

        def encode(generated: list[list[Any]]) -> bytes:
            results = [{"generatedFields": fields} for fields in generated] if sets else []
            return check_response(dumps({"updateResults": results}), self._response_limit)

        runner = self._running()
        if request.transaction_id is not None:
            tx = runner.claim(request.transaction_id, request.resource_arn, "TransactionNotFoundException")
            try:
                return encode(await runner.run_in_transaction(tx, run))
            finally:
                runner.release(tx)
        return await runner.run_alone(request.database, run_alone, encode)

    async def begin_transaction(self, body: dict[str, Any]) -> bytes:
        request = self._request(body, needs_sql=False)
        self._check_paused()
        tx = await self._running().begin(request.database, request.resource_arn)
        return dumps({"transactionId": tx.id})

    async def end_transaction(self, body: dict[str, Any], *, commit: bool) -> bytes:
        request = self._request(body, needs_sql=False, needs_transaction=True)
        assert request.transaction_id is not None
        runner = self._running()
        tx = runner.claim(request.transaction_id, request.resource_arn, "NotFoundException")
        await runner.end(tx, commit=commit)
        return dumps({"transactionStatus": "Transaction Committed" if commit else "Rollback Complete"})

    # -- validation --------------------------------------------------------------------------------------

    def _request(self, body: dict[str, Any], *, needs_sql: bool, needs_transaction: bool = False) -> Request:
        request = parse_request(body, needs_sql=needs_sql, needs_transaction=needs_transaction)
        if request.resource_arn != self._resource_arn:
            raise endpoint_not_enabled(request.resource_arn)
        if request.secret_arn != self._secret_arn:
            raise ApiError(
                "SecretsErrorException",
                f"Error fetching secret {request.secret_arn}: "
                "Secrets Manager can't find the specified secret.",
            )
        if "schema" in body:
            raise ApiError("ValidationException", "The schema parameter isn't supported.")
        return request

    def _translate(self, sql: str, params: dict[str, Param]) -> Translated:
        backend = self._running().backend
        if statement_count(sql, "mysql" if backend.dialect == "mysql" else "postgresql") > 1:
            raise ApiError("ValidationException", MULTISTATEMENTS)
        return backend.translate(sql, params)

    def _check_paused(self) -> None:
        if time.monotonic() < self._pause.until:
            if self._pause.error == "link_failure":
                raise bad_request(LINK_FAILURE)
            raise ApiError(
                "DatabaseResumingException",
                f"The Aurora DB instance {self._cluster_id} is resuming after being auto-paused. "
                "Please wait a few seconds and try again.",
            )
