//! Diesel's view of the tables created by `migrations/`.

diesel::table! {
    instructions (id) {
        id -> Text,
        content -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
        consumed_by -> Nullable<Text>,
        position -> BigInt,
        queue -> Text,
        to_agent -> Nullable<Text>,
    }
}

diesel::table! {
    agents (queue, id) {
        queue -> Text,
        id -> Text,
        last_seen_at -> BigInt,
        last_fetch_at -> Nullable<BigInt>,
        last_result_type -> Nullable<Text>,
        generation -> BigInt,
        waiting_until -> Nullable<BigInt>,
    }
}

diesel::table! {
    settings (id) {
        id -> Integer,
        stored -> Text,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        at -> BigInt,
        kind -> Text,
        payload -> Text,
    }
}

diesel::table! {
    instruction_counts (queue, status) {
        queue -> Text,
        status -> Text,
        n -> BigInt,
    }
}

diesel::table! {
    /// SQLite's own table of AUTOINCREMENT counters, one row per such table.
    sqlite_sequence (name) {
        name -> Text,
        seq -> BigInt,
    }
}

diesel::table! {
    /// PostgreSQL only: the event log's counter, one row, taken last by a writer.
    event_seq (id) {
        id -> Integer,
        last -> BigInt,
    }
}
