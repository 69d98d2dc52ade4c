//! Store engine integration tests (one binary; the modules share `common`).

mod common;
mod crash;
mod damage;
mod decode_fuzz;
mod disk_full;
mod eviction;
#[path = "../common/loop_fs.rs"]
mod loop_fs;
mod namespaces;
mod round_trip;
mod torn_tail;
mod verify_cli;
