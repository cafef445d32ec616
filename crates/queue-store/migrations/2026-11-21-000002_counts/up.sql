-- How many instructions each status holds, kept by triggers in the transaction
-- of every change: a call reports what is left after each delivery, and counting
-- the index instead costs time in proportion to the queue and the history.
CREATE TABLE instruction_counts (
    status TEXT PRIMARY KEY NOT NULL CHECK (status IN ('pending', 'consumed')),
    n BIGINT NOT NULL
);
INSERT INTO instruction_counts (status, n)
    SELECT 'pending', count(*) FROM instructions WHERE status = 'pending';
INSERT INTO instruction_counts (status, n)
    SELECT 'consumed', count(*) FROM instructions WHERE status = 'consumed';

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
