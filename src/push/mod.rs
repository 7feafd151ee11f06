//! Remote write (SPEC §5): pushing every poll's series to a Prometheus Remote-Write receiver.
//!
//! - [`credentials`]: the AWS credentials that SigV4 signs with, from the environment or the
//!   ECS credentials endpoint.

pub mod credentials;
