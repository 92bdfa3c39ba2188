-- mailroom outbox, schema version 1 (SQLite). Documented in ARCHITECTURE.md ("The outbox table"):
-- an ERP may INSERT rows itself, inside its own business transaction.
CREATE TABLE mailroom_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT    NOT NULL UNIQUE,
    event_kind      TEXT,
    document        TEXT,
    stage           INTEGER,
    envelope_from   TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    message         BLOB    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before_ms   INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    claimed_by      TEXT,
    claim_token     INTEGER,
    lease_until_ms  INTEGER,
    last_attempt_ms INTEGER,
    sent_ms         INTEGER,
    receipt         TEXT,
    error           TEXT
);
CREATE INDEX mailroom_outbox_due ON mailroom_outbox (state, not_before_ms);
CREATE INDEX mailroom_outbox_attempted ON mailroom_outbox (last_attempt_ms);
CREATE INDEX mailroom_outbox_document ON mailroom_outbox (event_kind, document);
