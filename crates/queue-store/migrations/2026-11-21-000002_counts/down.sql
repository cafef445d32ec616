DROP TRIGGER instruction_counts_update;
DROP TRIGGER instruction_counts_delete;
DROP TRIGGER instruction_counts_insert;
DROP TABLE instruction_counts;
