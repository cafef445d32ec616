//! local-mcp's integration tests, one binary: the store contract against every
//! implementation, the model-based property test, multi-process cases, and the
//! MCP tool with real clients over every transport.

mod contract;
mod events;
mod http;
mod mcp;
mod model;
mod processes;
