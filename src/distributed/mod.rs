//! Data-parallel fitting across processes: the ranks of a group each read a share of the
//! input, solve their batches' codes against the same dictionary, and combine the
//! batches' statistics before every dictionary update, which every rank then applies.
//! [`crate::pipeline::fit_distributed`] runs a fit so; this module holds what the ranks
//! say to each other.
//!
//! # The algorithm, and what it equals
//! With `N` ranks, the input's mini-batches are dealt round-robin: batch `t` of the input
//! (in reading order) belongs to rank `t mod N`. Round `r` of an epoch takes the `r`-th
//! batch of every rank that has one; each is solved against the same `H`, their
//! statistics are summed in a fixed binary-tree order (below) and folded in as one
//! update. So `N` ranks fit exactly what one process fits when it takes the same batches
//! in rounds of `N`, sums each round's statistics in the same order and updates once per
//! round: bit for bit, whatever the machines' timing. [`ThreadGroup`] runs the `N` ranks
//! as threads of one process, which is how that one process is built and tested. One
//! rank is the ordinary pipeline with staleness 0.
//!
//! Between epochs the ranks wait for each other (a rank whose share of the epoch is done
//! takes part in the remaining rounds with nothing to add), so a new pass starts on every
//! rank at the same update.
//!
//! # The tree, and its cost
//! [`reduce_broadcast`] combines rank `r + d` into rank `r` for `d = 1, 2, 4, …` (rank
//! `r` a multiple of `2d`), then sends the result back down the same tree: `2⌈log₂ N⌉`
//! steps of one message each on the critical path. The combination order depends only on
//! `N`, never on which message arrives first, which is why the sums are reproducible
//! (MPI's own allreduce does not promise that). For a dense round the message is the
//! `k × k` and `k × p` statistics, so a round costs about `2⌈log₂ N⌉ (α + 4k(k+p)/B)`
//! for latency `α` and bandwidth `B` (f32).
//!
//! # Errors
//! Every round carries each rank's state: a batch's statistics, nothing (its share is
//! done), a stop request, or a failure with its message. A rank that fails (a bad value
//! in its share, an unreadable file) says so in the next round, and every rank ends with
//! [`Error::Rank`] naming it: no rank is left waiting in a collective.

pub(crate) mod wire;

#[cfg(feature = "mpi")]
mod mpi;

#[cfg(feature = "mpi")]
pub use self::mpi::MpiGroup;

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::error::{Error, Result};

/// A group of ranks that can send each other messages: what a distributed fit needs from
/// a communication layer (MPI, threads of one process, …).
///
/// Messages between two ranks arrive in the order they were sent.
pub trait Collective {
    /// This rank, `0 ≤ rank < size`.
    fn rank(&self) -> usize;
    /// Ranks in the group.
    fn size(&self) -> usize;
    /// Sends `bytes` to rank `to`.
    fn send(&self, to: usize, bytes: &[u8]) -> Result<()>;
    /// The next message from rank `from` (blocking).
    fn recv(&self, from: usize) -> Result<Vec<u8>>;
}

/// A group of one: every collective is a no-op.
///
/// ```
/// use streamnmf::distributed::{reduce_broadcast, Collective, Solo};
/// let one = Solo;
/// assert_eq!((one.rank(), one.size()), (0, 1));
/// let sum = reduce_broadcast(&one, vec![7], |a, _| Ok(a)).unwrap();
/// assert_eq!(sum, [7]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn send(&self, to: usize, _: &[u8]) -> Result<()> {
        Err(Error::Collective(format!(
            "a group of one has no rank {to}"
        )))
    }
    fn recv(&self, from: usize) -> Result<Vec<u8>> {
        Err(Error::Collective(format!(
            "a group of one has no rank {from}"
        )))
    }
}

/// The ranks of a group as threads of one process, joined by channels: one
/// [`ThreadGroup`] per thread, from [`ThreadGroup::new`]. A distributed fit over them
/// gives bitwise the model of the same fit over as many processes.
///
/// ```
/// use streamnmf::distributed::{reduce_broadcast, Collective, ThreadGroup};
/// let ranks = ThreadGroup::new(3);
/// let sums: Vec<Vec<u8>> = std::thread::scope(|s| {
///     let hs: Vec<_> = ranks
///         .iter()
///         .map(|g| {
///             s.spawn(move || {
///                 reduce_broadcast(g, vec![g.rank() as u8 + 1], |mut a, b| {
///                     a[0] += b[0];
///                     Ok(a)
///                 })
///                 .unwrap()
///             })
///         })
///         .collect();
///     hs.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(sums, vec![vec![6]; 3]);
/// ```
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    to: Vec<Sender<Vec<u8>>>,
    from: Vec<Receiver<Vec<u8>>>,
}

impl ThreadGroup {
    /// `size` ranks, one value per thread (rank `i` at index `i`).
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        // channels[i][j]: from rank i to rank j.
        type Link = (Sender<Vec<u8>>, Receiver<Vec<u8>>);
        let channels: Vec<Vec<Link>> = (0..size)
            .map(|_| (0..size).map(|_| unbounded()).collect())
            .collect();
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                to: (0..size).map(|j| channels[rank][j].0.clone()).collect(),
                from: (0..size).map(|i| channels[i][rank].1.clone()).collect(),
            })
            .collect()
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.to.len()
    }
    fn send(&self, to: usize, bytes: &[u8]) -> Result<()> {
        let tx = self
            .to
            .get(to)
            .ok_or_else(|| Error::Collective(format!("no rank {to}")))?;
        tx.send(bytes.to_vec())
            .map_err(|_| Error::Collective(format!("rank {to} has left the group")))
    }
    fn recv(&self, from: usize) -> Result<Vec<u8>> {
        let rx = self
            .from
            .get(from)
            .ok_or_else(|| Error::Collective(format!("no rank {from}")))?;
        rx.recv()
            .map_err(|_| Error::Collective(format!("rank {from} has left the group")))
    }
}

/// Combines every rank's `mine` with `combine(lower ranks, higher ranks)` in a fixed
/// binary tree and gives every rank the result (see the [module docs](self)). `combine`
/// must not fail on one rank only: its errors end the collective on the ranks that see
/// them.
pub fn reduce_broadcast(
    group: &dyn Collective,
    mine: Vec<u8>,
    combine: impl Fn(Vec<u8>, Vec<u8>) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let (rank, n) = (group.rank(), group.size());
    let mut acc = mine;
    let mut d = 1;
    while d < n {
        if rank % (2 * d) == d {
            group.send(rank - d, &acc)?;
            break;
        }
        if rank + d < n {
            let theirs = group.recv(rank + d)?;
            acc = combine(acc, theirs)?;
        }
        d *= 2;
    }
    broadcast_from(group, 0, (rank == 0).then_some(acc))
}

/// Rank `root`'s `bytes` on every rank (`bytes` is read on `root` only), down a binomial
/// tree rooted there.
pub fn broadcast_from(
    group: &dyn Collective,
    root: usize,
    bytes: Option<Vec<u8>>,
) -> Result<Vec<u8>> {
    let n = group.size();
    if root >= n {
        return Err(Error::Collective(format!(
            "no rank {root} to broadcast from"
        )));
    }
    // Ranks relative to the root.
    let me = (group.rank() + n - root) % n;
    let real = |v: usize| (v + root) % n;
    let mut top = 1;
    while top < n {
        top *= 2;
    }
    let mut held = if me == 0 {
        Some(bytes.ok_or_else(|| Error::Collective("the root has nothing to send".into()))?)
    } else {
        None
    };
    let mut d = top / 2;
    while d >= 1 {
        if me % (2 * d) == d {
            held = Some(group.recv(real(me - d))?);
        } else if me.is_multiple_of(2 * d) && me + d < n {
            let b = held
                .as_ref()
                .ok_or_else(|| Error::Collective("broadcast out of order".into()))?;
            group.send(real(me + d), b)?;
        }
        d /= 2;
    }
    held.ok_or_else(|| Error::Collective("broadcast reached no value".into()))
}

/// Every rank learns whether every rank's `local` is `Ok`: the first failing rank's
/// message ends the call on every rank (the failing rank gets its own error back).
///
/// ```
/// use streamnmf::distributed::{agree, Solo};
/// assert_eq!(agree(&Solo, Ok(5)).unwrap(), 5);
/// ```
pub fn agree<T>(group: &dyn Collective, local: Result<T>) -> Result<T> {
    let status = match &local {
        Ok(_) => wire::status_ok(),
        Err(e) => wire::status_failed(group.rank(), &e.to_string()),
    };
    let all = reduce_broadcast(group, status, |a, b| Ok(wire::first_failure(a, b)))?;
    let mine = local?;
    match wire::failure(&all)? {
        Some((rank, message)) => Err(Error::Rank { rank, message }),
        None => Ok(mine),
    }
}

/// Rank `root`'s result on every rank: its bytes, or its error (as [`Error::Rank`] on
/// the other ranks, as itself on the root).
pub fn broadcast_result(
    group: &dyn Collective,
    root: usize,
    local: Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let me = group.rank() == root;
    let (msg, own) = match local {
        Ok(b) => (Some(wire::with_status_ok(b)), None),
        Err(e) => (Some(wire::status_failed(root, &e.to_string())), Some(e)),
    };
    let got = broadcast_from(group, root, if me { msg } else { None })?;
    if let Some(e) = own {
        return Err(e);
    }
    match wire::failure(&got)? {
        Some((rank, message)) => Err(Error::Rank { rank, message }),
        None => Ok(wire::payload(got)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_threads<T: Send>(n: usize, f: impl Fn(&ThreadGroup) -> T + Sync) -> Vec<T> {
        let ranks = ThreadGroup::new(n);
        std::thread::scope(|s| {
            let hs: Vec<_> = ranks.iter().map(|g| s.spawn(|| f(g))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn tree_order_is_fixed_and_complete() {
        // Concatenation is not commutative: the result spells the combination order.
        for n in 1..=9 {
            let got = on_threads(n, |g| {
                reduce_broadcast(g, vec![g.rank() as u8], |mut a, b| {
                    a.extend(b);
                    Ok(a)
                })
                .unwrap()
            });
            let want: Vec<u8> = (0..n as u8).collect();
            assert!(got.iter().all(|v| *v == want), "n = {n}: {got:?}");
        }
    }

    #[test]
    fn broadcast_from_any_root() {
        for n in 1..=7 {
            for root in 0..n {
                let got = on_threads(n, |g| {
                    let mine = (g.rank() == root).then(|| vec![root as u8, 42]);
                    broadcast_from(g, root, mine).unwrap()
                });
                assert!(got.iter().all(|v| *v == [root as u8, 42]), "{n} {root}");
            }
        }
    }

    #[test]
    fn a_failure_on_one_rank_reaches_all() {
        let got = on_threads(4, |g| {
            let local = if g.rank() == 2 {
                Err(Error::Collective("bad share".into()))
            } else {
                Ok(())
            };
            agree(g, local).unwrap_err().to_string()
        });
        assert!(got[2].contains("bad share"));
        for (r, e) in got.iter().enumerate().filter(|(r, _)| *r != 2) {
            assert!(e.contains("rank 2") && e.contains("bad share"), "{r}: {e}");
        }
        let got = on_threads(3, |g| {
            let local = if g.rank() == 0 {
                Err(Error::Collective("no model".into()))
            } else {
                Ok(vec![1, 2, 3])
            };
            broadcast_result(g, 0, local).map_err(|e| e.to_string())
        });
        assert!(got
            .iter()
            .all(|r| r.as_ref().unwrap_err().contains("no model")));
    }
}
