-- Named queues. Every instruction and every agent belongs to one queue; what was
-- here before queues existed lands in `default`, nothing lost. An instruction may
-- be addressed to one agent of its queue (`to_agent`); others skip it.
ALTER TABLE instructions ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE instructions ADD COLUMN to_agent TEXT;
DROP INDEX instructions_queue;
DROP INDEX instructions_history;
CREATE INDEX instructions_queue ON instructions (queue, status, position, created_at, id);
CREATE INDEX instructions_history ON instructions (queue, status, consumed_at, position, id);

-- Agents are told apart per queue: `claude-code` on two projects is two agents,
-- each with its own generation counter.
CREATE TABLE agents_by_queue (
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    last_fetch_at BIGINT,
    last_result_type TEXT,
    generation BIGINT NOT NULL,
    waiting_until BIGINT,
    PRIMARY KEY (queue, id)
);
INSERT INTO agents_by_queue
    (queue, id, last_seen_at, last_fetch_at, last_result_type, generation, waiting_until)
    SELECT 'default', id, last_seen_at, last_fetch_at, last_result_type, generation, waiting_until
    FROM agents;
DROP TABLE agents;
ALTER TABLE agents_by_queue RENAME TO agents;

-- Counts per queue and status. A queue's two rows appear with its first
-- instruction and stay, so a queue that held instructions is still listed.
DROP TRIGGER instruction_counts_insert;
DROP TRIGGER instruction_counts_delete;
DROP TRIGGER instruction_counts_update;
CREATE TABLE instruction_counts_by_queue (
    queue TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'consumed')),
    n BIGINT NOT NULL,
    PRIMARY KEY (queue, status)
);
INSERT INTO instruction_counts_by_queue (queue, status, n)
    SELECT 'default', status, n FROM instruction_counts;
INSERT OR IGNORE INTO instruction_counts_by_queue (queue, status, n)
    VALUES ('default', 'pending', 0), ('default', 'consumed', 0);
DROP TABLE instruction_counts;
ALTER TABLE instruction_counts_by_queue RENAME TO instruction_counts;

CREATE TRIGGER instruction_counts_insert AFTER INSERT ON instructions
BEGIN
    INSERT OR IGNORE INTO instruction_counts (queue, status, n) VALUES (NEW.queue, 'pending', 0);
    INSERT OR IGNORE INTO instruction_counts (queue, status, n) VALUES (NEW.queue, 'consumed', 0);
    UPDATE instruction_counts SET n = n + 1 WHERE queue = NEW.queue AND status = NEW.status;
END;

CREATE TRIGGER instruction_counts_delete AFTER DELETE ON instructions
BEGIN
    UPDATE instruction_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
END;

CREATE TRIGGER instruction_counts_update AFTER UPDATE OF status, queue ON instructions
    WHEN OLD.status <> NEW.status OR OLD.queue <> NEW.queue
BEGIN
    UPDATE instruction_counts SET n = n - 1 WHERE queue = OLD.queue AND status = OLD.status;
    INSERT OR IGNORE INTO instruction_counts (queue, status, n) VALUES (NEW.queue, 'pending', 0);
    INSERT OR IGNORE INTO instruction_counts (queue, status, n) VALUES (NEW.queue, 'consumed', 0);
    UPDATE instruction_counts SET n = n + 1 WHERE queue = NEW.queue AND status = NEW.status;
END;
