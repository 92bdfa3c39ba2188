-- mailroom outbox, schema version 1 (PostgreSQL). Documented in ARCHITECTURE.md ("The outbox table"):
-- an ERP may INSERT rows itself, inside its own business transaction.
CREATE TABLE mailroom_outbox (
    id              BIGSERIAL PRIMARY KEY,
    message_id      TEXT    NOT NULL UNIQUE,
    event_kind      TEXT,
    document        TEXT,
    stage           INTEGER,
    envelope_from   TEXT    NOT NULL,
    recipients      TEXT    NOT NULL,
    message         BYTEA   NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before_ms   BIGINT  NOT NULL DEFAULT 0,
    created_ms      BIGINT  NOT NULL DEFAULT (floor(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT),
    claimed_by      TEXT,
    claim_token     BIGINT,
    lease_until_ms  BIGINT,
    last_attempt_ms BIGINT,
    sent_ms         BIGINT,
    receipt         TEXT,
    error           TEXT
);
CREATE INDEX mailroom_outbox_due ON mailroom_outbox (state, not_before_ms);
CREATE INDEX mailroom_outbox_attempted ON mailroom_outbox (last_attempt_ms);
CREATE INDEX mailroom_outbox_document ON mailroom_outbox (event_kind, document);
