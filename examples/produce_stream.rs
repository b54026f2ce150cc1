//! Writes planted rows as an Arrow IPC stream on standard output, for feeding
//! `streamnmf fit -` in soak and latency tests: `ROWS` rows of `COLS` f32 columns, rank
//! `RANK`, in record batches of `BATCH` rows.
//!
//! `cargo run --release --example produce_stream -- ROWS COLS RANK BATCH [SEED] | streamnmf fit - -k RANK`

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use streamnmf::synth::PlantedSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        return Err("usage: produce_stream ROWS COLS RANK BATCH [SEED]".into());
    }
    let (rows, cols, rank, batch): (usize, usize, usize, usize) =
        (a[0].parse()?, a[1].parse()?, a[2].parse()?, a[3].parse()?);
    let seed: u64 = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(7);
    let spec = PlantedSpec::new(rows, cols, rank).seed(seed);
    let h = spec.dictionary();
    let names: Vec<String> = (0..cols).map(|j| format!("f{j}")).collect();
    let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let mut writer: Option<arrow_ipc::writer::StreamWriter<_>> = None;
    let mut out = Some(out);
    // Rows are generated in blocks of at most 65 536 (the generator's cost), then cut into
    // record batches of `batch` rows.
    let block = batch.max(1).clamp(1, 65_536);
    for start in (0..rows).step_by(block) {
        let n = block.min(rows - start);
        let (x, _) = spec.rows(h.view(), start, n);
        let cols_data: Vec<(String, ArrayRef)> = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let c: Float32Array = x.column(j).iter().map(|&v| v as f32).collect();
                (name.clone(), Arc::new(c) as ArrayRef)
            })
            .collect();
        let rb = RecordBatch::try_from_iter(cols_data)?;
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(arrow_ipc::writer::StreamWriter::try_new(
                out.take().expect("once"),
                &rb.schema(),
            )?),
        };
        for s in (0..n).step_by(batch.max(1)) {
            match w.write(&rb.slice(s, batch.min(n - s))) {
                Ok(()) => {}
                // The consumer went away: stop quietly.
                Err(e) if e.to_string().contains("Broken pipe") => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(mut w) = writer {
        w.finish()?;
        w.get_mut().flush()?;
    }
    Ok(())
}
