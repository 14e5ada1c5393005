//! Capability facets: what an actor reaches the outside world through,
//! so the same actor runs against real services in production and against
//! seeded fakes with faults in the simulator.
//!
//! In progress (issue 25): the key-value capability with its memory
//! backend. The embedded, Redis and PostgreSQL key-value backends, the
//! HTTP client and blob storage follow.

pub mod kv;
