//! Tag trees (ISO 15444-1 B.10.2): how a packet header codes, for a grid of code-blocks, the
//! first layer each is in and its missing most significant bit-planes: a quadtree of minima,
//! each node's value told once, as "not yet" bits up to a threshold. The same algorithm as
//! OpenJPEG's `opj_tgt_decode` / `opj_tgt_encode`.

/// One tree over a `width × height` grid of leaves.
pub struct TagTree {
    /// The levels' sizes, leaves first.
    levels: Vec<(usize, usize)>,
    /// Every node, level after level, leaves first.
    nodes: Vec<Node>,
}

#[derive(Clone, Copy)]
struct Node {
    value: u32,
    low: u32,
    known: bool,
}

impl TagTree {
    /// A tree whose values are all unknown (to decode), or all `u32::MAX` (to set and encode).
    pub fn new(width: usize, height: usize) -> Self {
        let mut levels = vec![(width, height)];
        let (mut w, mut h) = (width, height);
        while w > 1 || h > 1 {
            w = w.div_ceil(2);
            h = h.div_ceil(2);
            levels.push((w, h));
        }
        let count = levels.iter().map(|(w, h)| w * h).sum();
        let node = Node {
            value: u32::MAX,
            low: 0,
            known: false,
        };
        Self {
            levels,
            nodes: vec![node; count],
        }
    }

    /// The nodes from the root down to leaf `leaf`, as indices.
    fn path(&self, leaf: usize) -> impl Iterator<Item = usize> {
        let (mut x, mut y) = (leaf % self.levels[0].0, leaf / self.levels[0].0);
        let mut start = 0;
        // At most 64 levels (a tree over 2^64 leaves): no allocation per call.
        let mut path = [0usize; 64];
        for (slot, &(w, h)) in path.iter_mut().zip(&self.levels) {
            *slot = start + y * w + x;
            start += w * h;
            x /= 2;
            y /= 2;
        }
        path.into_iter().take(self.levels.len()).rev()
    }

    /// Decode leaf `leaf` up to `threshold`: whether its value is below it.
    pub fn decode(
        &mut self,
        bits: &mut super::bits::BitReader<'_>,
        leaf: usize,
        threshold: u32,
    ) -> Option<bool> {
        let mut low = 0;
        for i in self.path(leaf) {
            let node = &mut self.nodes[i];
            low = low.max(node.low); // what the parents told holds for the child
            while low < threshold && low < node.value {
                if bits.bit()? {
                    node.value = low;
                } else {
                    low += 1;
                }
            }
            node.low = low;
        }
        // The leaves are the first nodes.
        Some(self.nodes[leaf].value < threshold)
    }

    /// The value of a leaf the decoder has learnt (below a threshold it was decoded to).
    #[cfg(test)]
    pub fn value(&self, leaf: usize) -> u32 {
        self.nodes[leaf].value
    }

    /// Set leaf values (`u32::MAX` for none) and work out the inner nodes' minima.
    pub fn set_leaves(&mut self, values: &[u32]) {
        self.nodes[..values.len()]
            .iter_mut()
            .zip(values)
            .for_each(|(n, &v)| n.value = v);
        let mut start = 0;
        for pair in self.levels.windows(2) {
            let ((w, h), (pw, _)) = (pair[0], pair[1]);
            let parent_start = start + w * h;
            for y in 0..h {
                for x in 0..w {
                    let v = self.nodes[start + y * w + x].value;
                    let p = &mut self.nodes[parent_start + (y / 2) * pw + x / 2];
                    p.value = p.value.min(v);
                }
            }
            start = parent_start;
        }
    }

    /// Encode leaf `leaf` up to `threshold`.
    pub fn encode(&mut self, bits: &mut super::bits::BitWriter, leaf: usize, threshold: u32) {
        let mut low = 0;
        for i in self.path(leaf) {
            let node = &mut self.nodes[i];
            low = low.max(node.low); // what the parents told holds for the child
            while low < threshold {
                if low >= node.value {
                    if !node.known {
                        bits.bit(true);
                        node.known = true;
                    }
                    break;
                }
                bits.bit(false);
                low += 1;
            }
            node.low = low;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::bits::{BitReader, BitWriter};
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Leaves encoded fully (threshold above the value), in any order, decode to their values.
        #[test]
        fn values_decode_as_encoded(
            (w, h, values) in (1usize..9, 1usize..9).prop_flat_map(|(w, h)| {
                (Just(w), Just(h), proptest::collection::vec(0u32..20, w * h))
            }),
            order_seed in any::<u64>(),
        ) {
            let mut order: Vec<usize> = (0..w * h).collect();
            let mut seed = order_seed | 1;
            for i in (1..order.len()).rev() {
                seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
                order.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let mut tree = TagTree::new(w, h);
            tree.set_leaves(&values);
            let mut bits = BitWriter::new();
            for &leaf in &order {
                tree.encode(&mut bits, leaf, values[leaf] + 1);
            }
            let bytes = bits.finish();
            let mut reader = BitReader::new(&bytes);
            let mut decoded = TagTree::new(w, h);
            for &leaf in &order {
                let mut t = 1;
                while !decoded.decode(&mut reader, leaf, t).unwrap() {
                    t += 1;
                }
                prop_assert_eq!(t - 1, values[leaf]);
                prop_assert_eq!(decoded.value(leaf), values[leaf]);
            }
        }
    }
}
