//! Namespace globs: `*` matches any run of characters, `/` included, so `bazel*` covers
//! `bazel` and every `bazel/INSTANCE`; every other character matches itself.

/// Whether `glob` matches the whole of `name`.
pub fn matches(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.as_bytes(), name.as_bytes());
    // Iterative wildcard matching with one backtrack point: linear in practice, no recursion,
    // so a hostile glob in a token cannot blow the stack or run exponentially.
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if g < glob.len() && glob[g] == b'*' {
            star = Some((g, n));
            g += 1;
        } else if g < glob.len() && glob[g] == name[n] {
            g += 1;
            n += 1;
        } else if let Some((star_g, star_n)) = star {
            g = star_g + 1;
            n = star_n + 1;
            star = Some((star_g, star_n + 1));
        } else {
            return false;
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// Whether any of `globs` matches `name`.
pub fn any_matches(globs: &[String], name: &str) -> bool {
    globs.iter().any(|glob| matches(glob, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_crosses_slashes_and_literals_match_exactly() {
        assert!(matches("bazel*", "bazel"));
        assert!(matches("bazel*", "bazel/pr-42"));
        assert!(matches("bazel/pr-*", "bazel/pr-42"));
        assert!(!matches("bazel/pr-*", "bazel/main"));
        assert!(matches("*", "s3/bucket"));
        assert!(matches("turbo/*/x", "turbo/a/b/x"));
        assert!(!matches("gradle", "gradle-ci"));
        assert!(matches("gradle", "gradle"));
        assert!(!matches("", "x"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
    }

    /// A naive reference: regex-free recursive matcher.
    fn reference(glob: &[u8], name: &[u8]) -> bool {
        match glob.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some((c, rest)) => name.first() == Some(c) && reference(rest, &name[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_a_naive_matcher(glob in "[ab*/]{0,8}", name in "[ab/]{0,10}") {
            proptest::prop_assert_eq!(matches(&glob, &name), reference(glob.as_bytes(), name.as_bytes()));
        }
    }
}
