//! ccache's HTTP remote storage (`remote_storage = http://host:port/ccache|layout=…`),
//! reference/clients.md §7.
//!
//! | layout    | path                            |
//! |-----------|---------------------------------|
//! | `subdirs` | `/ccache/<2 chars>/<rest>`      |
//! | `flat`    | `/ccache/<key>`                 |
//! | `bazel`   | `/ccache/ac/<64 hex>`           |
//!
//! The path after the mount is the entry's name, whatever the layout (ccache uses one layout
//! per configuration). Keys are 33 characters in ccache 4.7–4.12 and 40 hex from 4.13; both are
//! opaque here. GET/HEAD answer 200 or 404 (ccache takes any non-2xx as a miss), PUT stores
//! (last writer wins), DELETE removes.

use std::io;

use crate::http1::{Request, Responder};
use crate::store::Kind;

use super::backend::{Backend, Protocol};
use super::opaque_key;
use super::pipeline::{EntryMethods, Plain};
use super::router::FrontEndEnv;

/// Most path segments of an entry name (`ac/<hex>` and `<2>/<rest>` have two).
const SEGMENTS_MAX: usize = 2;

/// The entry name of a path after the mount: one or two checked segments.
fn entry_name(rest: &str) -> Result<&str, String> {
    let name = rest.strip_prefix('/').unwrap_or(rest);
    let segments: Vec<&str> = name.split('/').collect();
    if segments.len() > SEGMENTS_MAX {
        return Err(format!(
            "`{}` has more than {SEGMENTS_MAX} path segments; ccache paths are <key>, <2>/<rest> or ac/<hex>",
            opaque_key::truncate(name)
        ));
    }
    for segment in segments {
        opaque_key::check(segment)?;
    }
    Ok(name)
}

/// Serves one request under the ccache mount; `rest` is the path after the prefix.
pub async fn handle<B: Backend>(
    env: &FrontEndEnv<'_, B>,
    rest: &str,
    request: &mut Request<'_>,
    responder: &mut Responder<'_>,
) -> io::Result<()> {
    let name = match entry_name(rest) {
        Ok(name) => name,
        Err(message) => return responder.send_text(400, &message).await,
    };
    let ctx = env.context(env.namespace_or("ccache"), Protocol::Ccache);
    let transfer = env.transfer(&ctx, &Plain);
    let key = ctx.key(Kind::Blob, name.as_bytes());
    let methods = EntryMethods {
        name: "ccache storage",
        delete: true,
        if_absent: false,
    };
    transfer.serve_entry(key, methods, request, responder).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_names_an_entry() {
        assert_eq!(
            entry_name("/e5/2be5853t2t2a38ek9iso1op9hpr0k6k"),
            Ok("e5/2be5853t2t2a38ek9iso1op9hpr0k6k")
        );
        assert_eq!(
            entry_name("/e52be5853t2t2a38ek9iso1op9hpr0k6k"),
            Ok("e52be5853t2t2a38ek9iso1op9hpr0k6k")
        );
        let hex = "ab".repeat(32);
        assert_eq!(
            entry_name(&format!("/ac/{hex}")),
            Ok(format!("ac/{hex}").as_str())
        );
        assert!(entry_name("/a/b/c").is_err());
        assert!(entry_name("/../x").is_err());
        assert!(entry_name("/").is_err());
    }
}
