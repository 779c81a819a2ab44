//! The public order of training batches: local training, encrypted training and its plaintext
//! comparison all draw it from here, so they see the same batches. Which rows form a batch is
//! public in encrypted training (the servers gather rows of shared data by index) and reveals
//! nothing about the rows' contents.

/// The batches of `epochs` epochs over `n` samples: each epoch a fresh shuffle (from `seed`)
/// cut into batches of `batch` (the last one shorter). Local training and encrypted training
/// (with its plaintext comparison) draw their order from here, so both see the same batches.
pub fn batch_order(n: usize, batch: usize, epochs: usize, seed: u64) -> Vec<Vec<Vec<usize>>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ShuffleRng(seed | 1);
    (0..epochs)
        .map(|_| {
            rng.shuffle(&mut order);
            order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
        })
        .collect()
}

/// A small deterministic xorshift generator for shuffling batches (not for cryptography).
struct ShuffleRng(u64);

impl ShuffleRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_permutation_cut_into_batches() {
        let order = batch_order(10, 4, 2, 7);
        assert_eq!(order.len(), 2);
        for epoch in &order {
            assert_eq!(
                epoch.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![4, 4, 2]
            );
            let mut all: Vec<usize> = epoch.concat();
            all.sort_unstable();
            assert_eq!(all, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(order[0], order[1], "each epoch reshuffles");
        assert_eq!(batch_order(10, 4, 2, 7), order, "deterministic in the seed");
    }
}
