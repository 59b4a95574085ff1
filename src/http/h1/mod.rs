//! HTTP/1.1 wire format, sans-I/O: request and response heads, body framing, chunked coding.
