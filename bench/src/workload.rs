//! What a run asks of the server: a key space of objects with sizes drawn from a distribution, a
//! popularity law over those keys, and an operation mix (read/write ratio, miss ratio).
//!
//! * [`SizeDistribution`] — fixed size or a weighted table of size buckets
//!   ([`BUILD_ARTIFACT_MIX`] is the default "build artifacts" table).
//! * [`KeySpace`] — `objects` objects whose bodies are generated, never stored: object `i` is its
//!   index as 8 little-endian bytes followed by a slice of one shared random pool, so 1 M objects
//!   cost 40 bytes each plus the pool, and every body is distinct. Its CAS key is the SHA-256 of
//!   those bytes.
//! * [`Popularity`] — uniform or Zipf(s) over object ranks (rank 0 is the hottest).
//! * [`OperationMix`] — turns random draws into [`Operation`]s.
//!
//! ```
//! use tessera_bench::workload::*;
//! let sizes = SizeDistribution::parse("4KiB").unwrap();
//! let keys = KeySpace::generate(100, &sizes, 42).unwrap();
//! let body = keys.body(7);
//! assert_eq!(body.len(), 4096);
//! assert_eq!(keys.cas_hex(7), tessera_bench::workload::sha256_hex(&body));
//! ```

use crate::limits::{BODY_POOL_SLACK_BYTES, KEYSPACE_OBJECTS_MAX, OBJECT_BYTES_MAX};
use crate::rng::Rng;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fmt;

/// Length of the per-object prefix (the object index, little-endian) that makes bodies distinct.
pub const OBJECT_PREFIX_BYTES: usize = 8;

/// Default size table for `--sizes build-artifacts`: an illustrative mix of what a Bazel/Gradle
/// cache stores (many small outputs and metadata files, a long tail of jars and binaries).
/// (bytes, weight); weights need not sum to 100.
pub const BUILD_ARTIFACT_MIX: &[(usize, u32)] = &[
    (512, 25),
    (4 * 1024, 30),
    (32 * 1024, 25),
    (256 * 1024, 14),
    (2 * 1024 * 1024, 5),
    (16 * 1024 * 1024, 1),
];

/// A workload description that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadError(pub String);

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WorkloadError {}

fn err<T>(message: impl Into<String>) -> Result<T, WorkloadError> {
    Err(WorkloadError(message.into()))
}

/// Parses a byte count: `4096`, `4KiB`, `1MiB`, `2GiB`, `512B` (binary units; `K`/`M`/`G` also
/// accepted as binary).
pub fn parse_bytes(text: &str) -> Result<u64, WorkloadError> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let Ok(value) = digits.parse::<u64>() else {
        return err(format!(
            "`{text}` is not a byte count (expected e.g. 4096, 4KiB, 1MiB)"
        ));
    };
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return err(format!(
                "unknown unit `{unit}` in `{text}` (use B, KiB, MiB or GiB)"
            ))
        }
    };
    value
        .checked_mul(multiplier)
        .map_or_else(|| err(format!("`{text}` overflows")), Ok)
}

/// How object sizes are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeDistribution {
    Fixed(usize),
    /// Size buckets with relative weights; each object takes exactly one bucket's size.
    Mix(Vec<(usize, u32)>),
}

impl SizeDistribution {
    /// `4KiB` (fixed), `build-artifacts` ([`BUILD_ARTIFACT_MIX`]), or `512B=25,4KiB=30,1MiB=5`.
    pub fn parse(text: &str) -> Result<SizeDistribution, WorkloadError> {
        let distribution = if text == "build-artifacts" {
            SizeDistribution::Mix(BUILD_ARTIFACT_MIX.to_vec())
        } else if text.contains('=') {
            let mut buckets = Vec::new();
            for part in text.split(',') {
                let Some((size, weight)) = part.split_once('=') else {
                    return err(format!("size bucket `{part}` is not SIZE=WEIGHT"));
                };
                let Ok(weight) = weight.trim().parse::<u32>() else {
                    return err(format!(
                        "weight `{weight}` in `{part}` is not a whole number"
                    ));
                };
                buckets.push((parse_bytes(size)? as usize, weight));
            }
            SizeDistribution::Mix(buckets)
        } else {
            SizeDistribution::Fixed(parse_bytes(text)? as usize)
        };
        distribution.validate()?;
        Ok(distribution)
    }

    fn validate(&self) -> Result<(), WorkloadError> {
        let sizes: Vec<usize> = match self {
            SizeDistribution::Fixed(size) => vec![*size],
            SizeDistribution::Mix(buckets) => {
                if buckets.iter().map(|&(_, w)| w as u64).sum::<u64>() == 0 {
                    return err("size mix has no positive weight");
                }
                buckets.iter().map(|&(s, _)| s).collect()
            }
        };
        for size in sizes {
            if size == 0 || size > OBJECT_BYTES_MAX {
                return err(format!(
                    "object size {size} is outside 1..={OBJECT_BYTES_MAX} bytes (OBJECT_BYTES_MAX)"
                ));
            }
        }
        Ok(())
    }

    pub fn max_bytes(&self) -> usize {
        match self {
            SizeDistribution::Fixed(size) => *size,
            SizeDistribution::Mix(buckets) => buckets.iter().map(|&(s, _)| s).max().unwrap_or(0),
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        match self {
            SizeDistribution::Fixed(size) => *size,
            SizeDistribution::Mix(buckets) => {
                let total: u64 = buckets.iter().map(|&(_, w)| w as u64).sum();
                let mut pick = rng.below(total);
                for &(size, weight) in buckets {
                    if pick < weight as u64 {
                        return size;
                    }
                    pick -= weight as u64;
                }
                unreachable!("pick < total weight, so some bucket is chosen")
            }
        }
    }
}

/// One generated object: where its body comes from and its CAS digest.
#[derive(Clone, Copy, Debug)]
struct ObjectEntry {
    digest: [u8; 32],
    size: u32,
    pool_offset: u32,
}

/// The objects a run reads and writes. Immutable once generated; shared by all threads (`Arc`).
pub struct KeySpace {
    objects: Vec<ObjectEntry>,
    pool: Bytes,
}

impl KeySpace {
    pub fn generate(
        count: usize,
        sizes: &SizeDistribution,
        seed: u64,
    ) -> Result<KeySpace, WorkloadError> {
        if count == 0 || count > KEYSPACE_OBJECTS_MAX {
            return err(format!(
                "--objects {count} is outside 1..={KEYSPACE_OBJECTS_MAX} (KEYSPACE_OBJECTS_MAX)"
            ));
        }
        sizes.validate()?;
        let pool_len = sizes.max_bytes() + BODY_POOL_SLACK_BYTES;
        let mut pool = vec![0u8; pool_len];
        Rng::derived(seed, u64::MAX).fill(&mut pool);
        let mut space = KeySpace {
            objects: Vec::with_capacity(count),
            pool: Bytes::from(pool),
        };
        let mut rng = Rng::derived(seed, 0);
        for index in 0..count {
            let size = sizes.sample(&mut rng);
            let tail = size.saturating_sub(OBJECT_PREFIX_BYTES);
            let pool_offset = rng.below((pool_len - tail + 1) as u64) as u32;
            space.objects.push(ObjectEntry {
                digest: [0; 32],
                size: size as u32,
                pool_offset,
            });
            let digest = Sha256::new()
                .chain_update(&*space.prefix(index))
                .chain_update(space.tail(index))
                .finalize();
            space.objects[index].digest = digest.into();
        }
        Ok(space)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn size(&self, index: usize) -> usize {
        self.objects[index].size as usize
    }

    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size as u64).sum()
    }

    /// The first `min(size, 8)` bytes of object `index`: the index itself, little-endian.
    pub fn prefix(&self, index: usize) -> Prefix {
        Prefix {
            bytes: (index as u64).to_le_bytes(),
            len: self.size(index).min(OBJECT_PREFIX_BYTES),
        }
    }

    /// The rest of object `index`'s body: a cheap, shareable slice of the pool.
    pub fn tail(&self, index: usize) -> Bytes {
        let entry = &self.objects[index];
        let start = entry.pool_offset as usize;
        let len = (entry.size as usize).saturating_sub(OBJECT_PREFIX_BYTES);
        self.pool.slice(start..start + len)
    }

    /// The whole body, copied (tests, preload of tiny objects); the load loop uses prefix + tail.
    pub fn body(&self, index: usize) -> Vec<u8> {
        let mut body = self.prefix(index).to_vec();
        body.extend_from_slice(&self.tail(index));
        body
    }

    pub fn digest(&self, index: usize) -> &[u8; 32] {
        &self.objects[index].digest
    }

    pub fn cas_hex(&self, index: usize) -> String {
        hex(self.digest(index))
    }

    /// Does `received` equal object `index`'s body?
    pub fn body_matches(&self, index: usize, received: &[u8]) -> bool {
        let prefix = self.prefix(index);
        let prefix: &[u8] = &prefix;
        received.len() == self.size(index)
            && received[..prefix.len()] == *prefix
            && received[prefix.len()..] == self.tail(index)[..]
    }
}

/// An object's distinguishing prefix (its index), at most [`OBJECT_PREFIX_BYTES`] long.
#[derive(Clone, Copy, Debug)]
pub struct Prefix {
    bytes: [u8; OBJECT_PREFIX_BYTES],
    len: usize,
}

impl std::ops::Deref for Prefix {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Which object a read or write picks.
#[derive(Debug, Clone)]
pub enum Popularity {
    Uniform,
    /// Zipf with exponent `s` over ranks 0..n: P(rank k) ∝ 1/(k+1)^s. Sampled by binary search in a
    /// precomputed cumulative table (8 bytes per object, bounded by KEYSPACE_OBJECTS_MAX).
    Zipf {
        exponent: f64,
        cumulative: Vec<f64>,
    },
}

impl Popularity {
    /// `uniform` or `zipf:S` (e.g. `zipf:0.99`) over `objects` keys.
    pub fn parse(text: &str, objects: usize) -> Result<Popularity, WorkloadError> {
        if text == "uniform" {
            return Ok(Popularity::Uniform);
        }
        let Some(exponent) =
            text.strip_prefix("zipf:")
                .or(if text == "zipf" { Some("0.99") } else { None })
        else {
            return err(format!("popularity `{text}` is not `uniform` or `zipf:S`"));
        };
        match exponent.parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 10.0 => Ok(Popularity::zipf(s, objects)),
            _ => err(format!(
                "Zipf exponent `{exponent}` must be a number in (0, 10]"
            )),
        }
    }

    pub fn zipf(exponent: f64, objects: usize) -> Popularity {
        assert!(objects > 0);
        let mut cumulative = Vec::with_capacity(objects);
        let mut total = 0.0;
        for rank in 0..objects {
            total += 1.0 / ((rank + 1) as f64).powf(exponent);
            cumulative.push(total);
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Popularity::Zipf {
            exponent,
            cumulative,
        }
    }

    pub fn sample(&self, rng: &mut Rng, objects: usize) -> usize {
        match self {
            Popularity::Uniform => rng.below(objects as u64) as usize,
            Popularity::Zipf { cumulative, .. } => {
                let u = rng.next_f64();
                cumulative
                    .partition_point(|&c| c <= u)
                    .min(cumulative.len() - 1)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Popularity::Uniform => "uniform".to_string(),
            Popularity::Zipf { exponent, .. } => format!("zipf:{exponent}"),
        }
    }
}

/// One request the load loop will send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Read object `index`; its exact bytes are expected.
    Get { index: usize },
    /// Read a key that was never written; a miss (404) is expected. `key` is random.
    GetMissing { key: [u8; 32] },
    /// A measured write of object `index`'s bytes (under its own key, or under a fresh key where
    /// the protocol's entries are immutable, e.g. Nx).
    Put { index: usize },
    /// Store object `index` under its own key so that later reads find it (the preload); a
    /// server that already holds exactly that entry may say so (Nx's 409) without an error.
    Preload { index: usize },
}

/// The read/write and hit/miss mix of a run.
#[derive(Debug, Clone)]
pub struct OperationMix {
    /// Fraction of requests that are writes, in [0, 1].
    pub write_ratio: f64,
    /// Fraction of reads that ask for a key never written, in [0, 1].
    pub miss_ratio: f64,
    pub popularity: Popularity,
    pub objects: usize,
}

impl OperationMix {
    pub fn validate(&self) -> Result<(), WorkloadError> {
        for (name, value) in [
            ("--write-ratio", self.write_ratio),
            ("--miss-ratio", self.miss_ratio),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return err(format!("{name} {value} is outside [0, 1]"));
            }
        }
        Ok(())
    }

    pub fn next(&self, rng: &mut Rng) -> Operation {
        if self.write_ratio > 0.0 && rng.next_f64() < self.write_ratio {
            return Operation::Put {
                index: self.popularity.sample(rng, self.objects),
            };
        }
        if self.miss_ratio > 0.0 && rng.next_f64() < self.miss_ratio {
            let mut key = [0u8; 32];
            rng.fill(&mut key);
            return Operation::GetMissing { key };
        }
        Operation::Get {
            index: self.popularity.sample(rng, self.objects),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bytes_accepts_units_and_rejects_junk() {
        let cases: &[(&str, Option<u64>)] = &[
            ("4096", Some(4096)),
            ("4KiB", Some(4096)),
            ("1MiB", Some(1 << 20)),
            ("2GiB", Some(2 << 30)),
            ("512B", Some(512)),
            ("4kb", None),
            ("", None),
            ("MiB", None),
            ("99999999999999999999GiB", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_bytes(text).ok(), expected, "{text}");
        }
    }

    #[test]
    fn size_mix_follows_its_weights() {
        let mix = SizeDistribution::parse("1KiB=1,2KiB=3,4KiB=6").unwrap();
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 3];
        let draws = 100_000;
        for _ in 0..draws {
            match mix.sample(&mut rng) {
                1024 => counts[0] += 1,
                2048 => counts[1] += 1,
                4096 => counts[2] += 1,
                other => panic!("drew size {other}, not a bucket"),
            }
        }
        for (count, weight) in counts.iter().zip([0.1, 0.3, 0.6]) {
            let share = *count as f64 / draws as f64;
            assert!(
                (share - weight).abs() < 0.01,
                "share {share} for weight {weight}"
            );
        }
    }

    #[test]
    fn size_distribution_rejects_bad_tables() {
        for text in ["0", "1KiB=0", "1KiB", "65MiB", "1KiB=x", "1KiB=1,oops"] {
            let parsed = SizeDistribution::parse(text);
            if text == "1KiB" {
                assert!(parsed.is_ok());
            } else {
                assert!(parsed.is_err(), "{text} should be rejected");
            }
        }
        assert_eq!(
            SizeDistribution::parse("build-artifacts").unwrap(),
            SizeDistribution::Mix(BUILD_ARTIFACT_MIX.to_vec())
        );
    }

    #[test]
    fn zipf_matches_its_probability_law() {
        let objects = 1000;
        let zipf = Popularity::zipf(1.0, objects);
        let harmonic: f64 = (1..=objects).map(|k| 1.0 / k as f64).sum();
        let mut rng = Rng::new(11);
        let draws = 200_000;
        let mut counts = vec![0u32; objects];
        for _ in 0..draws {
            counts[zipf.sample(&mut rng, objects)] += 1;
        }
        // Ranks 0, 1 and 9 against the exact law 1/((k+1)·H_n), within 5 % relative.
        for rank in [0usize, 1, 9] {
            let expected = draws as f64 / ((rank + 1) as f64 * harmonic);
            let got = counts[rank] as f64;
            assert!(
                (got - expected).abs() / expected < 0.05,
                "rank {rank}: {got} vs {expected}"
            );
        }
        // Popularity falls with rank.
        assert!(counts[0] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn uniform_popularity_is_flat() {
        let mut rng = Rng::new(5);
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[Popularity::Uniform.sample(&mut rng, 4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn cas_keys_are_sha256_of_the_generated_bytes() {
        let sizes = SizeDistribution::parse("3B=1,8B=1,100B=1,4KiB=1").unwrap();
        let keys = KeySpace::generate(50, &sizes, 9).unwrap();
        let mut seen = std::collections::HashSet::new();
        for index in 0..keys.len() {
            let body = keys.body(index);
            assert_eq!(body.len(), keys.size(index));
            assert_eq!(keys.cas_hex(index), sha256_hex(&body));
            assert!(keys.body_matches(index, &body));
            if body.len() >= OBJECT_PREFIX_BYTES {
                assert!(
                    seen.insert(keys.cas_hex(index)),
                    "object {index} repeats a key"
                );
            }
        }
        // The known SHA-256 of "abc" pins `hex` and the digest function.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn body_matches_rejects_any_changed_byte() {
        let keys = KeySpace::generate(3, &SizeDistribution::Fixed(64), 1).unwrap();
        let body = keys.body(1);
        for position in [0, 7, 8, 63] {
            let mut changed = body.clone();
            changed[position] ^= 1;
            assert!(!keys.body_matches(1, &changed), "flip at {position}");
        }
        assert!(!keys.body_matches(1, &body[..63]));
        assert!(!keys.body_matches(2, &body));
    }

    #[test]
    fn same_seed_same_keys() {
        let sizes = SizeDistribution::parse("build-artifacts").unwrap();
        let a = KeySpace::generate(20, &sizes, 77).unwrap();
        let b = KeySpace::generate(20, &sizes, 77).unwrap();
        let c = KeySpace::generate(20, &sizes, 78).unwrap();
        assert!((0..20).all(|i| a.cas_hex(i) == b.cas_hex(i)));
        assert!((0..20).any(|i| a.cas_hex(i) != c.cas_hex(i)));
    }

    #[test]
    fn operation_mix_honours_ratios() {
        let mix = OperationMix {
            write_ratio: 0.2,
            miss_ratio: 0.5,
            popularity: Popularity::Uniform,
            objects: 10,
        };
        let mut rng = Rng::new(2);
        let (mut puts, mut misses, mut gets) = (0u32, 0u32, 0u32);
        for _ in 0..100_000 {
            match mix.next(&mut rng) {
                Operation::Put { index } => {
                    assert!(index < 10);
                    puts += 1
                }
                Operation::GetMissing { .. } => misses += 1,
                Operation::Get { index } => {
                    assert!(index < 10);
                    gets += 1
                }
                Operation::Preload { .. } => panic!("a mix never preloads"),
            }
        }
        // Writes 20 %; of the 80 % reads, half miss: 40 % / 40 %.
        assert!((19_000..21_000).contains(&puts), "{puts}");
        assert!((39_000..41_000).contains(&misses), "{misses}");
        assert!((39_000..41_000).contains(&gets), "{gets}");
        let bad = OperationMix {
            write_ratio: 1.5,
            ..mix
        };
        assert!(bad.validate().is_err());
    }
}
