//! The HTTP server's guards and combined mode, against the real binary.
