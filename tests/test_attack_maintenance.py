"""`export` and `backup` pointed at the running daemon's own files: refused, and the store lives on."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from websockets.asyncio.client import connect

from gateway import cli
from gateway.store import Store
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config
from tests.test_attack_daemon import _ask
from tests.test_server_harness import http_get


def _store_of(port: int) -> dict:
    return json.loads(asyncio.run(http_get(port, "/healthz"))[2])["store"]


def test_export_and_backup_onto_the_live_database_or_its_wal_are_refused(tmp_path: Path, capsys) -> None:
    # before: `export -o DB` truncated the live database (the daemon then logged "database disk image is
    # malformed" on every commit) and `backup DB-wal` moved a database over the daemon's WAL
    port = free_port()
    config = minimal_config(tmp_path, port=port)
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=port)
    db = config["storage"]["path"]
    try:
        assert Path(db + "-wal").exists()
        before = Path(db).read_bytes()
        for argv, words in [
            (["export", "--db", db, "--product", "1", "-o", db], "is the database itself"),
            (["export", "--db", db, "--product", "1", "-o", str(tmp_path / "." / "spc.sqlite3")], "itself"),
            (["export", "--db", db, "--product", "1", "-o", db + "-wal"], "own wal file"),
            (["export", "--db", db, "--product", "1", "-o", db + "-shm"], "own shm file"),
            (["backup", db + "-wal", "--db", db], "own wal file"),
            (["backup", db + "-journal", "--db", db], "own journal file"),
            (["backup", str(tmp_path), "--db", db], "is a folder"),
        ]:
            assert cli.main(argv) == 1, argv
            err = capsys.readouterr().err
            assert words in err and "Traceback" not in err, (argv, err)
        assert Path(db).read_bytes()[:100] == before[:100]
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        # the daemon still commits: an alert goes through the store
        async def create() -> dict:
            async with connect(f"ws://127.0.0.1:{port}/ws/spc/product/1/") as ws:
                for _ in range(2):
                    await ws.recv()
                return await _ask(ws, {"type": "create_alert", "product_id": 1, "alert_type": "MANUAL",
                                       "priority": 2, "title": "t", "message": "m"})
        assert asyncio.run(asyncio.wait_for(create(), 20))["type"] == "result"
        assert _store_of(port)["failing"] is False
    finally:
        assert daemon.stop() == 0
    assert "malformed" not in daemon.log() and " ERROR " not in daemon.log()


def test_a_failed_export_keeps_the_file_it_would_have_replaced(tmp_path: Path, capsys) -> None:
    # before: the output was opened with "w" (emptied) before the database was read, and removed when
    # the export failed: last week's export was gone after a mistyped product id
    db = tmp_path / "spc.sqlite3"

    async def make() -> None:  # a real store file with its schema
        store = Store(str(db))
        await store.open()
        await store.close()
    asyncio.run(make())
    out = tmp_path / "last-week.csv"
    out.write_text("measurement_id,value\n1,10.0\n")
    for product in ("99", str(2**63)):
        assert cli.main(["export", "--db", str(db), "--product", product, "-o", str(out)]) == 1
        assert "is not in" in capsys.readouterr().err
        assert out.read_text() == "measurement_id,value\n1,10.0\n"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    assert cli.main(["export", "--db", str(other), "--product", "1"]) == 1
    err = capsys.readouterr().err
    assert "not a spc-gateway database" in err and "Traceback" not in err
