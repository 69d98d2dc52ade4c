//! Who may read and write: Ed25519 tokens ([`token`]) granting namespace globs ([`scope`]).
//!
//! A token is verified once per request by the front-end layer that receives it and becomes
//! the request's [`Identity`](crate::protocols::backend::Identity); the authorization layer
//! over the `Backend` seam then checks the identity's scopes against the request's namespace.

pub mod scope;
pub mod token;
