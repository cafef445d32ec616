//! local-mcp's integration tests, one binary: the store contract against every
//! implementation, the model-based property test, multi-process cases, the MCP
//! tool with real clients over every transport, the web UI's files, and the
//! proof suites: faults, stdio hygiene and the soak.

mod contract;
mod events;
mod faults;
mod http;
mod hygiene;
mod mcp;
mod model;
mod processes;
mod readme;
mod soak;
mod ui_serving;
