//! Mutation fuzzing on the stable toolchain. Frames captured from real clients (and from real
//! brokers, for responses) are mutated the way an attacker or a broken network would: flipped
//! bits, random bytes, huge counts and lengths, truncation, splices. Three drivers use them:
//!
//! - [`decode`]: in process, every mutated frame goes through the exact functions the broker
//!   (`strata_broker::server::parse_frame`) and the client (`strata_client::decode_response`,
//!   record decoding) use, under a counting allocator that bounds what one frame may allocate and
//!   with panics caught and counted;
//! - [`wire`]: over TCP against a running broker (Strata or Apache Kafka), classifying what each
//!   frame got back (a response, a closed connection, no answer) and checking that the broker
//!   keeps serving;
//! - [`auth`]: SASL exchanges and TLS handshakes over TCP against a running broker's SASL and
//!   TLS listeners, one fault per session, with valid sessions in between that must still get
//!   in and faulty ones (wrong secrets, requests before authenticating, corrupted records) that
//!   must never be served.
//!
//! Everything is seeded: the same seed and corpus give the same frames.

pub mod alloc;
pub mod auth;
pub mod corpus;
pub mod decode;
pub mod mutate;
pub mod wire;
