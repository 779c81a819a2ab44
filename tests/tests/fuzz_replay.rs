//! The fuzz targets of `tessera_tests::fuzz` in the ordinary test run: every input kept under
//! `tests/fuzz/regressions/<target>/` (seeds, and each crash once fixed) replayed, and a few
//! thousand deterministic mutations of each seed (bit flips, truncations, splices), so a shallow
//! panic shows here without nightly or libFuzzer. A target that returns has passed: each decoder
//! answers garbage with a typed error.

use std::path::PathBuf;

use tessera_tests::fuzz::{TARGETS, seeds};

fn regressions(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("regressions")
        .join(target)
}

#[test]
fn every_kept_input_of_every_target_returns() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = regressions(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect::<Vec<_>>();
        assert!(!entries.is_empty(), "{name} keeps no input");
        for path in entries {
            target(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

/// A xorshift stream: the same mutations every run.
struct Mutations(u64);

impl Mutations {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        match self.next() % 4 {
            0 if !v.is_empty() => {
                let i = self.next() as usize % v.len();
                v[i] ^= 1 << (self.next() % 8);
            }
            1 => v.truncate(self.next() as usize % (v.len() + 1)),
            2 if !v.is_empty() => {
                let i = self.next() as usize % v.len();
                v[i] = [0, 0xff, 0x7f, 0x80][self.next() as usize % 4];
            }
            _ => {
                let extra = (self.next() % 16) as usize;
                v.extend((0..extra).map(|_| self.next() as u8));
            }
        }
        v
    }
}

#[test]
fn mutated_seeds_return_from_every_target() {
    let seeds = seeds();
    let mut rng = Mutations(0x5eed_f022);
    for (name, target) in TARGETS {
        // The target's seeds and its kept inputs.
        let mut base: Vec<Vec<u8>> = seeds
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .collect();
        for entry in std::fs::read_dir(regressions(name)).unwrap() {
            base.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
        for i in 0..2000 {
            let mut input = base[i % base.len()].clone();
            for _ in 0..1 + rng.next() % 4 {
                input = rng.mutate(&input);
            }
            target(&input);
        }
    }
}

/// Writes the seeds into the regression folders (run by hand:
/// `cargo test -p tessera-tests --test fuzz_replay -- --ignored`).
#[test]
#[ignore]
fn write_the_seeds() {
    for (i, (name, seed)) in seeds().into_iter().enumerate() {
        let dir = regressions(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}

/// The first crash the `onnx` target found (90 s in): `onnx-ir` 0.22 panics converting a
/// malformed node. Imported, it is a typed error naming the file.
#[test]
fn the_onnx_readers_panic_is_a_typed_error() {
    use tessera_common::onnx::{OnnxError, import_bytes};
    let bytes = std::fs::read(regressions("onnx").join("crash-d0a9e20c-node-conversion")).unwrap();
    let path = std::path::Path::new("crash.onnx");
    match import_bytes(&bytes, path) {
        Err(OnnxError::ReaderFailed { path: p, .. }) => assert_eq!(p, path),
        other => panic!("{other:?}"),
    }
}
