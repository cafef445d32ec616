//! Faults: `kill -9` during a mixed load from three processes, a read-only and a
//! full disk, and a database held locked by another process.
