//! Store engine integration tests (one binary; the modules share `common`).

mod common;
mod crash;
mod damage;
mod decode_fuzz;
mod eviction;
mod round_trip;
mod torn_tail;
mod verify_cli;
