//! A disk that can be filled up, for the full-disk test: a 128 KiB tmpfs mounted on a new folder.
//!
//! Mounting needs root. A contributor who is not root gets it anyway: the test runs itself again in a new
//! user and mount namespace (`unshare --user --map-root-user --mount`), where it is root of its own
//! mounts and nobody else sees them. Only where the system allows neither (no root, no unprivileged user
//! namespaces) is the test not run, and it says so and why.

use std::path::PathBuf;
use std::process::Command;

/// Set in the environment of the test run again inside the namespace.
const INSIDE: &str = "POUSSR_TEST_IN_MOUNT_NAMESPACE";

/// Where the test body should run.
pub(super) enum Place {
    /// Here: this process may mount.
    Here(SmallDisk),
    /// It ran in a namespace of its own, and passed there.
    RanInNamespace,
    /// It cannot run on this system, for this reason.
    Unavailable(String),
}

/// A mounted tmpfs, unmounted and removed when dropped.
pub(super) struct SmallDisk(pub(super) PathBuf);

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Mounts the disk here, or runs the test `name` (its full path in the test binary) again in a user and
/// mount namespace and reports how that went. A failure of the test in the namespace fails the caller.
pub(super) fn place(name: &str) -> Place {
    if std::env::var_os(INSIDE).is_some() || is_root() {
        return Place::Here(SmallDisk::mount());
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Place::Unavailable(format!("the test binary cannot be found again: {e}")),
    };
    let run = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) => return Place::Unavailable(format!("`unshare` (util-linux) cannot be run: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The test harness exits with 101 when a test fails; `unshare` itself with 1 when it cannot make the
    // namespace (unprivileged user namespaces turned off, say).
    match out.status.code() {
        Some(0) if stdout.contains("1 passed") => Place::RanInNamespace,
        Some(101) => panic!("the test failed in its namespace:\n{stdout}\n{stderr}"),
        _ => {
            Place::Unavailable(format!("no user and mount namespace could be made ({}): {}", out.status, stderr.trim()))
        }
    }
}

impl SmallDisk {
    fn mount() -> Self {
        let dir = std::env::temp_dir().join(format!("poussr-full-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=128k", "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount runs");
        assert!(out.status.success(), "cannot mount a small tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(dir)
    }

    /// Writes a file until the disk is full.
    pub(super) fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
