DROP TRIGGER instruction_counts_update ON instructions;
DROP TRIGGER instruction_counts_insert_delete ON instructions;
DROP FUNCTION instruction_counts_keep();
DROP TABLE instruction_counts;
DROP TABLE event_seq;
DROP TABLE events;
DROP TABLE settings;
DROP TABLE agents;
DROP TABLE instructions;
