-- Back to one queue: every instruction on it, each agent once (its most recently
-- seen record), the counts of all queues together.
DROP TRIGGER instruction_counts_insert;
DROP TRIGGER instruction_counts_delete;
DROP TRIGGER instruction_counts_update;
CREATE TABLE instruction_counts_one (
    status TEXT PRIMARY KEY NOT NULL CHECK (status IN ('pending', 'consumed')),
    n BIGINT NOT NULL
);
INSERT INTO instruction_counts_one (status, n)
    SELECT 'pending', count(*) FROM instructions WHERE status = 'pending';
INSERT INTO instruction_counts_one (status, n)
    SELECT 'consumed', count(*) FROM instructions WHERE status = 'consumed';
DROP TABLE instruction_counts;
ALTER TABLE instruction_counts_one RENAME TO instruction_counts;
CREATE TRIGGER instruction_counts_insert AFTER INSERT ON instructions
BEGIN
    UPDATE instruction_counts SET n = n + 1 WHERE status = NEW.status;
END;
CREATE TRIGGER instruction_counts_delete AFTER DELETE ON instructions
BEGIN
    UPDATE instruction_counts SET n = n - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER instruction_counts_update AFTER UPDATE OF status ON instructions
    WHEN OLD.status <> NEW.status
BEGIN
    UPDATE instruction_counts SET n = n - 1 WHERE status = OLD.status;
    UPDATE instruction_counts SET n = n + 1 WHERE status = NEW.status;
END;

CREATE TABLE agents_one (
    id TEXT PRIMARY KEY NOT NULL,
    last_seen_at BIGINT NOT NULL,
    last_fetch_at BIGINT,
    last_result_type TEXT,
    generation BIGINT NOT NULL,
    waiting_until BIGINT
);
INSERT OR REPLACE INTO agents_one
    (id, last_seen_at, last_fetch_at, last_result_type, generation, waiting_until)
    SELECT id, last_seen_at, last_fetch_at, last_result_type, generation, waiting_until
    FROM agents ORDER BY last_seen_at;
DROP TABLE agents;
ALTER TABLE agents_one RENAME TO agents;

DROP INDEX instructions_queue;
DROP INDEX instructions_history;
ALTER TABLE instructions DROP COLUMN to_agent;
ALTER TABLE instructions DROP COLUMN queue;
CREATE INDEX instructions_queue ON instructions (status, position, created_at, id);
CREATE INDEX instructions_history ON instructions (status, consumed_at, position, id);
