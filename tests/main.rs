//! local-mcp's integration tests, one binary: the store contract against every
//! implementation, the model-based property test, and multi-process cases.

mod contract;
mod model;
mod processes;
