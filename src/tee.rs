//! One source read, many destinations: the copy engine of a fan-out sync.
//!
//! The source object is read once and hashed once; each chunk goes to every destination. A
//! one-PUT object is gathered and checked as in [`crate::transfer`], then the same buffer is
//! PUT to each destination at once. A larger one is a multipart upload per destination, fed the
//! same parts: each part waits for room in every destination's upload, so the slowest one sets
//! the pace and memory stays one object's reservation, whatever the number of destinations.
//! A destination that fails drops out (its upload aborted) while the others go on; completion
//! waits for the hash, as for one destination. No retry here: the caller copies a destination
//! that failed on its own, with the single-destination engine and its retries.

use std::sync::Arc;

use object_store::{
    Attributes, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, WriteMultipart,
};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::hash::Hashed;
use crate::store::Dataset;
use crate::transfer::{check, read_whole, sha_attributes, wait_for_room, CopyJob, Reading, TransferOptions};

/// One destination of a fanned-out copy.
pub(crate) struct Target<'a> {
    pub(crate) dst: &'a Dataset,
    /// As [`CopyJob::unless_sha256`], for this destination.
    pub(crate) unless_sha256: Option<String>,
}

/// Per destination: the PUT's answer (`None`: the destination held the bytes already), or why
/// it failed.
pub(crate) type Landings = Vec<Result<Option<PutResult>>>;

/// Copy `job`'s source object to every target, reading it once. `Err` is the source's failure
/// (a read, a size or hash that does not match: no target got the object); otherwise each
/// target's own result.
pub(crate) async fn copy_to_many(
    src: &Dataset,
    targets: &[Target<'_>],
    job: &CopyJob,
    opts: &TransferOptions,
    progress: &Events,
) -> Result<(Hashed, Landings)> {
    let opts = &opts.fitted()?;
    let buffered = opts.held_for(job.size);
    let _reserved = opts
        .cancel
        .run_until_cancelled(opts.memory.reserve(buffered))
        .await
        .ok_or(Error::Interrupted)?;
    let stores = futures::future::join_all(targets.iter().map(|t| crate::verify::put_store(t.dst))).await;
    let stores: Vec<Result<Arc<dyn ObjectStore>>> = stores.into_iter().map(|r| r.map(|(s, _)| s)).collect();
    let mut moved = 0u64;
    let r = async {
        let mut read = Reading::open(src, job, opts, &mut moved, progress).await?;
        if job.size <= opts.single_put_limit() as u64 {
            let (hashed, body) = read_whole(job, opts, &mut read, buffered).await?;
            let landings = put_each(targets, stores, job, &hashed, body).await;
            Ok((hashed, landings))
        } else {
            upload_each(targets, stores, job, opts, &mut read).await
        }
    }
    .await;
    if r.is_err() {
        progress.sub_bytes(moved);
    }
    r
}

/// The checked body, PUT to every target at once.
async fn put_each(
    targets: &[Target<'_>],
    stores: Vec<Result<Arc<dyn ObjectStore>>>,
    job: &CopyJob,
    hashed: &Hashed,
    body: PutPayload,
) -> Landings {
    let path = job.path.as_str();
    let puts = targets.iter().zip(stores).map(|(t, store)| {
        let body = body.clone();
        async move {
            if t.unless_sha256.as_ref() == Some(&hashed.sha256) {
                return Ok(None);
            }
            let put_opts = PutOptions {
                mode: PutMode::Overwrite,
                attributes: sha_attributes(t.dst, &hashed.sha256),
                ..Default::default()
            };
            store?
                .put_opts(&t.dst.key(path), body, put_opts)
                .await
                .map(Some)
                .map_err(|e| Error::store(path, "write", e))
        }
    });
    futures::future::join_all(puts).await
}

/// A multipart upload per target, fed the same parts; completed only once the hash checks.
async fn upload_each(
    targets: &[Target<'_>],
    stores: Vec<Result<Arc<dyn ObjectStore>>>,
    job: &CopyJob,
    opts: &TransferOptions,
    read: &mut Reading<'_>,
) -> Result<(Hashed, Landings)> {
    let path = job.path.as_str();
    let starts = targets.iter().zip(stores).map(|(t, store)| async move {
        let attributes = match &job.expected_sha256 {
            Some(sha) => sha_attributes(t.dst, sha),
            None => Attributes::new(),
        };
        let mp = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = store?
            .put_multipart_opts(&t.dst.key(path), mp)
            .await
            .map_err(|e| Error::store(path, "start multipart upload", e))?;
        Ok(WriteMultipart::new_with_chunk_size(upload, opts.part_size))
    });
    let mut uploads: Vec<Result<WriteMultipart>> = futures::future::join_all(starts).await;
    if let Err(e) = feed(&mut uploads, job, opts, read).await {
        abort_all(uploads).await;
        return Err(e);
    }
    let hashed = read.finish_hash();
    if let Err(e) = check(job, &hashed) {
        abort_all(uploads).await;
        return Err(e);
    }
    let landings = futures::future::join_all(uploads.into_iter().map(|u| complete(u, path, opts))).await;
    Ok((hashed, landings))
}

/// Every chunk of the source, a part at a time, into every upload still going. An upload that
/// fails is left as its error; only the source's failure (or a cancel) stops the feed.
async fn feed(
    uploads: &mut [Result<WriteMultipart>],
    job: &CopyJob,
    opts: &TransferOptions,
    read: &mut Reading<'_>,
) -> Result<()> {
    let path = job.path.as_str();
    while let Some(mut chunk) = read.next(path, &opts.cancel).await? {
        while !chunk.is_empty() {
            let piece = chunk.split_to(chunk.len().min(opts.part_size));
            for slot in uploads.iter_mut() {
                let Ok(writer) = slot else { continue };
                match wait_for_room(writer, opts, path).await {
                    Ok(()) => writer.put(piece.clone()),
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(e) => {
                        if let Ok(w) = std::mem::replace(slot, Err(e)) {
                            let _ = w.abort().await;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Wait for one upload's parts and complete it; an upload that fails is aborted.
async fn complete(
    upload: Result<WriteMultipart>,
    path: &str,
    opts: &TransferOptions,
) -> Result<Option<PutResult>> {
    let mut writer = upload?;
    let settled = tokio::select! {
        r = writer.wait_for_capacity(0) => r.map_err(|e| Error::store(path, "upload part", e)),
        _ = opts.cancel.cancelled() => Err(Error::Interrupted),
    };
    if let Err(e) = settled {
        let _ = writer.abort().await;
        return Err(e);
    }
    writer
        .finish()
        .await
        .map(Some)
        .map_err(|e| Error::store(path, "complete multipart upload", e))
}

async fn abort_all(uploads: Vec<Result<WriteMultipart>>) {
    let aborts = uploads.into_iter().flatten().map(|w| async move {
        let _ = w.abort().await;
    });
    futures::future::join_all(aborts).await;
}
