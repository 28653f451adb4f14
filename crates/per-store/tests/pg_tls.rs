//! TLS to Postgres as libpq does it (`per_store::PgConnector`), against a real PostgreSQL 15 that
//! accepts TLS only: a private cluster started by the test (`initdb` + `pg_ctl` on a free port,
//! `ssl=on`, `hostssl`-only `pg_hba.conf`) with a CA and a server certificate for `localhost` made
//! here with `rcgen`. The shared test server is not touched.
//!
//! Needs PostgreSQL 15's server binaries (`PER_TEST_PG_BIN`, default `/usr/lib/postgresql/15/bin`);
//! run as root, the cluster is run as the `postgres` user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_store::{PgConnectError, PgConnector};
use per_testkit::free_port;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::process::Command;

struct TlsPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

fn pg_bin(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("PER_TEST_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
    )
    .join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a server binary, as `postgres` when we are root (initdb refuses root).
fn run_pg(args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c.arg(args[0]);
        c.args(&args[1..]);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    let out = command.output().expect("run a PostgreSQL binary");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .output()
            .expect("chown");
        assert!(out.status.success());
    }
}

/// A CA (self-signed) and its issuer, for signing server certificates.
fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

impl TlsPostgres {
    /// Starts a TLS-only cluster whose certificate is for `localhost`, signed by a fresh CA
    /// written to `ca.pem`; a second, unrelated CA is written to `wrong-ca.pem`.
    fn start() -> TlsPostgres {
        let dir = tempfile::Builder::new()
            .prefix("per-pgtls-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = dir.path();
        let ca = make_ca("per test CA");
        let wrong = make_ca("some other CA");
        let server_key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = params.signed_by(&server_key, &ca).expect("server cert");
        std::fs::write(root.join("ca.pem"), ca.pem()).expect("write");
        std::fs::write(root.join("wrong-ca.pem"), wrong.pem()).expect("write");
        std::fs::write(root.join("server.crt"), server.pem()).expect("write");
        std::fs::write(root.join("server.key"), server_key.serialize_pem()).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(
            root.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        chown_postgres(root);
        let data = root.join("data");
        let data_s = data.to_str().expect("utf-8 path");
        run_pg(&[
            pg_bin("initdb").to_str().expect("path"),
            "-D",
            data_s,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let port = free_port();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            root.display(),
            root.join("server.crt").display(),
            root.join("server.key").display()
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("read");
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).expect("write");
        // TCP only over TLS: a plain connection finds no pg_hba.conf entry.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("write");
        chown_postgres(root);
        run_pg(&[
            pg_bin("pg_ctl").to_str().expect("path"),
            "-D",
            data_s,
            "-l",
            root.join("server.log").to_str().expect("path"),
            "-w",
            "-t",
            "30",
            "start",
        ]);
        TlsPostgres { dir, port }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_bin("pg_ctl"));
            c
        } else {
            Command::new(pg_bin("pg_ctl"))
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn connect(url: &str) -> Result<postgres::Client, PgConnectError> {
    let mut connector = PgConnector::from_url(url)?;
    connector
        .config_mut()
        .connect_timeout(std::time::Duration::from_secs(5));
    connector.connect()
}

/// The error of a connection that must fail.
fn refused(url: &str, why: &str) -> String {
    match connect(url) {
        Ok(_) => panic!("{why}: connected to {url}"),
        Err(error) => error.to_string(),
    }
}

fn ssl_in_use(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("query")
        .get(0)
}

#[test]
fn sslmodes_against_a_tls_only_postgres_behave_as_libpq() {
    let pg = TlsPostgres::start();
    let ca = pg.file("ca.pem");
    let wrong = pg.file("wrong-ca.pem");

    // verify-full with the right CA and the certificate's host name: connected, over TLS.
    let mut client = connect(&pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .expect("verify-full with the right CA connects");
    assert!(ssl_in_use(&mut client));

    // A wrong CA is refused, and the error says why.
    let text = refused(
        &pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={wrong}"),
        ),
        "a certificate from another CA must be refused",
    );
    assert!(
        text.contains("TLS") && text.contains("certificate"),
        "unclear error: {text}"
    );
    let text = refused(
        &pg.url(
            "localhost",
            &format!("sslmode=verify-ca&sslrootcert={wrong}"),
        ),
        "verify-ca checks the chain",
    );
    assert!(text.contains("certificate"), "{text}");

    // A host name the certificate is not for: refused under verify-full, accepted by verify-ca.
    let text = refused(
        &pg.url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        "verify-full checks the host name",
    );
    assert!(
        text.contains("TLS") && text.contains("not valid for"),
        "unclear error: {text}"
    );
    let mut client = connect(&pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")))
        .expect("verify-ca does not compare the host name");
    assert!(ssl_in_use(&mut client));

    // require without a root certificate: TLS without verification (libpq's meaning).
    let mut client = connect(&pg.url("127.0.0.1", "sslmode=require")).expect("require connects");
    assert!(ssl_in_use(&mut client));
    // require with a root certificate behaves as verify-ca.
    assert!(
        connect(&pg.url("127.0.0.1", &format!("sslmode=require&sslrootcert={wrong}"))).is_err()
    );
    // prefer (the default): TLS when the server offers it.
    let mut client = connect(&pg.url("127.0.0.1", "")).expect("prefer connects");
    assert!(ssl_in_use(&mut client));

    // disable against a TLS-only server: refused by the server, and the cause is shown.
    let text = refused(
        &pg.url("127.0.0.1", "sslmode=disable"),
        "a plain connection must be refused",
    );
    assert!(
        text.contains("28000") && text.contains("pg_hba.conf") && text.contains("no encryption"),
        "unclear error: {text}"
    );

    // The backup target connects the same way.
    let mut target = per_store::PgTarget::new(
        &pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        "tls-test",
        |client| {
            client
                .batch_execute(per_store::backup::PG_SCHEMA)
                .map_err(|e| per_store::describe_pg_error(&e))
        },
    )
    .expect("target");
    use per_store::BackupTarget;
    target.put("a-name", b"bytes").expect("put over TLS");
    assert_eq!(target.get("a-name").expect("get over TLS"), b"bytes");
}
