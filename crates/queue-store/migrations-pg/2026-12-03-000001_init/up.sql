-- The queue on PostgreSQL: the same tables and columns as the SQLite schema (its
-- three migrations together), so one set of queries serves both. Times are
-- microseconds since the Unix epoch (UTC); ids are lowercase hyphenated UUIDs.
-- Text that is sorted on compares byte by byte (COLLATE "C"), as SQLite's does,
-- so the order never depends on the server's locale.
CREATE TABLE instructions (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'consumed')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    consumed_at BIGINT,
    consumed_by TEXT,
    position BIGINT NOT NULL,
    queue TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    to_agent TEXT,
    CHECK ((status = 'consumed') = (consumed_at IS NOT NULL AND consumed_by IS NOT NULL))
);
CREATE INDEX instructions_queue ON instructions (queue, status, position, created_at, id);
CREATE INDEX instructions_history ON instructions (queue, status, consumed_at, position, id);
CREATE INDEX instructions_position ON instructions (position);

CREATE TABLE agents (
    queue TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    last_seen_at BIGINT NOT NULL,
    last_fetch_at BIGINT,
    last_result_type TEXT,
    generation BIGINT NOT NULL,
    waiting_until BIGINT,
    PRIMARY KEY (queue, id)
);

-- One row holding the settings a person saved, as JSON.
CREATE TABLE settings (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    stored TEXT NOT NULL
);

-- Every change, written in the transaction that made it, numbered from
-- `event_seq`: a writer takes that one row last and holds it until it commits,
-- so numbers are handed out in commit order and without gaps, and a reader that
-- has seen event n never sees an event below n appear later.
CREATE TABLE events (
    seq BIGINT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE event_seq (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO event_seq (id, last) VALUES (1, 0);

-- Counts per queue and status, kept by a trigger in the transaction of every
-- change. A queue's two rows appear with its first instruction and stay.
CREATE TABLE instruction_counts (
    queue TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'consumed')),
    n BIGINT NOT NULL,
    PRIMARY KEY (queue, status)
);
INSERT INTO instruction_counts (queue, status, n) VALUES ('default', 'pending', 0), ('default', 'consumed', 0);

CREATE FUNCTION instruction_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE instruction_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE instruction_counts SET n = n + 1 WHERE queue = NEW.queue AND status = NEW.status;
        IF NOT FOUND THEN
            INSERT INTO instruction_counts (queue, status, n)
                VALUES (NEW.queue, 'pending', 0), (NEW.queue, 'consumed', 0)
                ON CONFLICT DO NOTHING;
            UPDATE instruction_counts SET n = n + 1 WHERE queue = NEW.queue AND status = NEW.status;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER instruction_counts_insert_delete AFTER INSERT OR DELETE ON instructions
    FOR EACH ROW EXECUTE FUNCTION instruction_counts_keep();
CREATE TRIGGER instruction_counts_update AFTER UPDATE OF status, queue ON instructions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.queue IS DISTINCT FROM NEW.queue)
    EXECUTE FUNCTION instruction_counts_keep();
