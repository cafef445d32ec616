//! Soak: a long agent loop with adds interleaved and SSE clients connected, with
//! the server's memory and open files watched.
