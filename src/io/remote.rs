//! Parquet straight from object storage (feature `object-store`): `s3://bucket/key`,
//! `gs://`, `az://` and `http(s)://` URLs, read through the `object_store` crate and
//! parquet's async reader with range requests, so memory stays bounded by the record
//! batch, as for local files.
//!
//! A URL ending in `/` is a prefix: every `.parquet` object under it, in name order.
//! Credentials and endpoints come from the usual environment variables (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`), lower-cased into the store's options (e.g. `AWS_ENDPOINT_URL`
//! and `AWS_ALLOW_HTTP` for an S3-compatible server).
//!
//! The async reads run on a single-threaded tokio runtime owned by the source and driven
//! from the pipeline's reader thread, one record batch at a time.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
// parquet 60 deprecates its object-store reader in favour of hand-written `AsyncFileReader`s
// (arrow-rs #10308); it still does the range requests we need.
#[allow(deprecated)]
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use tokio::runtime::Runtime;

use super::convert::Converter;
use super::records::{converter_methods, mini_batches, Named, RecordBatches};
use super::{ArrowFloat, InputOptions, Layout};
use crate::error::{Error, Result};
use crate::source::{BatchIter, BatchSource};

/// One object: its store, path, size and the URL errors name.
#[derive(Clone)]
struct Object {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    url: Arc<str>,
}

/// An object-store error at `url`, as an I/O error located at that URL (not found and
/// permission errors keep their kind).
fn located(url: &str, e: object_store::Error) -> Error {
    let io: std::io::Error = e.into();
    Error::Io(io).in_file(url)
}

/// Parquet objects in storage as a batch source: rewindable, read again every epoch.
///
/// ```no_run
/// # fn main() -> streamnmf::Result<()> {
/// use streamnmf::io::{InputOptions, RemoteSource};
/// use streamnmf::source::BatchSource;
/// let mut src = RemoteSource::<f32>::open(&["s3://bucket/table/".into()], InputOptions::new(1024))?;
/// let rows: usize = src.epoch(0)?.map(|b| b.unwrap().rows()).sum();
/// # Ok(()) }
/// ```
pub struct RemoteSource<F> {
    runtime: Arc<Runtime>,
    objects: Vec<Object>,
    converter: Converter,
    opts: InputOptions,
    _f: std::marker::PhantomData<fn() -> F>,
}

impl<F: ArrowFloat> RemoteSource<F> {
    /// Resolves the URLs (listing prefixes), and reads the first object's schema to
    /// resolve the layout. Sparse layouts need `opts.width`.
    pub fn open(urls: &[String], opts: InputOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        let env: Vec<(String, String)> = std::env::vars()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let mut objects = Vec::new();
        for u in urls {
            let url = url::Url::parse(u)
                .map_err(|e| Error::Schema(format!("not a URL: {e}")).in_file(u))?;
            let (store, path) = object_store::parse_url_opts(&url, env.iter().cloned())
                .map_err(|e| located(u, e))?;
            let store: Arc<dyn ObjectStore> = Arc::from(store);
            if u.ends_with('/') {
                let mut listed: Vec<_> = runtime
                    .block_on(store.list(Some(&path)).try_collect::<Vec<_>>())
                    .map_err(|e| located(u, e))?;
                listed.retain(|m| m.location.as_ref().ends_with(".parquet"));
                listed.sort_by(|a, b| a.location.cmp(&b.location));
                if listed.is_empty() {
                    return Err(
                        Error::Schema("no .parquet objects under this prefix".into()).in_file(u),
                    );
                }
                for m in listed {
                    let url = format!("{}{}", &u[..u.len() - path.as_ref().len() - 1], m.location);
                    objects.push(Object {
                        store: store.clone(),
                        size: m.size,
                        path: m.location,
                        url: url.into(),
                    });
                }
            } else {
                let meta = runtime
                    .block_on(store.head(&path))
                    .map_err(|e| located(u, e))?;
                objects.push(Object {
                    store,
                    path,
                    size: meta.size,
                    url: u.as_str().into(),
                });
            }
        }
        let first = objects
            .first()
            .ok_or_else(|| Error::Schema("no inputs".into()))?;
        let schema = runtime
            .block_on(builder(first))
            .map_err(|e| e.in_file(&*first.url))?
            .schema()
            .clone();
        let width = match (&opts.layout, opts.width) {
            (Layout::Dense, _) => None,
            (_, Some(w)) => Some(w),
            (_, None) => return Err(Error::SparseWidthUnknown.in_file(&*first.url)),
        };
        let converter = Converter::from_options(&schema, &opts, width, &first.url)
            .map_err(|e| e.in_file(&*first.url))?;
        Ok(Self {
            runtime: Arc::new(runtime),
            objects,
            converter,
            opts,
            _f: std::marker::PhantomData,
        })
    }
}

/// The async Parquet reader of one object (reads its footer).
#[allow(deprecated)]
async fn builder(o: &Object) -> Result<ParquetRecordBatchStreamBuilder<ParquetObjectReader>> {
    let reader = ParquetObjectReader::new(o.store.clone(), o.path.clone()).with_file_size(o.size);
    ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| Error::Decode {
            format: "Parquet",
            message: e.to_string(),
        })
}

/// One object's record batches, pulled through the runtime one at a time.
fn record_batches(runtime: Arc<Runtime>, o: Object, rows: usize) -> Named {
    let stream = runtime
        .block_on(builder(&o))
        .map_err(|e| e.in_file(&*o.url))?
        .with_batch_size(rows)
        .build()
        .map_err(|e| {
            Error::Decode {
                format: "Parquet",
                message: e.to_string(),
            }
            .in_file(&*o.url)
        })?;
    let mut stream = Some(stream);
    let batches: RecordBatches = Box::new(std::iter::from_fn(move || {
        let s = stream.as_mut()?;
        let next: Option<std::result::Result<RecordBatch, ArrowError>> = runtime
            .block_on(s.next())
            .map(|r| r.map_err(|e| ArrowError::ExternalError(Box::new(e))));
        if next.as_ref().is_none_or(|r| r.is_err()) {
            stream = None;
        }
        next
    }));
    Ok((o.url.clone(), batches, 0))
}

impl<F: ArrowFloat> BatchSource<F> for RemoteSource<F> {
    converter_methods!();
    fn rewindable(&self) -> bool {
        true
    }
    fn same_batches_every_epoch(&self) -> bool {
        true
    }
    fn name(&self) -> Option<String> {
        self.objects.first().map(|o| o.url.to_string())
    }
    fn epoch(&mut self, _epoch: usize) -> Result<BatchIter<F>> {
        let runtime = self.runtime.clone();
        let rows = super::files::decode_rows(&self.converter);
        let inputs = self
            .objects
            .clone()
            .into_iter()
            .map(move |o| record_batches(runtime.clone(), o, rows));
        Ok(Box::new(mini_batches(
            inputs,
            self.converter.clone(),
            self.opts.batch_rows,
        )))
    }
}
