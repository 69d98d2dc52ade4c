//! Token verification cost, in-process on one thread: a cold verification (`token::verify`:
//! base64, JSON, Ed25519 signature) and a cached one (`Gate::check` after the first use: one
//! hash-map lookup of the token text), plus the whole authorization decision for an anonymous
//! request as the floor, and the process-wide rate limit's admission (`RateTable::take`) on one
//! thread and on two threads taking from the same subject's bucket at once.
//!
//! ```sh
//! cargo run --release -p tessera-bench --bin token-bench -- [--iterations N]
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use tessera::auth::cli::now_seconds;
use tessera::auth::gate::{Access, Gate, SharedTrust};
use tessera::auth::keys::Trust;
use tessera::auth::rate::RateTable;
use tessera::auth::token::{mint, verify, Claims};
use tessera::config::AuthConfig;
use tessera::protocols::backend::{Credential, Identity};

fn main() {
    let mut iterations: u32 = 20_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--iterations", Some(n)) => iterations = n.parse().expect("--iterations N"),
            _ => {
                eprintln!("usage: token-bench [--iterations N]");
                std::process::exit(2);
            }
        }
    }
    let key = tessera::auth::keys::random_signing_key().expect("/dev/urandom");
    let mut trust = Trust::default();
    trust.keys.insert("ci", key.verifying_key());
    let claims = Claims {
        sub: "ci-main".into(),
        exp: now_seconds() + 3600,
        nbf: None,
        iat: Some(now_seconds()),
        jti: Some("0123456789abcdef0123456789abcdef".into()),
        aud: None,
        read: vec!["bazel*".into()],
        write: vec!["bazel/main".into()],
        admin: false,
    };
    let token = mint(&key, "ci", &claims);

    let start = Instant::now();
    for _ in 0..iterations {
        black_box(verify(black_box(&token), &trust.keys, &trust.policy, now_seconds()).unwrap());
    }
    let cold = start.elapsed() / iterations;

    let config = AuthConfig {
        public_keys: Some("/unused".into()),
        ..AuthConfig::default()
    };
    let gate = Gate::new(&config, Arc::new(SharedTrust::new(trust)));
    let identity = Identity {
        subject: None,
        credential: Some(Credential::Bearer(token.as_str().into())),
    };
    gate.check(&identity, Access::Read, "bazel/main").unwrap();
    let cached_iterations = iterations * 50;
    let start = Instant::now();
    for _ in 0..cached_iterations {
        black_box(
            gate.check(black_box(&identity), Access::Read, "bazel/main")
                .unwrap(),
        );
    }
    let cached = start.elapsed() / cached_iterations;

    let open = Gate::new(&AuthConfig::default(), Arc::new(SharedTrust::default()));
    let anonymous = Identity::default();
    let start = Instant::now();
    for _ in 0..cached_iterations {
        black_box(
            open.check(black_box(&anonymous), Access::Read, "bazel/main")
                .unwrap(),
        );
    }
    let floor = start.elapsed() / cached_iterations;

    println!("token of {} bytes", token.len());
    println!("cold verification (token::verify): {:?} per call", cold);
    println!(
        "cached (Gate::check, token seen before): {:?} per call",
        cached
    );
    println!("anonymous decision (no keys): {:?} per call", floor);

    // A rate no benchmark reaches, so every call is admitted and does its compare-and-swap.
    let rate = tessera::config::parse_rate("1000000000/s").expect("a rate");
    let table = Arc::new(RateTable::new(rate, Some(1_000_000_000)));
    let start = Instant::now();
    for _ in 0..cached_iterations {
        black_box(table.take(black_box("ci-main"), Instant::now())).unwrap();
    }
    let one = start.elapsed() / cached_iterations;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let table = table.clone();
            scope.spawn(move || {
                for _ in 0..cached_iterations {
                    black_box(table.take(black_box("ci-main"), Instant::now())).unwrap();
                }
            });
        }
    });
    let two = start.elapsed() / cached_iterations;
    println!("rate admission (RateTable::take), one thread: {one:?} per call");
    println!("rate admission, two threads on one subject: {two:?} per call pair (wall)");
}
