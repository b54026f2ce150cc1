//! The plain Parquet decode rate of a file (every column, record batch by record batch,
//! nothing else), and the rate of streamnmf's reader (decode + cast + validate + re-chunk).
//!
//! `cargo run --release --example decode_rate -- FILE.parquet [BATCH_ROWS]`

use std::fs::File;
use std::time::Instant;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use streamnmf::io::{FileSource, InputOptions};
use streamnmf::source::BatchSource;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(a.first().ok_or("usage: decode_rate FILE [BATCH_ROWS]")?);
    let batch: usize = a.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4096);

    let t = Instant::now();
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?
        .with_batch_size(batch.min(8192))
        .build()?;
    let mut rows = 0usize;
    for rb in reader {
        rows += rb?.num_rows();
    }
    let plain = rows as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut src = FileSource::<f32>::open(std::slice::from_ref(&path), InputOptions::new(batch))?;
    let mut rows2 = 0usize;
    for b in src.epoch(0)? {
        rows2 += b?.rows();
    }
    let ours = rows2 as f64 / t.elapsed().as_secs_f64();
    println!("{{\"rows\": {rows}, \"plain_decode_rows_per_s\": {plain:.0}, \"reader_rows_per_s\": {ours:.0}}}");
    Ok(())
}
