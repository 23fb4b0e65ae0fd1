//! The external programs the tests drive (mosquitto, mosquitto_passwd, mosquitto_pub, openssl),
//! found on the machine. A missing one fails the test that needs it with how to install it: a
//! skipped test would hide that the proof it gives was never run.

use std::path::PathBuf;

/// `name` from the environment variable `NAME` (upper case, `-` as `_`: `MOSQUITTO_PASSWD` for
/// `mosquitto_passwd`) if set, else from `PATH`, `/usr/sbin`, `/usr/local/sbin` or `/sbin` (root's
/// tools are not on every user's `PATH`); panics naming the package to install otherwise.
pub fn find_binary(name: &str) -> PathBuf {
    let var = name.to_ascii_uppercase().replace('-', "_");
    if let Some(p) = std::env::var_os(&var) {
        return p.into();
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    let package = match name {
        "mosquitto_pub" | "mosquitto_sub" => "mosquitto-clients",
        "mosquitto_passwd" => "mosquitto",
        other => other,
    };
    panic!(
        "`{name}` not found (searched ${var}, PATH, /usr/sbin, /usr/local/sbin, /sbin): these \
         tests need the real program. Install it with `apt-get install -y {package}` \
         (scripts/test.sh does), or set {var}."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_the_path() {
        assert!(find_binary("sh").is_file());
    }

    #[test]
    #[should_panic(expected = "`ward-no-such-tool` not found")]
    fn a_missing_program_says_so() {
        find_binary("ward-no-such-tool");
    }
}
