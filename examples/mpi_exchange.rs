//! What a distributed round costs: the collective that sums every rank's statistics
//! (`k × (k + p)` f32 values, combined in the fit's fixed binary tree and sent back
//! down), timed under `mpirun`, against one batch's compute on one rank.
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_exchange
//! mpirun -np 2 target/release/examples/mpi_exchange 64 100000 256 [REPS]
//! ```
//!
//! Prints one JSON line from rank 0: the message size, the median seconds of a round's
//! collective, and (with `-np 1`) one batch's compute: the seconds solving its codes and
//! the seconds of the dictionary update.

use std::time::Instant;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use streamnmf::distributed::{reduce_broadcast, Collective, MpiGroup, Solo};
use streamnmf::pipeline::{fit_distributed, PipelineOptions};
use streamnmf::source::MemorySource;
use streamnmf::{NmfParams, OnlineNmf};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let (k, p, b) = match a[..] {
        [k, p, b, ..] => (k, p, b),
        _ => return Err("usage: mpi_exchange K P BATCH_ROWS [REPS]".into()),
    };
    let reps = a.get(3).copied().unwrap_or(20);
    let world = MpiGroup::init()?;
    let values = k * (k + p);
    let mine: Vec<u8> = (0..values)
        .flat_map(|i| ((i % 97) as f32 * 0.25).to_le_bytes())
        .collect();
    // The fit decodes both halves, adds them and encodes the sum at every tree step.
    let add = |x: Vec<u8>, y: Vec<u8>| {
        let sum: Vec<u8> = x
            .chunks_exact(4)
            .zip(y.chunks_exact(4))
            .flat_map(|(a, b)| {
                let a = f32::from_le_bytes(a.try_into().expect("4"));
                let b = f32::from_le_bytes(b.try_into().expect("4"));
                (a + b).to_le_bytes()
            })
            .collect();
        Ok(sum)
    };
    let mut times = Vec::new();
    for rep in 0..reps + 2 {
        let t = Instant::now();
        let out = reduce_broadcast(&world, mine.clone(), add)?;
        assert_eq!(out.len(), mine.len());
        if rep >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let exchange = median(times);

    // One rank's compute per round, from a fit of 6 batches on one rank: solving a
    // batch's codes (splits across ranks) and the dictionary update (every rank repeats it).
    let compute = (world.size() == 1).then(|| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let w = Array2::from_shape_fn((6 * b, k), |_| rng.random::<f32>());
        let h = Array2::from_shape_fn((k, p), |_| rng.random::<f32>());
        let x = w.dot(&h);
        let params = NmfParams::new(k).batch_size(b).check().expect("valid");
        let mut model = OnlineNmf::<f32>::new(params);
        let opts = PipelineOptions::new();
        let r = fit_distributed(
            &mut model,
            &mut MemorySource::new(x, b),
            &opts,
            &Solo,
            None,
            None,
            |_| {},
        )
        .expect("fits");
        (r.solve_seconds / 6.0, r.update_seconds / 6.0)
    });
    let (solve, update) = match compute {
        Some((s, u)) => (format!("{s:.6e}"), format!("{u:.6e}")),
        None => ("null".into(), "null".into()),
    };
    if world.rank() == 0 {
        println!(
            "{{\"ranks\": {}, \"k\": {k}, \"p\": {p}, \"batch_rows\": {b}, \"message_bytes\": {}, \"exchange_s\": {exchange:.6e}, \"solve_s\": {solve}, \"update_s\": {update}}}",
            world.size(),
            mine.len(),
        );
    }
    Ok(())
}
