//! Incremental indexes over a service's destination list, so that the connection-count
//! schedulers answer in O(1) and follow a change in O(log n), where the kernel scans the
//! whole list on every decision (`ip_vs_lc.c`, `ip_vs_wlc.c`, `ip_vs_sed.c`, `ip_vs_nq.c`,
//! `ip_vs_fo.c`, `ip_vs_ovf.c`, `ip_vs_twos.c`, and the wlc pass of lblc/lblcr).
//!
//! Both indexes are caches of the list: they are rebuilt from it by
//! [`Scheduler::update`](super::Scheduler::update) (any list change, O(n)), follow one
//! destination's count or OVERLOAD change by
//! [`Scheduler::dest_changed`](super::Scheduler::dest_changed) (O(log n)), and rebuild
//! themselves when handed a list of another length (a caller that skipped `update`). A
//! scheduler asserts in debug builds that its index matches the list it is given
//! ([`Tournament::in_sync`], [`Fenwick::in_sync`]), so a count change somebody forgot to
//! announce fails every debug test that schedules afterwards.
//!
//! # Tournament
//!
//! Every scan-and-compare scheduler here is one rule: each destination either cannot be
//! picked or has a key `(p, w)` with `w > 0`, and the pick is the **earliest** destination
//! in list order with the least `p / w`, compared without dividing: `a` beats `b` iff
//! `p_a × w_b < p_b × w_a` (in `u128`, exact). With `w > 0` this compares rationals, a
//! total preorder, so the kernel's loop (start at the first candidate, switch only to a
//! strictly better one) ends on the first destination of the least class; so does a
//! tournament that lets the right (later) half win only when strictly better.
//!
//! | scheduler | can be picked                              | `p`                        | `w`    |
//! |-----------|--------------------------------------------|----------------------------|--------|
//! | lc        | weight ≠ 0, not OVERLOAD                   | `active × 256 + inactive`  | 1      |
//! | wlc       | weight > 0, not OVERLOAD                   | `active × 256 + inactive`  | weight |
//! | sed       | weight > 0, not OVERLOAD                   | `active + 1`               | weight |
//! | nq        | weight ≠ 0, not OVERLOAD                   | 0 if idle, else `active+1` | weight |
//! | fo        | weight > 0, not OVERLOAD                   | 1                          | weight |
//! | ovf       | weight ≠ 0, not OVERLOAD, active ≤ weight  | 1                          | weight |
//!
//! (wlc and sed skip only OVERLOAD after their first candidate, but a later weight-0
//! destination can never win there, so "weight > 0" is the same set. nq's idle key 0 beats
//! every busy key and ties every other idle one, so the first idle destination wins, as the
//! kernel's early return has it. fo and ovf's `1 / weight` is least for the highest weight.)
//!
//! Invariant of [`Tournament`]: `nodes[leaves + i]` is the key of position `i` of the list
//! last given (or [`EMPTY`] if it cannot be picked, and for the padding past `len`), and
//! every inner node `j` holds the winner of its children `2j` (earlier positions) and
//! `2j + 1`: the right child only if it strictly beats the left. So `nodes[1]` is the pick.
//! A list of at most [`SCAN_MAX`] keeps no tree (`leaves == 0`): each pick runs the kernel's
//! scan ([`Rule::scan`]) instead, which is as fast at that size.
//!
//! # Fenwick
//!
//! twos draws a number in `[0, T]` and walks the eligible destinations subtracting their
//! weights; [`Fenwick`] holds the prefix sums of the eligible weights (weight > 0 and not
//! OVERLOAD, else 0), so the walk is a binary descent, O(log n). Invariant: `weights[i]` is
//! position `i`'s eligible weight in the list last given, `tree` is the Fenwick tree of
//! `weights`, and `total` their sum.

use std::fmt;
use std::marker::PhantomData;

use super::Dest;

/// What a scan-and-compare scheduler ranks (module doc).
pub(super) trait Rule {
    /// `Some((p, w))` with `w > 0` if `d` can be picked, ranked by `p / w` (least wins);
    /// `None` if it cannot.
    fn key(d: &Dest) -> Option<(u64, u32)>;

    /// The kernel's scan over `dests` (the scheduler's reference loop), which the tree must
    /// agree with; used as is for lists of at most [`SCAN_MAX`].
    fn scan(dests: &[Dest]) -> Option<usize>;
}

/// No position, in [`Node::pos`].
const NONE: u32 = u32::MAX;

/// One tournament node: the winning position below it and its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    p: u64,
    w: u32,
    pos: u32,
}

/// A node without a winner. `p = MAX, w = 0` makes [`beats`] false against it and true for
/// any real key against it, so no separate emptiness test is needed.
const EMPTY: Node = Node {
    p: u64::MAX,
    w: 0,
    pos: NONE,
};

/// Does `later` strictly beat `earlier`: `p_l × w_e < p_e × w_l`?
#[inline]
fn beats(later: &Node, earlier: &Node) -> bool {
    u128::from(later.p) * u128::from(earlier.w) < u128::from(earlier.p) * u128::from(later.w)
}

/// The winner of two adjacent ranges.
#[inline]
fn winner(left: Node, right: Node) -> Node {
    if beats(&right, &left) { right } else { left }
}

/// Lists up to this long keep no tree: [`Tournament::best`] runs the kernel's scan
/// ([`Rule::scan`]), which is as fast at that size and needs no upkeep on count changes.
pub(super) const SCAN_MAX: usize = 16;

/// A tournament tree over list positions under rule `R` (module doc).
pub(super) struct Tournament<R> {
    /// List length the tree was built for.
    len: usize,
    /// Number of leaves: a power of two ≥ `len`; 0 for a list of at most [`SCAN_MAX`],
    /// which has no tree.
    leaves: usize,
    /// `nodes[1]` is the root; leaves start at `leaves`; `nodes[0]` is unused.
    nodes: Vec<Node>,
    rule: PhantomData<fn() -> R>,
}

impl<R> Clone for Tournament<R> {
    fn clone(&self) -> Self {
        Tournament {
            len: self.len,
            leaves: self.leaves,
            nodes: self.nodes.clone(),
            rule: PhantomData,
        }
    }
}

impl<R> PartialEq for Tournament<R> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.nodes == other.nodes
    }
}

impl<R> Eq for Tournament<R> {}

impl<R> fmt::Debug for Tournament<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tournament")
            .field("len", &self.len)
            .field("root", &self.nodes.get(1).map(|n| n.pos))
            .finish()
    }
}

impl<R: Rule> Tournament<R> {
    /// The tree of `dests`.
    pub(super) fn new(dests: &[Dest]) -> Self {
        let mut t = Tournament {
            len: 0,
            leaves: 1,
            nodes: Vec::new(),
            rule: PhantomData,
        };
        t.rebuild(dests);
        t
    }

    /// Position `i`'s leaf.
    fn leaf(i: usize, d: &Dest) -> Node {
        match (R::key(d), u32::try_from(i)) {
            (Some((p, w)), Ok(pos)) if w > 0 && pos != NONE => Node { p, w, pos },
            _ => EMPTY,
        }
    }

    /// Rebuilds the whole tree from `dests`, O(n).
    pub(super) fn rebuild(&mut self, dests: &[Dest]) {
        self.len = dests.len();
        self.nodes.clear();
        if self.len <= SCAN_MAX {
            // Short list: no tree, `best` scans.
            self.leaves = 0;
            return;
        }
        self.leaves = dests.len().next_power_of_two();
        self.nodes.resize(2 * self.leaves, EMPTY);
        for (i, d) in dests.iter().enumerate() {
            self.nodes[self.leaves + i] = Self::leaf(i, d);
        }
        for j in (1..self.leaves).rev() {
            self.nodes[j] = winner(self.nodes[2 * j], self.nodes[2 * j + 1]);
        }
    }

    /// Follows a change of `dests[i]` (O(log n); stops early once a node is unchanged).
    /// A list of another length is rebuilt instead.
    pub(super) fn set(&mut self, dests: &[Dest], i: usize) {
        if dests.len() != self.len {
            self.rebuild(dests);
            return;
        }
        if self.leaves == 0 {
            return;
        }
        let Some(d) = dests.get(i) else { return };
        let leaf = Self::leaf(i, d);
        let mut j = self.leaves + i;
        let nodes = self.nodes.as_mut_slice();
        match nodes.get_mut(j) {
            Some(n) if *n != leaf => *n = leaf,
            _ => return,
        }
        // Walk up with the winner so far in registers, reading only the sibling: node `j`
        // is the left (earlier) child when `j` is even. The sibling wins if it is strictly
        // better, or equal and on the left: `a < b + 1` for integers is `a <= b`.
        let mut cur = leaf;
        while j > 1 {
            let Some(&sib) = nodes.get(j ^ 1) else { return };
            let a = u128::from(sib.p) * u128::from(cur.w);
            let b = u128::from(cur.p) * u128::from(sib.w);
            if a < b + u128::from(j & 1 == 1) {
                cur = sib;
            }
            j >>= 1;
            match nodes.get_mut(j) {
                Some(n) if *n != cur => *n = cur,
                _ => return,
            }
        }
    }

    /// The pick over the list, after rebuilding if `dests` has another length: the
    /// earliest destination with the least key, or None if none can be picked.
    #[inline]
    pub(super) fn best(&mut self, dests: &[Dest]) -> Option<usize> {
        if dests.len() != self.len {
            self.rebuild(dests);
        }
        if self.leaves == 0 {
            return R::scan(dests);
        }
        match self.nodes.get(1) {
            Some(n) if n.pos != NONE => Some(n.pos as usize),
            _ => None,
        }
    }

    /// Whether every leaf matches `dests` (the invariant; O(n), for debug assertions).
    pub(super) fn in_sync(&self, dests: &[Dest]) -> bool {
        dests.len() == self.len
            && (self.leaves == 0
                || dests
                    .iter()
                    .enumerate()
                    .all(|(i, d)| self.nodes.get(self.leaves + i) == Some(&Self::leaf(i, d))))
    }
}

/// Prefix sums of the twos-eligible weights (module doc).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Fenwick {
    /// Eligible weight of each position (0: not eligible).
    weights: Vec<u32>,
    /// 1-based Fenwick tree: `tree[k]` sums `weights[k - lowbit(k) .. k]`.
    tree: Vec<u64>,
    /// Sum of `weights`.
    total: u64,
}

/// twos' eligibility: weight > 0 and not OVERLOAD; the weight it counts with.
pub(super) fn twos_weight(d: &Dest) -> u32 {
    if d.overloaded { 0 } else { d.weight }
}

impl Fenwick {
    /// The sums of `dests`.
    pub(super) fn new(dests: &[Dest]) -> Self {
        let mut f = Fenwick::default();
        f.rebuild(dests);
        f
    }

    /// Rebuilds from `dests`, O(n).
    pub(super) fn rebuild(&mut self, dests: &[Dest]) {
        self.weights.clear();
        self.weights.extend(dests.iter().map(twos_weight));
        let n = self.weights.len();
        self.tree.clear();
        self.tree.resize(n + 1, 0);
        self.total = 0;
        for (i, &w) in self.weights.iter().enumerate() {
            let k = i + 1;
            self.tree[k] += u64::from(w);
            self.total += u64::from(w);
            let up = k + (k & k.wrapping_neg());
            if up <= n {
                self.tree[up] += self.tree[k];
            }
        }
    }

    /// Follows a change of `dests[i]`, O(log n); another length is rebuilt.
    pub(super) fn set(&mut self, dests: &[Dest], i: usize) {
        if dests.len() != self.weights.len() {
            self.rebuild(dests);
            return;
        }
        let (Some(d), Some(old)) = (dests.get(i), self.weights.get_mut(i)) else {
            return;
        };
        let new = twos_weight(d);
        if *old == new {
            return;
        }
        let (add, sub) = (u64::from(new), u64::from(*old));
        *old = new;
        self.total = self.total + add - sub;
        let n = self.weights.len();
        let mut k = i + 1;
        while k <= n {
            self.tree[k] = self.tree[k] + add - sub;
            k += k & k.wrapping_neg();
        }
    }

    /// The sum of the eligible weights, after rebuilding if `dests` has another length.
    pub(super) fn total(&mut self, dests: &[Dest]) -> u64 {
        if dests.len() != self.weights.len() {
            self.rebuild(dests);
        }
        self.total
    }

    /// The first position whose inclusive prefix sum reaches `r` (`1 ≤ r ≤ total`): the
    /// destination twos' walk stops at for a draw of `r`. None if `r` is out of range.
    pub(super) fn find(&self, r: u64) -> Option<usize> {
        let n = self.weights.len();
        if r == 0 || r > self.total || n == 0 {
            return None;
        }
        let mut pos = 0;
        let mut left = r;
        let mut step = 1usize << (usize::BITS - 1 - n.leading_zeros());
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < left {
                pos = next;
                left -= self.tree[next];
            }
            step >>= 1;
        }
        // pos is the longest prefix summing below r: position pos (0-based) reaches it.
        (pos < n).then_some(pos)
    }

    /// Whether the sums match `dests` (the invariant; O(n), for debug assertions).
    pub(super) fn in_sync(&self, dests: &[Dest]) -> bool {
        dests.len() == self.weights.len()
            && dests
                .iter()
                .zip(&self.weights)
                .all(|(d, &w)| twos_weight(d) == w)
            && Fenwick::new(dests) == *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ByOverhead;

    impl Rule for ByOverhead {
        fn key(d: &Dest) -> Option<(u64, u32)> {
            (d.weight > 0 && !d.overloaded).then(|| (super::super::overhead(d), d.weight))
        }

        fn scan(dests: &[Dest]) -> Option<usize> {
            plain(dests)
        }
    }

    /// wlc's kernel loop, for [`ByOverhead`].
    fn plain(l: &[Dest]) -> Option<usize> {
        let mut best: Option<(usize, u64, u32)> = None;
        for (i, d) in l.iter().enumerate() {
            if let Some((p, w)) = ByOverhead::key(d) {
                let better = best.is_none_or(|(_, bp, bw)| {
                    u128::from(bp) * u128::from(w) > u128::from(p) * u128::from(bw)
                });
                if better {
                    best = Some((i, p, w));
                }
            }
        }
        best.map(|b| b.0)
    }

    fn dest(weight: u32, active: u32) -> Dest {
        Dest {
            weight,
            active,
            ..Dest::default()
        }
    }

    #[test]
    fn empty_and_single() {
        let mut t = Tournament::<ByOverhead>::new(&[]);
        assert_eq!(t.best(&[]), None);
        let one = [dest(1, 0)];
        assert_eq!(t.best(&one), Some(0));
        let zero = [dest(0, 0)];
        let mut t = Tournament::<ByOverhead>::new(&zero);
        assert_eq!(t.best(&zero), None);
    }

    #[test]
    fn ties_keep_the_earliest_across_subtrees() {
        // 20 equal keys (a tree of 32 leaves): positions 0..20 span both halves.
        let mut list = vec![dest(2, 2); 20];
        let mut t = Tournament::<ByOverhead>::new(&list);
        assert_eq!(t.best(&list), Some(0));
        list[0].overloaded = true;
        t.set(&list, 0);
        assert_eq!(t.best(&list), Some(1));
        // 17 (right half) ties: 256/1 = 512/2, so 1 stays.
        list[17] = dest(1, 1);
        t.set(&list, 17);
        assert_eq!(t.best(&list), Some(1));
        // 19 is lighter: 256/4.
        list[19] = dest(4, 1);
        t.set(&list, 19);
        assert_eq!(t.best(&list), Some(19));
        // 3 ties 19 and is earlier.
        list[3] = dest(8, 2);
        t.set(&list, 3);
        assert_eq!(t.best(&list), Some(3));
        assert!(t.in_sync(&list));
    }

    #[test]
    fn tree_and_short_scan_agree_with_a_plain_scan() {
        // Lengths around SCAN_MAX and powers of two; each position changed in turn.
        for n in [0, 1, 2, 15, 16, 17, 31, 32, 33, 100] {
            let mut list: Vec<Dest> = (0..n).map(|i| dest(1 + (i % 3) as u32, 3)).collect();
            let mut t = Tournament::<ByOverhead>::new(&list);
            for k in 0..3 * n {
                let i = (k * 7) % n.max(1);
                if let Some(d) = list.get_mut(i) {
                    d.active = ((k * 5) % 7) as u32;
                    d.overloaded = k % 11 == 0;
                }
                t.set(&list, i);
                assert_eq!(t.best(&list), plain(&list), "n={n} k={k}");
            }
        }
    }

    #[test]
    fn fenwick_find_is_the_walk() {
        let weights = [3u32, 0, 5, 1, 0, 0, 7];
        let list: Vec<Dest> = weights.iter().map(|&w| dest(w, 0)).collect();
        let mut f = Fenwick::new(&list);
        assert_eq!(f.total(&list), 16);
        // Prefix sums 3 3 8 9 9 9 16.
        let want = |r: u64| {
            let mut acc = 0;
            weights.iter().position(|&w| {
                acc += u64::from(w);
                w > 0 && acc >= r
            })
        };
        for r in 1..=16 {
            assert_eq!(f.find(r), want(r), "r={r}");
        }
        assert_eq!(f.find(0), None);
        assert_eq!(f.find(17), None);
        let mut list = list;
        list[2].overloaded = true;
        f.set(&list, 2);
        assert_eq!(f.total(&list), 11);
        assert_eq!(f.find(4), Some(3));
        assert!(f.in_sync(&list));
    }
}
