//! Store errors that say which store they come from. [`Labelled`] wraps a dataset's store so
//! that every error it returns carries the dataset's label ("source s3://b/p") inside
//! object_store's error, as the innermost wrapper of its source; [`crate::Error::store`] finds
//! it there. The error's variant, message and source chain are otherwise unchanged, so retry
//! classification and `NotFound` / `Precondition` matches see the same error as before.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

/// The label of the store an error came from, wrapped around the error's own source: it
/// displays as that source and chains to it.
#[derive(Debug)]
pub(crate) struct StoreLabel {
    pub(crate) label: Arc<str>,
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl fmt::Display for StoreLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for StoreLabel {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// The label of the store `e` came from, if a [`Labelled`] store returned it.
pub(crate) fn label_of(e: &object_store::Error) -> Option<Arc<str>> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(l) = c.downcast_ref::<StoreLabel>() {
            return Some(l.label.clone());
        }
        cause = c.source();
    }
    None
}

/// `e` with `label` around its source (variants without a source are returned as they are).
fn tag(label: &Arc<str>, e: object_store::Error) -> object_store::Error {
    use object_store::Error as E;
    let wrap = |inner| {
        Box::new(StoreLabel {
            label: label.clone(),
            inner,
        }) as Box<dyn std::error::Error + Send + Sync>
    };
    match e {
        E::Generic { store, source } => E::Generic {
            store,
            source: wrap(source),
        },
        E::NotFound { path, source } => E::NotFound {
            path,
            source: wrap(source),
        },
        E::AlreadyExists { path, source } => E::AlreadyExists {
            path,
            source: wrap(source),
        },
        E::Precondition { path, source } => E::Precondition {
            path,
            source: wrap(source),
        },
        E::NotModified { path, source } => E::NotModified {
            path,
            source: wrap(source),
        },
        E::PermissionDenied { path, source } => E::PermissionDenied {
            path,
            source: wrap(source),
        },
        E::Unauthenticated { path, source } => E::Unauthenticated {
            path,
            source: wrap(source),
        },
        E::NotSupported { source } => E::NotSupported { source: wrap(source) },
        other => other,
    }
}

/// A store whose errors carry a label naming it (see the module doc).
#[derive(Debug)]
pub(crate) struct Labelled {
    inner: Arc<dyn ObjectStore>,
    label: Arc<str>,
}

impl Labelled {
    pub(crate) fn wrap(inner: Arc<dyn ObjectStore>, label: &str) -> Arc<dyn ObjectStore> {
        Arc::new(Labelled {
            inner,
            label: label.into(),
        })
    }

    fn tag<T>(&self, r: object_store::Result<T>) -> object_store::Result<T> {
        r.map_err(|e| tag(&self.label, e))
    }

    fn tag_stream<T: Send + 'static>(
        &self,
        s: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let label = self.label.clone();
        s.map_err(move |e| tag(&label, e)).boxed()
    }
}

impl fmt::Display for Labelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for Labelled {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.tag(self.inner.put_opts(location, payload, opts).await)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.tag(self.inner.put_multipart_opts(location, opts).await)?;
        Ok(Box::new(LabelledUpload {
            inner: upload,
            label: self.label.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let mut r = self.tag(self.inner.get_opts(location, options).await)?;
        if let GetResultPayload::Stream(s) = r.payload {
            r.payload = GetResultPayload::Stream(self.tag_stream(s));
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.tag(self.inner.get_ranges(location, ranges).await)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.tag_stream(self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.tag_stream(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.tag_stream(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.tag(self.inner.list_with_delimiter(prefix).await)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.tag(self.inner.copy_opts(from, to, options).await)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.tag(self.inner.rename_opts(from, to, options).await)
    }
}

/// A multipart upload of a [`Labelled`] store.
#[derive(Debug)]
struct LabelledUpload {
    inner: Box<dyn MultipartUpload>,
    label: Arc<str>,
}

#[async_trait]
impl MultipartUpload for LabelledUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let label = self.label.clone();
        let part = self.inner.put_part(data);
        Box::pin(async move { part.await.map_err(|e| tag(&label, e)) })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.inner.complete().await;
        r.map_err(|e| tag(&self.label, e))
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let r = self.inner.abort().await;
        r.map_err(|e| tag(&self.label, e))
    }
}
