"""The bulk path for month-start batches: `POST /renewals/batch` and `dualrun submit --file`, on
real PostgreSQL and the Temporal dev server. Input is all or nothing (a bad row refuses the
batch, naming each bad row and field); a valid batch answers per row: created, deduplicated (a
renewal given twice is answered once), or a conflict, the rest applied."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dualrun.wiring import renewal_service
from ops.legacy_engine.autorenew import create_batch
from renewals.db.pool import async_pool
from renewals.model import RenewalRequest
from tests.harness import Cli, cli_runner, count
from tests.integration.api_support import AUTH, EXPIRY, READ, TestClient, api, api_settings, body

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture


def _ops(dsn: str) -> int:
    return count(dsn, "SELECT count(*) FROM operations")


def test_a_batch_answers_each_row_in_order(api: TestClient, db_dsn: str, temporal_env: Any) -> None:
    """New rows are created on their engine (Temporal ones started), a repeated renewal is
    answered once, an existing one deduplicated, a taken key with other years a conflict."""
    assert api.post("/renewals", json=body("had.fr"), headers=AUTH).status_code == 201
    assert api.post("/renewals", json=body("other.de"), headers=AUTH).status_code == 201
    rows = [
        body("new.fr"),
        body("wf.info"),  # .info is temporal 100% in these settings
        body("new.fr"),  # the same renewal again, in the same batch
        body("had.fr"),  # submitted before: the same operation
        body("other.de", years=2),  # the key is taken with years=1: a conflict
        body("twice.eu"),
        body("twice.eu", customer_id="c-2"),  # in the batch with another customer: a conflict
    ]
    answer = api.post("/renewals/batch", json={"renewals": rows}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == list(range(len(rows)))
    assert answer.json()["summary"] == {
        "rows": 7, "created": 3, "deduplicated": 2, "refused": 2, "dispatch_errors": 0,
    }  # fmt: skip
    new, wf, again, had, conflict, twice, twice_conflict = results
    assert (new["engine"], new["deduplicated"], wf["engine"]) == ("legacy", False, "temporal")
    assert again["operation_id"] == new["operation_id"] and again["deduplicated"] is True
    assert had["deduplicated"] is True and had["status"] == "todo"
    assert conflict["ok"] is False and conflict["error"]["code"] == "idempotency_conflict"
    assert conflict["error"]["field"] == "years"
    assert twice["ok"] is True and twice_conflict["error"]["field"] == "customer_id"
    assert _ops(db_dsn) == 2 + 3  # the two before, three new: nothing for the refused rows
    assert count(db_dsn, "SELECT count(*) FROM routing_decisions") == 5
    status = api.get(f"/renewals/{wf['operation_id']}", headers=READ).json()
    assert status["routing"]["mode"] == "temporal" and status["workflow_id"]
    described = asyncio.run(_describe(temporal_env, status["workflow_id"]))
    assert described == "RUNNING"  # started (no worker runs in this test)


async def _describe(env: Any, workflow_id: str) -> str:
    desc = await env.client.get_workflow_handle(workflow_id).describe()
    return str(desc.status.name)


@pytest.mark.parametrize(
    ("renewals", "field"),
    [
        ([body("ok.fr"), body("bad_name.fr")], "renewals.1.domain"),
        ([body("ok.fr"), body("ok2.fr", years=11)], "renewals.1.years"),
        ([body("ok.fr"), {**body("x.fr"), "colour": "red"}], "renewals.1.colour"),
        ([body("ok.fr"), body("xn--zz.fr")], "renewals.1.domain"),  # the IDNA rule
        ([], "renewals"),
        ([body(f"n{i}.fr") for i in range(1001)], "renewals"),
    ],
)
def test_a_bad_row_refuses_the_whole_batch(
    api: TestClient, db_dsn: str, renewals: list[dict[str, Any]], field: str
) -> None:
    """422 naming the first bad row's field (and every bad row in `rows`); nothing written."""
    answer = api.post("/renewals/batch", json={"renewals": renewals}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field
    assert _ops(db_dsn) == 0 and count(db_dsn, "SELECT count(*) FROM routing_decisions") == 0


def test_every_bad_row_is_named(api: TestClient, db_dsn: str) -> None:
    """Three bad rows among five: all three in `rows`, with their index and field."""
    rows = [body("a.fr"), body("b.fr", years=0), body("c.fr"), body("d_.fr"), body(years="1")]
    refused = api.post("/renewals/batch", json={"renewals": rows}, headers=AUTH).json()
    assert [(r["index"], r["field"]) for r in refused["rows"]] == [
        (1, "years"), (3, "domain"), (4, "years"),
    ]  # fmt: skip
    assert "3 of 5 rows refused, nothing written" in refused["error"]["message"]
    assert _ops(db_dsn) == 0


def test_the_read_token_cannot_submit_a_batch(api: TestClient, db_dsn: str) -> None:
    """A write: the read token is refused (403), no token is 401."""
    payload = {"renewals": [body("ro.fr")]}
    assert api.post("/renewals/batch", json=payload, headers=READ).status_code == 403
    assert api.post("/renewals/batch", json=payload).status_code == 401
    assert _ops(db_dsn) == 0


def test_batches_racing_the_auto_renew_batch_make_one_renewal_per_key(
    db_dsn: str, tmp_path: Path, temporal_env: Any
) -> None:
    """Two router batches (the keys in opposite orders) and the upstream batch write the same
    60 renewals at once: no deadlock, one operation with the renewal per key, every router row
    answered (created or deduplicated) and pointing at it."""
    settings = api_settings(db_dsn, tmp_path, temporal_env)

    def renewals() -> list[RenewalRequest]:  # each submitter's own operation ids, as assigned
        return [RenewalRequest.parse(body(f"race{i:02d}.fr"), settings.tlds) for i in range(60)]

    async def go() -> list[Any]:
        pool = await async_pool(db_dsn, max_size=2)
        try:
            async with (
                renewal_service(settings, pool_size=4) as a,
                renewal_service(settings, pool_size=4) as b,
            ):
                return await asyncio.gather(
                    a.submit_batch(renewals()),
                    b.submit_batch(list(reversed(renewals()))),
                    create_batch(pool, renewals(), duplicate_share=0.0, seed=1),
                )
        finally:
            await pool.close()

    first, second, _ = asyncio.run(go())
    with psycopg.connect(db_dsn) as conn:
        owners = dict(
            conn.execute(
                "SELECT idempotency_key, operation_id FROM operations WHERE status <> 'superseded'"
            ).fetchall()
        )
        per_key = conn.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM operations"
            " WHERE status <> 'superseded' GROUP BY idempotency_key) c"
        ).fetchone()
    assert len(owners) == 60 and per_key == (1,)
    for result in (first, second):
        assert result.summary()["refused"] == 0
        for row in result.rows:
            assert row.operation_id == owners[row.idempotency_key]


@pytest.fixture
def cli(
    db_dsn: str, tmp_path: Path, temporal_env: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:  # fmt: skip
    """`dualrun ARGS` in process on this test's schema (.info on Temporal)."""
    settings = api_settings(db_dsn, tmp_path, temporal_env)
    env = {
        "DUALRUN_DATABASE_URL": db_dsn,
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(settings.flags_bootstrap),
        "DUALRUN_TEMPORAL_ADDRESS": settings.temporal_target,
        "DUALRUN_TASK_QUEUE": settings.task_queue,
        "DUALRUN_LOG_FORMAT": "json",
    }
    return cli_runner(env, monkeypatch, capsys)


def _csv(tmp_path: Path, lines: list[str], name: str = "renewals.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(["domain,current_expiry,customer_id,years", *lines]) + "\n")
    return path


def test_submit_file_refuses_a_file_with_bad_lines(cli: Cli, tmp_path: Path, db_dsn: str) -> None:
    """Every bad line named with its field (exit 2); nothing written, good lines included."""
    path = _csv(tmp_path, [
        f"good.fr,{EXPIRY},c-1,1",
        f"bad_name.fr,{EXPIRY},c-1,1",
        f"ok.de,{EXPIRY},c-1,eleven",
        "ok.eu,2026-02-30,c-1,1",
    ])  # fmt: skip
    code, _, err = cli("submit", "--file", str(path))
    assert code == 2, err
    assert "3 of 4 rows refused, nothing written" in err
    for line, field in ((3, "domain"), (4, "years"), (5, "current_expiry")):
        assert f"renewals.csv line {line}: {field}:" in err, err
    assert _ops(db_dsn) == 0


def test_submit_file_answers_each_line(cli: Cli, tmp_path: Path, db_dsn: str) -> None:
    """A duplicate line is answered once; a conflict is reported on its line (exit 2), the
    other lines applied; --json gives each line's result."""
    code, _, _ = cli("submit", "--domain", "taken.fr", "--years", "1", "--current-expiry",
                     EXPIRY, "--customer", "c-1")  # fmt: skip
    assert code == 0
    path = _csv(tmp_path, [
        f"one.fr,{EXPIRY},c-1,1",
        f"one.fr,{EXPIRY},c-1,1",
        f"taken.fr,{EXPIRY},c-1,3",
        f"two.info,{EXPIRY},c-1,1",
    ])  # fmt: skip
    code, out, err = cli("submit", "--file", str(path), "--json")
    assert code == 2, err
    doc = json.loads(out)
    assert doc["summary"] == {
        "rows": 4, "created": 2, "deduplicated": 1, "refused": 1, "dispatch_errors": 0,
    }  # fmt: skip
    by_line = {r["line"]: r for r in doc["results"]}
    assert by_line[3]["operation_id"] == by_line[2]["operation_id"] and by_line[3]["deduplicated"]
    assert by_line[4]["error"]["code"] == "idempotency_conflict"
    assert by_line[4]["error"]["field"] == "years"
    assert by_line[5]["engine"] == "temporal"
    assert _ops(db_dsn) == 3
    code, out, _ = cli("submit", "--file", str(path))  # again: every line answered, none new
    assert code == 2 and "0 created, 3 deduplicated, 1 refused" in out
    assert "line 4: idempotency_conflict" in out


def test_submit_file_and_one_renewal_are_exclusive(cli: Cli, tmp_path: Path) -> None:
    """--file with --domain is refused, naming the option (exit 2); so is a missing file."""
    path = _csv(tmp_path, [f"x.fr,{EXPIRY},c-1,1"])
    code, _, err = cli("submit", "--file", str(path), "--domain", "x.fr")
    assert code == 2 and "--domain" in err
    code, _, err = cli("submit", "--file", str(tmp_path / "none.csv"))
    assert code == 2 and "file" in err and "none.csv" in err
