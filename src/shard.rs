//! Splitting instances among agents: `shard = "I/N"` gives this agent the instances whose
//! stable hash lands in bucket I of N. Pure.
//!
//! The bucket is Lamping and Veach's jump consistent hash of the FNV-1a hash of the
//! instance's id (or name): the same on every machine and every release, so N agents cover
//! every instance exactly once, and going from N to N+1 agents moves only the instances the
//! new agent takes (about 1/(N+1) of them).

use std::fmt;

use thiserror::Error;

use crate::model::Instance;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShardError {
    #[error(
        "expected I/N with 0 <= I < N, as \"0/4\" (or \"auto/N\": I from the host name's trailing number, as a StatefulSet pod's), found {0:?}"
    )]
    Malformed(String),
    #[error("shard \"auto/N\": the host name {0:?} does not end in -<number>")]
    NoOrdinal(String),
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `I/N`; `auto/N` takes I from `hostname`'s trailing `-<n>` (a StatefulSet pod's
    /// ordinal).
    pub fn parse(text: &str, hostname: &str) -> Result<Shard, ShardError> {
        let malformed = || ShardError::Malformed(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(malformed)?;
        let count: u32 = count.trim().parse().map_err(|_| malformed())?;
        let index: u32 = if index.trim() == "auto" {
            hostname
                .rsplit_once('-')
                .and_then(|(_, n)| n.parse().ok())
                .ok_or_else(|| ShardError::NoOrdinal(hostname.to_string()))?
        } else {
            index.trim().parse().map_err(|_| malformed())?
        };
        if count == 0 || index >= count {
            return Err(malformed());
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard checks the instance.
    pub fn owns(self, instance: &Instance) -> bool {
        let key = instance.id.as_deref().unwrap_or(&instance.name);
        bucket(fnv1a(key.as_bytes()), self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// FNV-1a, 64 bits: fixed constants, so a key hashes alike everywhere.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Jump consistent hash (Lamping and Veach, 2014): a bucket in 0..count.
fn bucket(mut key: u64, count: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(count) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(n: usize) -> Vec<Instance> {
        (0..n)
            .map(|i| {
                let mut instance = Instance::new(format!("web-{i}"), "t");
                instance.id = Some(format!("i-{i:08x}"));
                instance
            })
            .collect()
    }

    #[test]
    fn shards_cover_every_instance_exactly_once() {
        let all = instances(1000);
        for count in [1, 2, 3, 7] {
            let mut seen = vec![0; all.len()];
            for index in 0..count {
                let shard = Shard { index, count };
                for (i, instance) in all.iter().enumerate() {
                    seen[i] += usize::from(shard.owns(instance));
                }
            }
            assert!(seen.iter().all(|n| *n == 1), "{count} shards");
        }
    }

    #[test]
    fn adding_an_agent_moves_only_what_it_takes() {
        let all = instances(1000);
        let owner = |count, instance: &Instance| {
            (0..count)
                .find(|index| {
                    Shard {
                        index: *index,
                        count,
                    }
                    .owns(instance)
                })
                .expect("an owner")
        };
        let moved: Vec<&Instance> = all.iter().filter(|i| owner(3, i) != owner(4, i)).collect();
        assert!(
            moved.iter().all(|i| owner(4, i) == 3),
            "moves go to the new agent only"
        );
        // About a quarter move; each shard holds about a quarter.
        assert!((150..350).contains(&moved.len()), "{} moved", moved.len());
        for index in 0..4 {
            let held = all.iter().filter(|i| owner(4, i) == index).count();
            assert!((150..350).contains(&held), "shard {index} holds {held}");
        }
    }

    #[test]
    fn parse_reads_fixed_and_statefulset_ordinals() {
        assert_eq!(Shard::parse("1/4", "x"), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(
            Shard::parse("auto/3", "sgprobe-2"),
            Ok(Shard { index: 2, count: 3 })
        );
        for bad in ["4/4", "1/0", "1", "a/2", "-1/2"] {
            assert!(Shard::parse(bad, "x").is_err(), "{bad}");
        }
        assert!(matches!(
            Shard::parse("auto/3", "sgprobe-5"),
            Err(ShardError::Malformed(_))
        ));
        assert!(matches!(
            Shard::parse("auto/3", "laptop"),
            Err(ShardError::NoOrdinal(_))
        ));
    }
}
