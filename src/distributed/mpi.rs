//! The ranks of an MPI job (`mpirun -np N …`) as a [`Collective`], through rsmpi and the
//! system's MPI library. Only the thread that made the group talks to MPI (the fit's
//! calling thread), so the library is asked for `MPI_THREAD_FUNNELED`.

use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{Destination, Source};
use mpi::Threading;

use super::Collective;
use crate::error::{Error, Result};

/// Bytes per MPI message at most: counts are C ints, so a longer message (a dictionary's
/// statistics can pass 2 GB) goes as several.
const PIECE: usize = 1 << 30;

/// The world of an MPI job: initializes MPI when made and finalizes it when dropped.
/// One per process, made on the thread that will run the fit.
///
/// ```no_run
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::distributed::{Collective, MpiGroup};
/// let world = MpiGroup::init()?;
/// println!("rank {} of {}", world.rank(), world.size());
/// # Ok(()) }
/// ```
pub struct MpiGroup {
    world: SimpleCommunicator,
    _universe: mpi::environment::Universe,
}

impl MpiGroup {
    /// Initializes MPI (an error if it already was, or if the library cannot give the
    /// funneled threading the pipeline needs).
    pub fn init() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Collective("MPI is already initialized".into()))?;
        if matches!(threading, Threading::Single) {
            return Err(Error::Collective(format!(
                "the MPI library gives {threading:?} threading; the fit needs Funneled"
            )));
        }
        Ok(Self {
            world: universe.world(),
            _universe: universe,
        })
    }

    /// Ends every rank of the job at once (after an error this rank cannot report
    /// through a round).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn send(&self, to: usize, bytes: &[u8]) -> Result<()> {
        let p = self.world.process_at_rank(rank_of(to, self.size())?);
        p.send(&(bytes.len() as u64));
        for piece in bytes.chunks(PIECE) {
            p.send(piece);
        }
        Ok(())
    }
    fn recv(&self, from: usize) -> Result<Vec<u8>> {
        let p = self.world.process_at_rank(rank_of(from, self.size())?);
        let (len, _) = p.receive::<u64>();
        let len =
            usize::try_from(len).map_err(|_| Error::Collective(format!("a {len}-byte message")))?;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let (piece, _) = p.receive_vec::<u8>();
            if piece.is_empty() {
                return Err(Error::Collective(format!(
                    "rank {from} sent {} of {len} bytes",
                    out.len()
                )));
            }
            out.extend(piece);
        }
        Ok(out)
    }
}

fn rank_of(r: usize, size: usize) -> Result<i32> {
    if r < size {
        Ok(r as i32)
    } else {
        Err(Error::Collective(format!(
            "no rank {r} in a group of {size}"
        )))
    }
}
