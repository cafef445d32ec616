DROP TABLE events;
DROP TABLE settings;
DROP TABLE agents;
DROP TABLE instructions;
