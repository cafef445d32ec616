-- The queue. Times are microseconds since the Unix epoch (UTC); ids are lowercase
-- hyphenated UUIDs, so text order equals UUID order.
CREATE TABLE instructions (
    id TEXT PRIMARY KEY NOT NULL,
    content TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'consumed')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    consumed_at BIGINT,
    consumed_by TEXT,
    position BIGINT NOT NULL,
    CHECK ((status = 'consumed') = (consumed_at IS NOT NULL AND consumed_by IS NOT NULL))
);
CREATE INDEX instructions_queue ON instructions (status, position, created_at, id);
CREATE INDEX instructions_history ON instructions (status, consumed_at, position, id);
CREATE INDEX instructions_position ON instructions (position);

CREATE TABLE agents (
    id TEXT PRIMARY KEY NOT NULL,
    last_seen_at BIGINT NOT NULL,
    last_fetch_at BIGINT,
    last_result_type TEXT,
    generation BIGINT NOT NULL,
    waiting_until BIGINT
);

-- One row holding the settings a person saved, as JSON.
CREATE TABLE settings (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    stored TEXT NOT NULL
);

-- Every change, written in the transaction that made it. AUTOINCREMENT keeps
-- sequence numbers from being reused after old rows are pruned.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
