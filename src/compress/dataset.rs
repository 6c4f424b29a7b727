//! The samples `carve compress` runs: model inputs per sample and optional labels (loaded from files
//! by `data` with the `npy` feature, or built in memory by a library user).

use carve_runtime::Tensor;

/// Samples ready to feed the model one by one (each with the model's batch dim of 1 when it has one).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where it came from (for messages and reports).
    pub source: String,
    /// Per sample, the model inputs by name, in the graph's input order.
    pub samples: Vec<Vec<(String, Tensor)>>,
    /// Per-sample labels, when asked for (`--labels ARRAY`).
    pub labels: Option<Vec<i64>>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples at `idx` (for a calibration subset), keeping labels aligned.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            source: self.source.clone(),
            samples: idx
                .iter()
                .filter_map(|&i| self.samples.get(i).cloned())
                .collect(),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().filter_map(|&i| l.get(i).copied()).collect()),
        }
    }

    /// The first `n` samples.
    pub fn take(&self, n: usize) -> Dataset {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }
}
