"""Import jobs over HTTP: a partner's app uploads a file (POST /imports/earns), the job
runner posts it, `earnImport` shows its progress and rejected lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.api import imports_routes
from gateway.api import jobs as wiring
from gateway.imports.files import (
    FileRefused,
    Parsed,
    Rejected,
    read_header,
    records,
)
from gateway.imports.tables import import_chunks, imports
from gateway.jobs.runner import JobRunner
from tests.conftest import Clock, Gateway, start_gateway

PARTNER = "brewbar"
EARN_IMPORT = """
query($id: ID!, $first: Int!, $after: String) {
  earnImport(id: $id) {
    id status partner { slug } linesRead posted replayed rejected progress
    startedAt finishedAt error
    rejections(first: $first, after: $after) {
      edges { cursor node { lineNumber idempotencyKey code message } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""


async def upload(
    gateway: Gateway,
    body: bytes,
    token: str | None,
    partner: str = PARTNER,
    media: str = "text/csv",
) -> httpx.Response:
    headers = {"content-type": media}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await gateway.client.post(
        f"/imports/earns?partner={partner}&name=night.csv", content=body, headers=headers
    )


async def run_jobs(gateway: Gateway) -> None:
    """The runner's import sweep, once (as `coalition jobs` runs it)."""
    service = gateway.service
    sweep = next(s for s in wiring.sweeps(service, 1, 0, ()) if s.name == "imports.run")
    assert await JobRunner(service.uow, sweeps=[sweep]).sweep(sweep)


async def earn_import(
    gateway: Gateway, id: str, token: str | None = None, first: int = 10, after: str | None = None
) -> dict[str, Any] | None:
    body = await gateway.gql(EARN_IMPORT, {"id": id, "first": first, "after": after}, token)
    found: dict[str, Any] | None = body["data"]["earnImport"]
    return found


async def stored(gateway: Gateway) -> tuple[int, int]:
    async with gateway.service.engine.connect() as connection:
        rows = await connection.scalar(sa.select(sa.func.count()).select_from(imports))
        chunks = await connection.scalar(sa.select(sa.func.count()).select_from(import_chunks))
    return int(rows or 0), int(chunks or 0)


def earns_csv(rows: list[str]) -> bytes:
    return ("customer_id,idempotency_key,points,occurred_at\n" + "\n".join(rows) + "\n").encode()


async def test_an_uploaded_file_is_posted_by_the_job_runner(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports_routes, "CHUNK_BYTES", 64)  # several chunks of a small file
    for i in range(3):
        await gateway.service.enrol(PARTNER, f"c{i}")
    rows = [f"c{i % 3},job-{i},{i + 1},2026-05-30T10:00:00+02:00" for i in range(30)]
    rows[4] = "c0,job-4,-1,"
    rows[9] = "c9,job-9,1,"
    rows[12] = "c1,job-12,1,2027-01-01T00:00:00Z"  # after the gateway's clock
    token = await gateway.partner_token(PARTNER)
    answer = await upload(gateway, earns_csv(rows), token)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["status"] == "queued"
    assert started["poll"]["variables"] == {"id": started["id"]}
    queued = await earn_import(gateway, started["id"], token)
    assert queued is not None
    assert queued["status"] == "QUEUED" and queued["posted"] == 0 and queued["progress"] == 0

    await run_jobs(gateway)
    done = await earn_import(gateway, started["id"], token, first=2)
    assert done is not None
    assert done["status"] == "DONE" and done["progress"] == 1.0
    assert (done["linesRead"], done["posted"], done["replayed"], done["rejected"]) == (
        30,
        27,
        0,
        3,
    )
    assert done["partner"]["slug"] == PARTNER and done["finishedAt"] is not None
    page = done["rejections"]
    assert [e["node"]["lineNumber"] for e in page["edges"]] == [6, 11]
    assert page["edges"][0]["node"]["code"] == "AMOUNT_NOT_POSITIVE"
    assert page["edges"][1]["node"]["code"] == "UNKNOWN_MEMBER"
    assert page["pageInfo"]["hasNextPage"]
    rest = await earn_import(gateway, started["id"], token, after=page["pageInfo"]["endCursor"])
    assert rest is not None
    last = rest["rejections"]["edges"]
    assert [(e["node"]["lineNumber"], e["node"]["idempotencyKey"]) for e in last] == [
        (14, "job-12")
    ]
    assert "future" in last[0]["node"]["message"]
    assert not rest["rejections"]["pageInfo"]["hasNextPage"]
    assert await stored(gateway) == (1, 0)  # the content is dropped once posted

    # The same file again: the same import, nothing new to run or post.
    again = await upload(gateway, earns_csv(rows), token)
    assert again.status_code == 202 and again.json()["id"] == started["id"]
    await run_jobs(gateway)
    assert await stored(gateway) == (1, 0)
    wallets = await gateway.service.wallets(
        [(await gateway.service.enrol(PARTNER, f"c{i}")).member.id for i in range(3)]
    )
    total = sum(w.balance for found in wallets.values() for w in found)
    assert total == sum(range(1, 31)) - 5 - 10 - 13


async def test_a_job_that_was_running_when_its_runner_died_is_resumed(gateway: Gateway) -> None:
    await gateway.service.enrol(PARTNER, "c0")
    token = await gateway.partner_token(PARTNER)
    answer = await upload(gateway, earns_csv([f"c0,r{i},1," for i in range(5)]), token)
    async with gateway.service.engine.begin() as connection:
        await connection.execute(imports.update().values(status="running"))
    await run_jobs(gateway)
    done = await earn_import(gateway, answer.json()["id"], token)
    assert done is not None and done["status"] == "DONE" and done["posted"] == 5


async def test_uploads_need_a_token_with_points_earn_at_the_partner(gateway: Gateway) -> None:
    body = earns_csv(["c0,k,1,"])
    anonymous = await upload(gateway, body, None)
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    other = await upload(gateway, body, await gateway.partner_token("freshmart"))
    assert other.status_code == 403
    assert other.json()["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    reader = await upload(gateway, body, await gateway.partner_token(PARTNER, "members:read"))
    assert reader.status_code == 403
    unknown = await upload(gateway, body, await gateway.operator_token(), partner="nobody")
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "UNKNOWN_PARTNER"
    media = await upload(gateway, body, await gateway.operator_token(), media="text/plain")
    assert media.status_code == 415
    assert await stored(gateway) == (0, 0)


async def test_a_partner_reads_only_its_own_imports(gateway: Gateway) -> None:
    answer = await upload(gateway, earns_csv(["c0,k,1,"]), await gateway.partner_token(PARTNER))
    number = answer.json()["id"]
    assert await earn_import(gateway, number, await gateway.partner_token("freshmart")) is None
    assert await earn_import(gateway, number) is not None  # an operator
    assert await earn_import(gateway, "not-an-id") is None


async def test_a_partner_cannot_earn_for_members_it_does_not_reach(gateway: Gateway) -> None:
    elsewhere = (await gateway.service.enrol("freshmart", "f1")).member.id
    body = f"member_id,idempotency_key,points\n{elsewhere},m1,5\n".encode()
    token = await gateway.partner_token(PARTNER)
    answer = await upload(gateway, body, token)
    await run_jobs(gateway)
    done = await earn_import(gateway, answer.json()["id"], token)
    assert done is not None and done["posted"] == 0 and done["rejected"] == 1
    assert done["rejections"]["edges"][0]["node"]["code"] == "UNKNOWN_MEMBER"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"customer,idempotency_key,points\nc0,k,1\n", "Unknown column(s) 'customer'"),
        (b"", "The file is empty."),
        (b"customer_id,idempotency_key,points\nc0,k,1\nc\xff,k2,1\n", "not UTF-8: line 3"),
    ],
)
async def test_a_broken_upload_is_refused_and_nothing_is_stored(
    gateway: Gateway, body: bytes, message: str
) -> None:
    answer = await upload(gateway, body, await gateway.partner_token(PARTNER))
    assert answer.status_code == 400, answer.text
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_FILE" and message in error["message"]
    assert await stored(gateway) == (0, 0)


async def test_a_body_over_the_limit_is_refused_with_413(
    database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports_routes, "CHUNK_BYTES", 100)
    async for gateway in start_gateway(database_url, clock, max_import_bytes=2000):
        body = earns_csv([f"c0,key-{i},1," for i in range(200)])
        token = await gateway.partner_token(PARTNER)
        declared = await upload(gateway, body, token)
        assert declared.status_code == 413
        assert declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

        async def pieces(body: bytes = body) -> Any:  # no Content-Length: counted as it comes
            for start in range(0, len(body), 300):
                yield body[start : start + 300]

        streamed = await gateway.client.post(
            f"/imports/earns?partner={PARTNER}",
            content=pieces(),
            headers={"content-type": "text/csv", "authorization": f"Bearer {token}"},
        )
        assert streamed.status_code == 413
        assert await stored(gateway) == (0, 0)


# The file reader on its own


def _read(tmp_path: Path, content: bytes, format: str = "csv") -> list[Parsed | Rejected]:
    from datetime import UTC, datetime

    path = tmp_path / "f"
    path.write_bytes(content)
    with path.open("rb") as stream:
        header = read_header(stream, "jsonl" if format == "jsonl" else "csv")
        now = datetime(2026, 6, 1, tzinfo=UTC)
        found = records(stream, header, PARTNER, lambda: now, header.start, header.first_line)
        return [read.item for read in found]


def test_csv_records_over_several_lines_keep_their_first_line_number(tmp_path: Path) -> None:
    items = _read(
        tmp_path,
        b"\xef\xbb\xbfcustomer_id,idempotency_key,amount,lines\r\n\r\n"
        b'c1,a,3,"[{""amount"": 1,\n""sku"": ""x""}, {""amount"": 2}]"\r\n'
        b"c2,b,2,\r\n",
    )
    assert [(type(i).__name__, i.number) for i in items] == [("Parsed", 3), ("Parsed", 5)]
    first = items[0]
    assert isinstance(first, Parsed) and [x.sku for x in first.line.lines] == ["x", None]


def test_json_lines_keys_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="unknown key"):
        _read(tmp_path, b'{"customer": "c1"}\n', "jsonl")
    items = _read(
        tmp_path,
        b'{"customer_id": "c1", "idempotency_key": "a", "amount": 12.5, '
        b'"lines": [{"amount": 12.5, "sku": "latte"}]}\n'
        b'{"customer_id": "c1", "idempotency_key": "b", "points": 1, "extra": 1}\n'
        b"[1, 2]\n"
        b'{"customer_id": "c1", "idempotency_key": "c", "points": 1.5}\n',
        "jsonl",
    )
    assert isinstance(items[0], Parsed) and str(items[0].line.amount) == "12.5"
    codes = [i.code for i in items[1:] if isinstance(i, Rejected)]
    assert codes == ["INVALID_INPUT", "MALFORMED_LINE", "INVALID_INPUT"]
