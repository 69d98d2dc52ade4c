//! What both Bazel front-ends know about `ActionResult`s: which CAS blobs an entry references,
//! whether the digests in it are well formed ([`validate_action_result`]), and the completeness
//! check a hit must pass ([`check_complete`]). The gRPC ActionCache service and the Bazel HTTP
//! front-end's `/ac/` (`bazel_http.rs`) both use this module, and nothing else of this
//! front-end's internals, so an ActionResult means the same over either protocol.
//!
//! Completeness check of a hit (clients.md §2 "BwoB", DESIGN.md "Durability"): the entry is
//! answered only if these CAS blobs of the same instance are all present:
//! 1. every output file's digest,
//! 2. every output directory's `tree_digest`, and every file digest inside that `Tree` (root
//!    and children; the Tree's own `Directory` messages are embedded in it, so there is
//!    nothing else to fetch),
//! 3. `stdout_digest` and `stderr_digest`.
//!
//! [`referenced_blobs`] lists (1) and (3) and the tree digests of (2), [`tree_file_blobs`] the
//! files of one `Tree`. The empty blob counts as present without a lookup. Any missing blob, or
//! a Tree that does not decode, makes the answer NOT_FOUND: the client runs the action again
//! instead of failing later with "lost inputs".

use prost::Message;

use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use crate::grpc::Status;
use crate::protocols::backend::{Backend, ObjectKey, RequestContext};
use crate::protocols::reapi_keys::{cas_key, DigestKey};
use crate::store::DigestFunction;

use super::digest::validate_digest;
use super::{content_digest, is_empty_blob, status_of, BATCH_DIGESTS_MAX};

/// A blob an ActionResult or Tree points at, and why (for error messages and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobReference<'a> {
    pub digest: &'a reapi::Digest,
    pub role: BlobRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobRole {
    OutputFile,
    /// The `Tree` message of an output directory (its files are the Tree's references).
    OutputDirectoryTree,
    Stdout,
    Stderr,
    /// A file inside an output directory's Tree.
    TreeFile,
}

/// Every CAS blob `result` references directly. Empty blobs are included: a client may still
/// ask for them (the service may answer them without a store lookup).
pub fn referenced_blobs(result: &reapi::ActionResult) -> Vec<BlobReference<'_>> {
    let files = result.output_files.iter().filter_map(|file| {
        file.digest.as_ref().map(|digest| BlobReference {
            digest,
            role: BlobRole::OutputFile,
        })
    });
    let trees = result.output_directories.iter().filter_map(|dir| {
        dir.tree_digest.as_ref().map(|digest| BlobReference {
            digest,
            role: BlobRole::OutputDirectoryTree,
        })
    });
    let stdout = result.stdout_digest.as_ref().map(|digest| BlobReference {
        digest,
        role: BlobRole::Stdout,
    });
    let stderr = result.stderr_digest.as_ref().map(|digest| BlobReference {
        digest,
        role: BlobRole::Stderr,
    });
    files.chain(trees).chain(stdout).chain(stderr).collect()
}

/// The file blobs of an output directory's `Tree` (root and children).
pub fn tree_file_blobs(tree: &reapi::Tree) -> Vec<BlobReference<'_>> {
    tree.root
        .iter()
        .chain(tree.children.iter())
        .flat_map(|directory| directory.files.iter())
        .filter_map(|file| {
            file.digest.as_ref().map(|digest| BlobReference {
                digest,
                role: BlobRole::TreeFile,
            })
        })
        .collect()
}

/// Checks every digest an UpdateActionResult carries: lowercase hex of the right length for
/// `function`, size not negative; an output file or directory without a digest is refused.
/// INVALID_ARGUMENT names the offending path.
pub fn validate_action_result(
    result: &reapi::ActionResult,
    function: DigestFunction,
) -> Result<(), Status> {
    let check = |what: &str, digest: Option<&reapi::Digest>| -> Result<(), Status> {
        let digest =
            digest.ok_or_else(|| Status::invalid_argument(format!("{what} has no digest")))?;
        validate_digest(function, &digest.hash, digest.size_bytes)
            .map(drop)
            .map_err(|error| Status::invalid_argument(format!("{what}: {error}")))
    };
    for file in &result.output_files {
        check(
            &format!("output file {:?}", file.path),
            file.digest.as_ref(),
        )?;
    }
    for directory in &result.output_directories {
        let what = format!("output directory {:?}", directory.path);
        check(&what, directory.tree_digest.as_ref())?;
    }
    if let Some(digest) = &result.stdout_digest {
        check("stdout_digest", Some(digest))?;
    }
    if let Some(digest) = &result.stderr_digest {
        check("stderr_digest", Some(digest))?;
    }
    Ok(())
}

/// NOT_FOUND unless every blob listed in the module docs is present; the status of the store
/// error when the store cannot answer.
pub async fn check_complete<B: Backend>(
    backend: &B,
    ctx: &RequestContext,
    function: DigestFunction,
    result: &reapi::ActionResult,
) -> Result<(), Status> {
    let direct: Vec<&reapi::Digest> = referenced_blobs(result).iter().map(|r| r.digest).collect();
    require_present(backend, ctx, function, &direct).await?;
    for directory in &result.output_directories {
        let Some(tree_digest) = &directory.tree_digest else {
            continue;
        };
        let (digest, size) = entry_digest(function, tree_digest)?;
        if is_empty_blob(&digest, size) {
            continue;
        }
        let tree = backend
            .lookup(ctx, &cas_key(ctx, &digest).key())
            .await
            .map_err(|e| status_of(&e))?
            .ok_or_else(|| incomplete("output directory tree", &tree_digest.hash))?;
        let tree = reapi::Tree::decode(tree.body()).map_err(|_| {
            Status::not_found(format!(
                "output directory {:?}: its tree blob is not a Tree",
                directory.path
            ))
        })?;
        let files: Vec<&reapi::Digest> = tree_file_blobs(&tree).iter().map(|r| r.digest).collect();
        require_present(backend, ctx, function, &files).await?;
    }
    Ok(())
}

async fn require_present<B: Backend>(
    backend: &B,
    ctx: &RequestContext,
    function: DigestFunction,
    digests: &[&reapi::Digest],
) -> Result<(), Status> {
    let mut ids: Vec<DigestKey> = Vec::with_capacity(digests.len());
    let mut asked: Vec<&reapi::Digest> = Vec::with_capacity(digests.len());
    for digest in digests {
        let (parsed, size) = entry_digest(function, digest)?;
        if !is_empty_blob(&parsed, size) {
            ids.push(cas_key(ctx, &parsed));
            asked.push(digest);
        }
    }
    for chunk in ids
        .chunks(BATCH_DIGESTS_MAX)
        .zip(asked.chunks(BATCH_DIGESTS_MAX))
    {
        let keys: Vec<ObjectKey<'_>> = chunk.0.iter().map(DigestKey::key).collect();
        let present = backend
            .contains(ctx, &keys)
            .await
            .map_err(|e| status_of(&e))?;
        if let Some(position) = present.iter().position(|p| !p) {
            return Err(incomplete("blob", &chunk.1[position].hash));
        }
    }
    Ok(())
}

/// A digest inside a stored entry; a malformed one makes the entry unusable (NOT_FOUND).
pub(super) fn entry_digest(
    function: DigestFunction,
    digest: &reapi::Digest,
) -> Result<(crate::store::ContentDigest, u64), Status> {
    content_digest(function, digest).map_err(|status| {
        Status::not_found(format!(
            "the action result references a malformed digest: {}",
            status.message
        ))
    })
}

fn incomplete(what: &str, hash: &str) -> Status {
    Status::not_found(format!(
        "action result is incomplete: referenced {what} {hash} is missing from the CAS"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char, size: i64) -> reapi::Digest {
        reapi::Digest {
            hash: fill.to_string().repeat(64),
            size_bytes: size,
        }
    }

    fn sample_result() -> reapi::ActionResult {
        reapi::ActionResult {
            output_files: vec![reapi::OutputFile {
                path: "bin/tool".into(),
                digest: Some(digest('1', 10)),
                ..Default::default()
            }],
            output_directories: vec![reapi::OutputDirectory {
                path: "gen".into(),
                tree_digest: Some(digest('2', 99)),
                ..Default::default()
            }],
            stdout_digest: Some(digest('3', 5)),
            stderr_digest: Some(digest('4', 0)),
            ..Default::default()
        }
    }

    #[test]
    fn every_reference_is_listed_with_its_role() {
        let result = sample_result();
        let roles: Vec<(char, BlobRole)> = referenced_blobs(&result)
            .iter()
            .map(|r| (r.digest.hash.chars().next().unwrap(), r.role))
            .collect();
        assert_eq!(
            roles,
            [
                ('1', BlobRole::OutputFile),
                ('2', BlobRole::OutputDirectoryTree),
                ('3', BlobRole::Stdout),
                ('4', BlobRole::Stderr),
            ]
        );
        assert!(referenced_blobs(&reapi::ActionResult::default()).is_empty());
    }

    #[test]
    fn tree_files_come_from_root_and_children() {
        let file = |fill| reapi::FileNode {
            name: "f".into(),
            digest: Some(digest(fill, 1)),
            ..Default::default()
        };
        let tree = reapi::Tree {
            root: Some(reapi::Directory {
                files: vec![file('a')],
                ..Default::default()
            }),
            children: vec![
                reapi::Directory {
                    files: vec![file('b'), file('c')],
                    ..Default::default()
                },
                reapi::Directory::default(),
            ],
        };
        let hashes: Vec<char> = tree_file_blobs(&tree)
            .iter()
            .map(|r| r.digest.hash.chars().next().unwrap())
            .collect();
        assert_eq!(hashes, ['a', 'b', 'c']);
    }

    #[test]
    fn malformed_digests_are_refused_with_the_path() {
        assert_eq!(
            validate_action_result(&sample_result(), DigestFunction::Sha256),
            Ok(())
        );
        let mut short = sample_result();
        short.output_files[0].digest = Some(reapi::Digest {
            hash: "abc".into(),
            size_bytes: 1,
        });
        assert_eq!(
            validate_action_result(&short, DigestFunction::Sha256).unwrap_err(),
            Status::invalid_argument(
                "output file \"bin/tool\": hash has 3 characters, a sha256 hash has 64"
            )
        );
        let mut missing = sample_result();
        missing.output_directories[0].tree_digest = None;
        assert_eq!(
            validate_action_result(&missing, DigestFunction::Blake3).unwrap_err(),
            Status::invalid_argument("output directory \"gen\" has no digest")
        );
        let mut negative = sample_result();
        negative.stdout_digest = Some(digest('5', -2));
        assert_eq!(
            validate_action_result(&negative, DigestFunction::Sha256).unwrap_err(),
            Status::invalid_argument("stdout_digest: size_bytes -2 is negative")
        );
    }
}
