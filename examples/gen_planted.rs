//! Writes planted data to Parquet, chunk by chunk (bounded memory, two generator threads).
//!
//! `cargo run --release --example gen_planted -- OUT.parquet ROWS COLS RANK [SEED]`

use std::fs::File;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use streamnmf::synth::PlantedSpec;

const CHUNK: usize = 32_768;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        return Err("usage: gen_planted OUT.parquet ROWS COLS RANK [SEED]".into());
    }
    let (rows, cols, rank): (usize, usize, usize) = (a[1].parse()?, a[2].parse()?, a[3].parse()?);
    let seed: u64 = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(7);
    let spec = PlantedSpec::new(rows, cols, rank).seed(seed);
    let h = spec.dictionary();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(CHUNK))
        .build();
    let mut writer: Option<ArrowWriter<File>> = None;
    let starts: Vec<usize> = (0..rows).step_by(CHUNK).collect();
    for pair in starts.chunks(2) {
        // Two chunks generated in parallel, written in order.
        let parts: Vec<RecordBatch> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&start| {
                    let (spec, h) = (&spec, &h);
                    s.spawn(move || {
                        let n = CHUNK.min(rows - start);
                        let (x, _) = spec.rows(h.view(), start, n);
                        let cols: Vec<(String, ArrayRef)> = (0..x.ncols())
                            .map(|j| {
                                let c: Float32Array =
                                    x.column(j).iter().map(|&v| v as f32).collect();
                                (format!("f{j}"), Arc::new(c) as ArrayRef)
                            })
                            .collect();
                        RecordBatch::try_from_iter(cols).expect("columns")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generator"))
                .collect()
        });
        for rb in parts {
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(ArrowWriter::try_new(
                    File::create(&a[0])?,
                    rb.schema(),
                    Some(props.clone()),
                )?),
            };
            w.write(&rb)?;
        }
    }
    writer.ok_or("no rows")?.close()?;
    println!("{}", std::fs::metadata(&a[0])?.len());
    Ok(())
}
