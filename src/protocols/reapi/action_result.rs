//! Rules about `ActionResult`s that need no store: which CAS blobs an entry references (for the
//! completeness check a GetActionResult hit needs, clients.md §2 "BwoB") and whether the digests
//! in an UpdateActionResult are well formed.
//!
//! Completeness in the service: an ActionResult is a hit only if every blob of
//! [`referenced_blobs`] is present, and, for each output directory, the blobs of
//! [`tree_file_blobs`] of its `Tree` are present too. Otherwise NOT_FOUND, so Bazel rebuilds
//! instead of failing later with "lost inputs".

use crate::grpc::pb::build::bazel::remote::execution::v2 as reapi;
use crate::grpc::Status;

use super::resource_name::{validate_digest, DigestFunction};

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
