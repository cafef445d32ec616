//! local-mcp's integration tests, one binary: the store contract against every
//! implementation, the model-based property test, multi-process cases, the MCP
//! tool with real clients over every transport, and the web UI's files.

mod contract;
mod events;
mod http;
mod mcp;
mod model;
mod processes;
mod readme;
mod ui_serving;
