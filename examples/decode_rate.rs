//! The plain Parquet decode rate of a file (every column, record batch by record batch,
//! nothing else), and the rate of streamnmf's reader (decode + cast + validate + re-chunk).
//!
//! `cargo run --release --example decode_rate -- FILE.parquet [BATCH_ROWS [ROW,COL,VALUE WIDTH]] [--reader-only]`
//!
//! `--reader-only` skips the plain decode: the process then does what a fit's reader does
//! and nothing else, so its wall time is the floor of a whole-process fit of that file
//! (`benches/peers/family.py` reports it per member).
//!
//! With the last two arguments the file holds triplets (`ROW,COL,VALUE` names its
//! columns, `WIDTH` the matrix width); "rows" are then records, matrix rows are reported
//! apart.

use std::fs::File;
use std::time::Instant;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use streamnmf::io::{FileSource, InputOptions, Layout};
use streamnmf::source::BatchSource;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut a: Vec<String> = std::env::args().skip(1).collect();
    let reader_only = a.iter().any(|s| s == "--reader-only");
    a.retain(|s| s != "--reader-only");
    let usage = "usage: decode_rate FILE [BATCH_ROWS [ROW,COL,VALUE WIDTH]] [--reader-only]";
    let path = std::path::PathBuf::from(a.first().ok_or(usage)?);
    let batch: usize = a.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4096);

    let t = Instant::now();
    let mut rows = 0usize;
    if !reader_only {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?
            .with_batch_size(batch.min(8192))
            .build()?;
        for rb in reader {
            rows += rb?.num_rows();
        }
    }
    let plain = rows as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut opts = InputOptions::new(batch);
    if let Some(names) = a.get(2) {
        let n: Vec<&str> = names.split(',').collect();
        let [row, col, value] = n[..] else {
            return Err(usage.into());
        };
        let width: usize = a.get(3).ok_or(usage)?.parse()?;
        opts = opts
            .layout(Layout::Triplets {
                row: row.into(),
                col: col.into(),
                value: value.into(),
            })
            .width(width);
    }
    let mut src = FileSource::<f32>::open(std::slice::from_ref(&path), opts)?;
    src.will_read(1); // as a one-pass fit: no copies kept for a replay
    let mut rows2 = 0usize;
    for b in src.epoch(0)? {
        rows2 += b?.rows();
    }
    let ours = rows2 as f64 / t.elapsed().as_secs_f64();
    if reader_only {
        println!("{{\"rows\": {rows2}, \"reader_rows_per_s\": {ours:.0}}}");
    } else {
        println!("{{\"rows\": {rows}, \"plain_decode_rows_per_s\": {plain:.0}, \"reader_rows_per_s\": {ours:.0}}}");
    }
    Ok(())
}
