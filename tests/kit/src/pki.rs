//! A throwaway PKI made with the `openssl` command: a CA, a server certificate for `localhost`
//! and `127.0.0.1`, and client certificates, EC P-256, valid for two days. Each test makes its
//! own in its temporary directory; nothing is committed, so no key ever outlives its test.

use std::path::Path;
use std::process::Command;

use crate::tools::find_binary;

/// Runs `openssl args` in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(find_binary("openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `-newkey` arguments of every key: EC P-256, unencrypted.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Writes into `dir` (created if missing) `ca.pem`/`ca.key`, `server.pem`/`server.key`
/// (`CN=localhost`, SAN `DNS:localhost`, `IP:127.0.0.1`, serverAuth) and, for each
/// `(name, common_name)` of `clients`, `<name>.pem`/`<name>.key` with that subject common name
/// (clientAuth) — the identity a broker reads from a client certificate.
pub fn make_pki(dir: &Path, clients: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    write(
        &dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ward test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    );
    let mut args = vec!["req", "-x509", "-config", "ca.cnf", "-extensions", "v3_ca"];
    args.extend(EC_KEY);
    args.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    openssl(dir, &args);
    let server = (
        "server",
        "localhost",
        "serverAuth",
        "subjectAltName = DNS:localhost,IP:127.0.0.1\n",
    );
    let clients = clients
        .iter()
        .map(|&(name, cn)| (name, cn, "clientAuth", ""));
    for (name, cn, eku, san) in std::iter::once(server).chain(clients) {
        issue(dir, name, cn, eku, san);
    }
}

/// `<name>.key` and `<name>.pem` signed by the CA in `dir`.
fn issue(dir: &Path, name: &str, cn: &str, eku: &str, san: &str) {
    let (cnf, key, csr, pem, ext) = (
        format!("{name}.cnf"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    write(
        &dir.join(&cnf),
        &format!("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {cn}\n"),
    );
    write(
        &dir.join(&ext),
        &format!(
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = {eku}\n{san}"
        ),
    );
    let mut args = vec!["req", "-new", "-config", &cnf];
    args.extend(EC_KEY);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl_out(dir: &Path, args: &[&str]) -> String {
        let out = Command::new(find_binary("openssl"))
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn certificates_chain_to_the_ca_with_their_names() {
        let tmp = crate::temp_dir();
        let dir = tmp.path().join("pki");
        make_pki(&dir, &[("client", "agent-tls"), ("reader", "noc-reader")]);
        for name in ["server", "client", "reader"] {
            assert!(dir.join(format!("{name}.key")).is_file());
            let pem = format!("{name}.pem");
            assert!(openssl_out(&dir, &["verify", "-CAfile", "ca.pem", &pem]).contains("OK"));
        }
        let subject = |pem: &str| openssl_out(&dir, &["x509", "-in", pem, "-noout", "-subject"]);
        assert!(subject("client.pem").contains("agent-tls"));
        assert!(subject("reader.pem").contains("noc-reader"));
        let server = openssl_out(
            &dir,
            &[
                "x509",
                "-in",
                "server.pem",
                "-noout",
                "-ext",
                "subjectAltName",
            ],
        );
        assert!(
            server.contains("DNS:localhost") && server.contains("127.0.0.1"),
            "{server}"
        );
    }
}
