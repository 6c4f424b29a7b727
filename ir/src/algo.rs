//! Graph algorithms over node dependency lists, built on petgraph: schedule order and cycle reporting.

use petgraph::graphmap::DiGraphMap;

/// A dependency cycle, reported with one node index that lies on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// A node on the cycle.
    pub node: usize,
}

/// A schedule of `n` items given `deps[i]` = the items `i` must come after.
///
/// When the given order `0..n` is already valid it is kept unchanged (so ONNX files, which are required
/// to be sorted, keep their node order); otherwise a topological order is computed.
pub fn schedule(deps: &[Vec<usize>]) -> Result<Vec<usize>, Cycle> {
    let n = deps.len();
    let in_order = deps
        .iter()
        .enumerate()
        .all(|(i, d)| d.iter().all(|&j| j < i));
    if in_order {
        return Ok((0..n).collect());
    }
    let mut g: DiGraphMap<usize, ()> =
        DiGraphMap::with_capacity(n, deps.iter().map(Vec::len).sum());
    for i in 0..n {
        g.add_node(i);
    }
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            if j == i {
                return Err(Cycle { node: i });
            }
            g.add_edge(j, i, ());
        }
    }
    petgraph::algo::toposort(&g, None).map_err(|c| Cycle { node: c.node_id() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_order_is_kept_and_unsorted_is_fixed() {
        assert_eq!(
            schedule(&[vec![], vec![0], vec![1]]).unwrap(),
            vec![0, 1, 2]
        );
        let order = schedule(&[vec![1], vec![], vec![0]]).unwrap();
        let pos = |x| order.iter().position(|&y| y == x).unwrap();
        assert!(pos(1) < pos(0) && pos(0) < pos(2));
    }

    #[test]
    fn a_cycle_is_reported() {
        assert!(schedule(&[vec![1], vec![0]]).is_err());
        assert!(schedule(&[vec![0]]).is_err());
    }
}
