//! Store engine benchmark, in-process, one shard on one thread:
//! put and lookup throughput, clean-close time, and reopen time of a store holding N small
//! objects after a clean close, after an unclean stop (checkpoint + replay of the tail), and
//! with no checkpoint at all (full replay).
//!
//! ```sh
//! cargo run --release -p tessera-bench --bin store-bench -- [--objects N] [--tail N] [--body BYTES] [--dir DIR]
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tessera::store::{DataDir, Key, KeyId, Kind, Meta, PutRequest, Reserved, Shard, StoreConfig};

struct Args {
    objects: u64,
    tail: u64,
    body_bytes: usize,
    dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        objects: 1_000_000,
        tail: 50_000,
        body_bytes: 100,
        dir: std::env::temp_dir().join(format!("tessera-store-bench-{}", std::process::id())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: `{value}` is not a number"))
        };
        match flag.as_str() {
            "--objects" => args.objects = number()?,
            "--tail" => args.tail = number()?,
            "--body" => args.body_bytes = number()? as usize,
            "--dir" => args.dir = PathBuf::from(&value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

fn ids(from: u64, count: u64) -> Vec<KeyId> {
    (from..from + count)
        .map(|i| {
            Key {
                namespace: "bench",
                kind: Kind::Blob,
                name: &i.to_le_bytes(),
            }
            .id()
        })
        .collect()
}

fn put_all(shard: &mut Shard, ids: &[KeyId], body: &[u8]) -> Duration {
    let start = Instant::now();
    for id in ids {
        let request = PutRequest {
            id: *id,
            kind: Kind::Blob,
            body_len: body.len() as u64,
            meta: Meta::new(),
            expect: None,
            if_absent: false,
        };
        let Reserved::Reservation(mut reservation) = shard.reserve(request).expect("reserve")
        else {
            exists_is_impossible()
        };
        reservation.write(body).expect("write");
        shard.commit(reservation).expect("commit");
    }
    start.elapsed()
}

fn exists_is_impossible() -> ! {
    eprintln!("store-bench: a Blob put reported Exists");
    std::process::exit(1)
}

fn lookup_all(shard: &mut Shard, ids: &[KeyId], body_bytes: usize) -> Duration {
    let start = Instant::now();
    let mut total = 0usize;
    for id in ids {
        total += shard
            .lookup(id)
            .expect("lookup")
            .expect("present")
            .body()
            .len();
    }
    assert_eq!(total, ids.len() * body_bytes);
    start.elapsed()
}

fn timed_open(cfg: &StoreConfig) -> (Shard, Duration) {
    let start = Instant::now();
    let shard = Shard::open(cfg, 0).expect("open");
    (shard, start.elapsed())
}

fn rate(count: u64, elapsed: Duration) -> String {
    format!(
        "{:.0} ops/s ({:.2} µs/op)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    )
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("store-bench: {e}");
        std::process::exit(2)
    });
    let mut cfg = StoreConfig::new(&args.dir, 1);
    cfg.max_size_bytes = 64 << 30;
    DataDir::open(&cfg).expect("data dir");
    let body = vec![0x5au8; args.body_bytes];
    let main_ids = ids(0, args.objects);
    let tail_ids = ids(args.objects, args.tail);

    let mut shard = Shard::open(&cfg, 0).expect("open");
    let put = put_all(&mut shard, &main_ids, &body);
    let lookup_first = lookup_all(&mut shard, &main_ids, args.body_bytes);
    let lookup_again = lookup_all(&mut shard, &main_ids, args.body_bytes);
    let close_start = Instant::now();
    shard.close().expect("close");
    let close = close_start.elapsed();

    let (shard, reopen_clean) = timed_open(&cfg);
    assert_eq!(shard.stats().objects, args.objects);
    let (mut shard, _) = {
        drop(shard);
        timed_open(&cfg)
    };
    put_all(&mut shard, &tail_ids, &body);
    drop(shard); // unclean: no checkpoint of the tail
    let (mut shard, reopen_unclean) = timed_open(&cfg);
    let stats = shard.stats();
    assert_eq!(stats.objects, args.objects + args.tail);
    assert_eq!(stats.recovery.replayed_records, args.tail);
    let lookup_cold = lookup_all(&mut shard, &main_ids, args.body_bytes);
    drop(shard);
    std::fs::remove_file(args.dir.join("shard-0").join("index.ckpt")).expect("remove checkpoint");
    let (shard, reopen_full) = timed_open(&cfg);
    assert_eq!(shard.stats().objects, args.objects + args.tail);
    let disk = shard.stats().bytes_used;
    drop(shard);
    std::fs::remove_dir_all(&args.dir).expect("cleanup");

    println!(
        "| measurement ({} objects of {} bytes, 1 shard, 64 MiB segments) | result |",
        args.objects, args.body_bytes
    );
    println!("|---|---|");
    println!(
        "| put (reserve + write + commit), one thread | {} |",
        rate(args.objects, put)
    );
    println!(
        "| lookup, first read after put (already verified) | {} |",
        rate(args.objects, lookup_first)
    );
    println!(
        "| lookup, repeated | {} |",
        rate(args.objects, lookup_again)
    );
    println!(
        "| lookup after reopen (first read verifies the body checksum) | {} |",
        rate(args.objects, lookup_cold)
    );
    println!(
        "| clean close (fdatasync + checkpoint write) | {:.1} ms |",
        close.as_secs_f64() * 1e3
    );
    println!(
        "| reopen after clean close (load checkpoint) | {:.1} ms |",
        reopen_clean.as_secs_f64() * 1e3
    );
    println!(
        "| reopen after unclean stop (checkpoint + replay of {} records) | {:.1} ms |",
        args.tail,
        reopen_unclean.as_secs_f64() * 1e3
    );
    println!(
        "| reopen with no checkpoint (full replay of {} records) | {:.1} ms |",
        args.objects + args.tail,
        reopen_full.as_secs_f64() * 1e3
    );
    println!("| segment bytes on disk | {} MiB |", disk >> 20);
}
