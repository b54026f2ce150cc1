//! Parquet straight from S3-compatible storage (feature `object-store`), against a local
//! server: `scripts/test-object-store.sh` starts `moto_server` on 127.0.0.1 with
//! authentication, creates the bucket `streamnmf-test`, a user allowed everything and one
//! allowed nothing, and exports the endpoint and credentials (`AWS_*`,
//! `STREAMNMF_TEST_DENIED_*`) before running this file. Without them it fails: it never passes untested.
#![cfg(feature = "object-store")]

mod common;

use std::sync::Arc;

use common::{dense_batches, fails, ok, planted, run, write_parquet};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const BUCKET: &str = "streamnmf-test";

fn store() -> Arc<dyn ObjectStore> {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "run through scripts/test-object-store.sh, which starts the local S3 server"
    );
    Arc::new(
        AmazonS3Builder::from_env()
            .with_bucket_name(BUCKET)
            .build()
            .expect("S3 client"),
    )
}

fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put(&ObjectPath::from(key), PutPayload::from(bytes)))
        .expect("upload");
}

/// Fitting from an S3 prefix gives bitwise the model of the same files read locally; a
/// missing key, a permission error, a truncated object and a missing bucket fail with
/// their URL.
#[test]
fn s3_inputs_fit_like_local_files_and_fail_with_their_url() {
    let s3 = store();
    let dir = tempfile::tempdir().unwrap();
    let d = planted();
    let batches = dense_batches(&d.x, 100, false);
    let (a, b) = batches.split_at(batches.len() / 2);
    let pa = dir.path().join("a.parquet");
    let pb = dir.path().join("b.parquet");
    write_parquet(&pa, a, 150);
    write_parquet(&pb, b, 150);
    put(&s3, "run1/a.parquet", std::fs::read(&pa).unwrap());
    put(&s3, "run1/b.parquet", std::fs::read(&pb).unwrap());
    put(&s3, "run1/notes.txt", b"not parquet, skipped".to_vec());

    let fit = |inputs: &[&str], out: &str| {
        let mut args = vec!["fit"];
        args.extend_from_slice(inputs);
        args.extend_from_slice(&["-k", "5", "--epochs", "2", "--batch-size", "200"]);
        args.extend_from_slice(&["--staleness", "0", "-q", "--out", out]);
        run(&args, dir.path())
    };
    ok(&fit(&["a.parquet", "b.parquet"], "local.snmf"));
    ok(&fit(&[&format!("s3://{BUCKET}/run1/")], "s3.snmf"));
    let local = std::fs::read(dir.path().join("local.snmf")).unwrap();
    let remote = std::fs::read(dir.path().join("s3.snmf")).unwrap();
    let (ml, _) = streamnmf::persist::decode::<f32>(&local).unwrap();
    let (mr, _) = streamnmf::persist::decode::<f32>(&remote).unwrap();
    assert_eq!(
        ml.components().unwrap(),
        mr.components().unwrap(),
        "the same rows in the same order give the same bits"
    );

    // A single object by its key.
    ok(&fit(
        &[&format!("s3://{BUCKET}/run1/a.parquet")],
        "one.snmf",
    ));

    // A missing key: the URL and "not found", exit 1, nothing written.
    let missing = format!("s3://{BUCKET}/run1/missing.parquet");
    let err = fails(&fit(&[&missing], "missing.snmf"));
    assert!(
        err.contains(&missing) && err.to_lowercase().contains("not found"),
        "{err}"
    );
    assert!(!dir.path().join("missing.snmf").exists());

    // A truncated object: a decode error naming it.
    let bytes = std::fs::read(&pa).unwrap();
    put(&s3, "cut/a.parquet", bytes[..bytes.len() / 2].to_vec());
    let cut = format!("s3://{BUCKET}/cut/a.parquet");
    let err = fails(&fit(&[&cut], "cut.snmf"));
    assert!(err.contains(&cut), "{err}");
    assert!(!dir.path().join("cut.snmf").exists());

    // Credentials without permission: the URL, "privileges" and the server's 403.
    let denied = std::process::Command::new(env!("CARGO_BIN_EXE_streamnmf"))
        .args([
            "fit",
            &format!("s3://{BUCKET}/run1/a.parquet"),
            "-k",
            "5",
            "-q",
        ])
        .args(["--out", "denied.snmf"])
        .current_dir(dir.path())
        .env(
            "AWS_ACCESS_KEY_ID",
            std::env::var("STREAMNMF_TEST_DENIED_KEY_ID").unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            std::env::var("STREAMNMF_TEST_DENIED_SECRET").unwrap(),
        )
        .output()
        .unwrap();
    let err = fails(&denied);
    assert!(
        err.contains("s3://streamnmf-test/run1/a.parquet")
            && err.contains("privileges")
            && err.contains("403"),
        "{err}"
    );
    assert!(!dir.path().join("denied.snmf").exists());

    // A bucket that does not exist.
    let err = fails(&fit(&["s3://no-such-bucket-here/x.parquet"], "nb.snmf"));
    assert!(err.contains("s3://no-such-bucket-here/x.parquet"), "{err}");
}
