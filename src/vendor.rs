//! The browser builds of pusher-js and laravel-echo the hub serves (`/vendor/…`, see `http::assets`) and the
//! snippets load, with their licence texts and Subresource Integrity hashes.
//!
//! The builds are byte for byte the files of the versions pinned in `tests/clients/package-lock.json`,
//! copied to `src/vendor/` by `scripts/vendor.sh`; `make test` checks the copies against the lock file. They
//! are compiled in, so a LAN with no Internet needs nothing else.

use std::sync::OnceLock;

use sha2::{Digest, Sha384};

/// A browser library the hub serves.
#[derive(Debug)]
pub struct Vendored {
    /// The npm package.
    pub package: &'static str,
    /// Its version, as pinned by the lock file.
    pub version: &'static str,
    /// The browser build's file name.
    pub file: &'static str,
    /// The build.
    pub(crate) body: &'static str,
    /// Its licence texts: (file name, text).
    pub(crate) licences: &'static [(&'static str, &'static str)],
    /// Its integrity value, computed once when first asked for.
    integrity: OnceLock<String>,
}

impl Vendored {
    /// Where the hub serves the build: `/vendor/{package}@{version}/{file}`.
    pub fn path(&self) -> String {
        format!("/vendor/{}@{}/{}", self.package, self.version, self.file)
    }

    /// The build's Subresource Integrity value: `sha384-` and the base64 of its SHA-384.
    pub fn integrity(&self) -> &str {
        self.integrity.get_or_init(|| integrity(self.body))
    }

    /// A `<script>` tag that loads the build from `origin` (`http://host:port`) with its integrity hash.
    pub fn script_tag(&self, origin: &str) -> String {
        format!(
            "<script src=\"{origin}{}\" integrity=\"{}\" crossorigin=\"anonymous\"></script>",
            self.path(),
            self.integrity()
        )
    }
}

/// pusher-js (`window.Pusher`) and laravel-echo's IIFE build (`window.Echo`, whose class is `Echo.default`).
pub static VENDORED: [Vendored; 2] = [
    Vendored {
        package: "pusher-js",
        version: "8.6.0",
        file: "pusher.min.js",
        body: include_str!("vendor/pusher.min.js"),
        licences: &[
            ("LICENCE.txt", include_str!("vendor/pusher-js.LICENCE.txt")),
            // The minified build's banner points to this file, next to it.
            ("pusher.min.js.LICENSE.txt", include_str!("vendor/pusher.min.js.LICENSE.txt")),
        ],
        integrity: OnceLock::new(),
    },
    Vendored {
        package: "laravel-echo",
        version: "2.5.0",
        file: "echo.iife.js",
        body: include_str!("vendor/echo.iife.js"),
        licences: &[("LICENSE.md", include_str!("vendor/laravel-echo.LICENSE.md"))],
        integrity: OnceLock::new(),
    },
];

/// The Subresource Integrity value of `body` (SHA-384, the strongest hash every browser checks).
pub fn integrity(body: &str) -> String {
    format!("sha384-{}", crate::cert::base64(&Sha384::digest(body.as_bytes())))
}

/// pusher-js, the build every page of the hub uses.
pub fn pusher_js() -> &'static Vendored {
    &VENDORED[0]
}

/// laravel-echo.
pub fn laravel_echo() -> &'static Vendored {
    &VENDORED[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_is_the_base64_of_sha384() {
        // The SRI specification's own example digest input, checked against `openssl dgst -sha384 -binary | base64`.
        assert_eq!(
            integrity("alert('Hello, world.');"),
            "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"
        );
        for lib in &VENDORED {
            assert!(lib.integrity().starts_with("sha384-") && lib.integrity().len() == 7 + 64, "{}", lib.integrity());
        }
        assert_ne!(pusher_js().integrity(), laravel_echo().integrity());
    }

    #[test]
    fn the_readme_and_the_docs_give_the_served_hashes() {
        // The snippets people copy from the README must load: the hashes there are the builds'.
        let readme = include_str!("../README.md");
        let docs = include_str!("../docs/clients.md");
        for lib in &VENDORED {
            let tag = lib.script_tag("http://HOST:6001");
            assert!(readme.contains(&tag), "README.md should have {tag}");
            assert!(docs.contains(lib.integrity()), "docs/clients.md should give {}", lib.integrity());
        }
    }
}
