"""SQLite schema of the store and its forward migrations, versioned with PRAGMA user_version.

Each migration moves the file from version N-1 to N inside one transaction, so an upgrade that is
interrupted (power cut, SIGKILL) leaves the previous version intact and is simply redone at the next
start. Migrations are only ever appended: a shipped one is never edited.
"""

from __future__ import annotations

import sqlite3

# Version 1: the first schema shipped.
_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE products (
    id INTEGER PRIMARY KEY, code TEXT NOT NULL, name TEXT NOT NULL, updated_at REAL NOT NULL);

CREATE TABLE characteristics (
    product_id INTEGER NOT NULL, name TEXT NOT NULL, unit TEXT, chart TEXT, subgroup_size INTEGER,
    lsl REAL, target REAL, usl REAL, updated_at REAL NOT NULL,
    PRIMARY KEY (product_id, name)) WITHOUT ROWID;

CREATE TABLE measurements (
    id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, characteristic TEXT NOT NULL, value REAL,
    measured_at REAL NOT NULL, received_at REAL NOT NULL, sample_number INTEGER,
    subgroup_number INTEGER, is_within_spec INTEGER, is_within_control INTEGER);
-- The rowid is implicitly the last column of every index: (product_id) serves "latest of a product"
-- and (product_id, characteristic, subgroup_number) serves both subgroup ranges and "latest of a
-- characteristic" (within one characteristic, subgroup_number and id grow together).
CREATE INDEX measurements_product ON measurements (product_id);
CREATE INDEX measurements_characteristic ON measurements (product_id, characteristic, subgroup_number);

CREATE TABLE subgroups (
    id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, characteristic TEXT NOT NULL,
    subgroup_number INTEGER NOT NULL, n INTEGER, mean REAL, range REAL, stdev REAL, center REAL,
    ucl REAL, lcl REAL, violations TEXT, at REAL NOT NULL);
CREATE INDEX subgroups_characteristic ON subgroups (product_id, characteristic, subgroup_number);

CREATE TABLE control_limits (
    id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, characteristic TEXT NOT NULL,
    effective_from REAL NOT NULL, center REAL, sigma REAL, ucl REAL, lcl REAL,
    dispersion_center REAL, dispersion_ucl REAL, dispersion_lcl REAL, source TEXT NOT NULL,
    from_subgroup INTEGER, to_subgroup INTEGER, who TEXT, reason TEXT, stored_at REAL NOT NULL);
CREATE INDEX control_limits_characteristic ON control_limits (product_id, characteristic);
-- An audit trail: a limits version, once stored, is the record of what the line was judged against.
CREATE TRIGGER control_limits_never_rewritten BEFORE UPDATE ON control_limits
BEGIN SELECT RAISE(ABORT, 'control limits versions are never rewritten: store a new version'); END;
CREATE TRIGGER control_limits_never_deleted BEFORE DELETE ON control_limits
BEGIN SELECT RAISE(ABORT, 'control limits versions are never deleted'); END;

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, product_id INTEGER, characteristic TEXT, alert_type TEXT NOT NULL,
    priority INTEGER, status TEXT NOT NULL, rule INTEGER, created_at, updated_at REAL NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX alerts_status ON alerts (status);
CREATE INDEX alerts_product ON alerts (product_id);

CREATE TABLE alert_history (
    id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL, at REAL NOT NULL, who TEXT, action TEXT NOT NULL,
    from_status TEXT, to_status TEXT, comment TEXT, details TEXT);
CREATE INDEX alert_history_alert ON alert_history (alert_id);
CREATE TRIGGER alert_history_never_rewritten BEFORE UPDATE ON alert_history
BEGIN SELECT RAISE(ABORT, 'alert history is never rewritten'); END;
CREATE TRIGGER alert_history_never_deleted BEFORE DELETE ON alert_history
BEGIN SELECT RAISE(ABORT, 'alert history is never deleted'); END;

CREATE TABLE capability (
    id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, characteristic TEXT NOT NULL,
    cp REAL, cpk REAL, pp REAL, ppk REAL, cpm REAL, cpk_lower REAL, n INTEGER,
    sigma_within REAL, sigma_overall REAL, analyzed_at REAL NOT NULL, reason TEXT);
CREATE INDEX capability_characteristic ON capability (product_id, characteristic);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY, type TEXT NOT NULL, product_id INTEGER, notable INTEGER NOT NULL,
    body TEXT NOT NULL, created_at REAL NOT NULL);

CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, kind TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at REAL NOT NULL);

CREATE TABLE engine_state (
    product_id INTEGER NOT NULL, characteristic TEXT NOT NULL, state TEXT NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (product_id, characteristic)) WITHOUT ROWID;
"""

# Version 2: MQTT-in redelivery detection needs the origin's identity of a reading.
_V2 = """
ALTER TABLE measurements ADD COLUMN source_key TEXT;
CREATE INDEX measurements_source_key ON measurements (id) WHERE source_key IS NOT NULL;
"""

# Version 3: the outbox's size, kept by triggers in the same transaction as each row, so that the
# once-a-second check of buffer_limit reads one row instead of scanning the outbox. During a long
# broker outage the outbox holds millions of rows (1 GiB by default), and that scan was O(rows) each
# second, on the very days the gateway has the most to do.
_V3 = """
CREATE TABLE outbox_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1), depth INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT INTO outbox_totals SELECT 1, COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox;
CREATE TRIGGER outbox_counted_in AFTER INSERT ON outbox
BEGIN UPDATE outbox_totals SET depth = depth + 1, bytes = bytes + NEW.bytes WHERE id = 1; END;
CREATE TRIGGER outbox_counted_out AFTER DELETE ON outbox
BEGIN UPDATE outbox_totals SET depth = depth - 1, bytes = bytes - OLD.bytes WHERE id = 1; END;
CREATE TRIGGER outbox_rows_never_rewritten BEFORE UPDATE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox rows are never rewritten'); END;
"""

# Version 4: the database's epoch, a random id made once with the file. `seq` numbers events within one
# database; a lost or replaced file starts again at 1, so every event carries the epoch too and a
# consumer that deduplicates on (gateway, seq) tells the old numbers from the new by (epoch, seq). An
# old file gets its epoch here, on migration.
_V4 = """
INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', lower(hex(randomblob(8))));
"""

# Version 5: attribute data and an outbox with many consumers.
# - A measurement may carry a count and a sample size (p, np, c, u charts); both NULL for variables data.
#   sample_size is NUMERIC: a whole number of parts stays an integer, a fraction of inspection units
#   (u chart) stays a real.
# - One cursor per outbox consumer (the MQTT northbound; Sparkplug and the OPC UA server later): every
#   row of the kinds that consumer takes with seq <= cursor has been delivered, except the seqs listed for
#   it in outbox_held (a broker refused them: sent again on the next connection). A row is deleted once
#   every consumer that takes its kind is past it and no consumer holds it (gateway.store.outbox). An old
#   outbox has no cursors: every consumer starts at 0 and delivers what is left, as before.
_V5 = """
ALTER TABLE measurements ADD COLUMN count INTEGER;
ALTER TABLE measurements ADD COLUMN sample_size NUMERIC;
CREATE TABLE outbox_cursors (
    consumer TEXT PRIMARY KEY, cursor INTEGER NOT NULL, updated_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE outbox_held (
    consumer TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (consumer, seq)) WITHOUT ROWID;
"""

# Version 6: what the time-weighted and attribute charts plot, per point, so that a chart drawn from the
# `subgroups` history equals the live one: EWMA's z_i (`plotted`), CUSUM's C+ and C- with their runs,
# an attribute sample's count and size. NULL for the Shewhart charts of variables.
_V6 = """
ALTER TABLE subgroups ADD COLUMN plotted REAL;
ALTER TABLE subgroups ADD COLUMN cusum_upper REAL;
ALTER TABLE subgroups ADD COLUMN cusum_lower REAL;
ALTER TABLE subgroups ADD COLUMN run_upper INTEGER;
ALTER TABLE subgroups ADD COLUMN run_lower INTEGER;
ALTER TABLE subgroups ADD COLUMN count INTEGER;
ALTER TABLE subgroups ADD COLUMN sample_size NUMERIC;
"""

# Version 7: short-run SPC (several part numbers on one characteristic's chart).
# - Every measurement, charted point and capability result names its part number; NULL when the
#   characteristic has no parts (and in every row from before).
# - A measurement taken while the part was unknown is kept, not charted: part_unknown says why
#   (gateway.shortrun: no part read yet, a code not in the table, the part's source stale).
_V7 = """
ALTER TABLE measurements ADD COLUMN part TEXT;
ALTER TABLE measurements ADD COLUMN part_unknown TEXT;
ALTER TABLE subgroups ADD COLUMN part TEXT;
ALTER TABLE capability ADD COLUMN part TEXT;
"""

# Version 8: a capability row keeps what its live event carried for measured values (non-normal
# capability): the fitted distribution with its Anderson-Darling test and warning, and the expected ppm
# out of spec, both as the event's JSON objects, so that the history answers what the screens were told.
# NULL in every row from before and for attribute charts.
_V8 = """
ALTER TABLE capability ADD COLUMN distribution TEXT;
ALTER TABLE capability ADD COLUMN expected_ppm TEXT;
"""

# Version 9: a capability row of an attribute chart keeps what its live event carried: p_bar, ppm and
# process_z (p, np, laney_p) or u_bar and dpu (c, u, laney_u), so that after a restart the history (GET
# capability, the page after a reload) still says the rate the screens were shown. Plain columns, not
# JSON: a quality engineer asks sqlite3 on the line PC for the defect rate of last week. NULL in every
# row from before, and for measured values (whose rows keep distribution and expected_ppm instead).
_V9 = """
ALTER TABLE capability ADD COLUMN p_bar REAL;
ALTER TABLE capability ADD COLUMN ppm REAL;
ALTER TABLE capability ADD COLUMN process_z REAL;
ALTER TABLE capability ADD COLUMN u_bar REAL;
ALTER TABLE capability ADD COLUMN dpu REAL;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)
LATEST = len(MIGRATIONS)


class StoreError(Exception):
    """A storage problem, with a message a technician can act on."""


class StoreLockedError(StoreError):
    """Another spc-gateway process already uses the database file."""


class StoreUnavailable(StoreError):
    """A write that asked to be refused rather than kept waiting while the database cannot be written."""


class SchemaError(StoreError):
    """The file's schema cannot be used by this version of the gateway."""


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version written in the file (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = LATEST) -> tuple[int, int]:
    """Apply every migration between the file's version and target; returns (from, to).

    The connection must be in autocommit mode (isolation_level=None).
    """
    current = user_version(conn)
    if current > LATEST:
        raise SchemaError(
            f"the database has schema version {current} but this spc-gateway knows versions up to "
            f"{LATEST}: it was written by a newer spc-gateway; upgrade spc-gateway or restore a backup")
    for version in range(current + 1, target + 1):
        script = MIGRATIONS[version - 1]
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return current, max(current, target)
