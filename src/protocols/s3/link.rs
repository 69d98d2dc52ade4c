//! The `Send` bridge from s3s handlers to the executor's `!Send` [`Backend`].
//!
//! s3s requires `Send` handler futures; the backend lives on this executor. Each S3 request
//! gets a [`StoreLink`] (in the request's extensions) whose commands [`serve`] runs against the
//! backend, in the same task that drives the s3s call. Commands name their namespace
//! ([`objects`] or [`parts`] of a bucket). What comes back (`ReadHandle`,
//! `Reservation`) is `Send`, so a handler writes or reads object bytes itself.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::protocols::backend::{
    Backend, Identity, Namespace, ObjectKey, Protocol, Put, RequestContext,
};
use crate::store::{Kind, Meta, ReadHandle, Reservation, Reserved, StoreError};

use super::keys::Credentials;

/// Commands in flight per S3 request (a handler waits for each answer before the next).
pub const LINK_QUEUE_DEPTH: usize = 4;

/// The namespace of a bucket's objects.
pub fn objects(bucket: &str) -> String {
    format!("s3/{bucket}")
}

/// The namespace of a bucket's uploaded multipart parts (never listed, never served as
/// objects).
pub fn parts(bucket: &str) -> String {
    format!("s3-parts/{bucket}")
}

/// One store operation, asked by a handler.
pub enum Command {
    Lookup {
        bucket: String,
        key: String,
        reply: oneshot::Sender<Result<Option<ReadHandle>, StoreError>>,
    },
    Reserve {
        bucket: String,
        key: String,
        body_len: u64,
        meta: Meta,
        reply: oneshot::Sender<Result<Reservation, StoreError>>,
    },
    Commit {
        bucket: String,
        reservation: Reservation,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Delete {
        bucket: String,
        key: String,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// A handler's end: `Clone + Send + Sync`.
#[derive(Clone)]
pub struct StoreLink {
    tx: mpsc::Sender<(Identity, Command)>,
    /// Who the caller is, carried into every `RequestContext`.
    identity: Identity,
    credentials: Arc<dyn Credentials>,
}

fn gone() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "the request's store link closed",
    )
}

impl StoreLink {
    /// A link and the receiving end [`serve`] consumes.
    pub fn new(
        credentials: Arc<dyn Credentials>,
    ) -> (StoreLink, mpsc::Receiver<(Identity, Command)>) {
        let (tx, rx) = mpsc::channel(LINK_QUEUE_DEPTH);
        let link = StoreLink {
            tx,
            identity: Identity::default(),
            credentials,
        };
        (link, rx)
    }

    /// The same link, acting for `caller` (its access key; `None`: unsigned).
    pub fn for_caller(&self, caller: Option<&str>) -> StoreLink {
        StoreLink {
            tx: self.tx.clone(),
            identity: self.credentials.identity(caller),
            credentials: self.credentials.clone(),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> S3Result<T> {
        let (reply, answer) = oneshot::channel();
        let mut tx = self.tx.clone();
        tx.send((self.identity.clone(), make(reply)))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    pub async fn lookup(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<Result<Option<ReadHandle>, StoreError>> {
        self.ask(|reply| Command::Lookup {
            bucket: bucket.into(),
            key: key.into(),
            reply,
        })
        .await
    }

    pub async fn reserve(
        &self,
        bucket: &str,
        key: &str,
        body_len: u64,
        meta: Meta,
    ) -> S3Result<Result<Reservation, StoreError>> {
        self.ask(|reply| Command::Reserve {
            bucket: bucket.into(),
            key: key.into(),
            body_len,
            meta,
            reply,
        })
        .await
    }

    pub async fn commit(
        &self,
        bucket: &str,
        reservation: Reservation,
    ) -> S3Result<Result<(), StoreError>> {
        self.ask(|reply| Command::Commit {
            bucket: bucket.into(),
            reservation,
            reply,
        })
        .await
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> S3Result<Result<bool, StoreError>> {
        self.ask(|reply| Command::Delete {
            bucket: bucket.into(),
            key: key.into(),
            reply,
        })
        .await
    }
}

/// The context of a store operation: s3s has verified the signature; the authorization layer
/// checks the identity's scopes (and a token's validity) on `space`; `remote` is the peer.
fn context(space: &str, identity: Identity, remote: Option<SocketAddr>) -> RequestContext {
    RequestContext::new(Namespace::new(space.to_string()), Protocol::S3)
        .with_identity(identity)
        .with_remote(remote)
}

/// Runs every command sent on `rx` against `backend` until every link is dropped; the commands
/// come from one request of a connection from `remote`.
pub async fn serve<B: Backend>(
    backend: &B,
    mut rx: mpsc::Receiver<(Identity, Command)>,
    remote: Option<SocketAddr>,
) {
    while let Some((caller, command)) = rx.next().await {
        match command {
            Command::Lookup { bucket, key, reply } => {
                let ctx = context(&bucket, caller.clone(), remote);
                let key = ctx.key(Kind::Blob, key.as_bytes());
                let _ = reply.send(backend.lookup(&ctx, &key).await);
            }
            Command::Reserve {
                bucket,
                key,
                body_len,
                meta,
                reply,
            } => {
                let ctx = context(&bucket, caller.clone(), remote);
                let put = Put {
                    key: ctx.key(Kind::Blob, key.as_bytes()),
                    body_len,
                    meta,
                    expect: None,
                    if_absent: false,
                };
                let answer = match backend.reserve(&ctx, &put).await {
                    Ok(Reserved::Reservation(reservation)) => Ok(reservation),
                    // Only CAS and if-absent puts find an existing entry kept.
                    Ok(Reserved::Exists) => Err(StoreError::Exists),
                    Err(error) => Err(error),
                };
                let _ = reply.send(answer);
            }
            Command::Commit {
                bucket,
                reservation,
                reply,
            } => {
                let ctx = context(&bucket, caller.clone(), remote);
                let _ = reply.send(backend.commit(&ctx, reservation).await);
            }
            Command::Delete { bucket, key, reply } => {
                let ctx = context(&bucket, caller.clone(), remote);
                let key: ObjectKey<'_> = ctx.key(Kind::Blob, key.as_bytes());
                let _ = reply.send(backend.delete(&ctx, &key).await);
            }
        }
    }
}
