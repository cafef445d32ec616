//! stdio hygiene: with `LOG_LEVEL=trace` stdout carries only JSON-RPC, and stdio
//! mode works in a network namespace with no interfaces.
