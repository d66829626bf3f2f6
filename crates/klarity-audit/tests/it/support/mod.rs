//! A small harness in the spirit of ripgrep's `TestCommand`: run the built binary in a temporary
//! directory with input files, capture everything.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The outcome of one run.
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// A temporary working directory to run the binary in.
pub(crate) struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    pub(crate) fn new() -> Dir {
        Dir { dir: tempfile::tempdir().expect("creating a temp dir") }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the directory, creating parents.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs `klarity-audit ARGS` with optional standard input.
    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_with(args, stdin, &[])
    }

    /// [`Dir::run`] with environment variables set (and those of AWS identity the machine has
    /// removed, so that only `env` gives one).
    pub(crate) fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_klarity-audit"));
        if !env.is_empty() {
            for name in AWS_IDENTITY_ENV {
                command.env_remove(name);
            }
        }
        let mut child = command
            .envs(env.iter().copied())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("KLARITY_CATALOG_DIR")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting klarity-audit");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// `klarity-audit lake` running as a process on a free loopback port; killed on drop.
pub(crate) struct LakeProcess {
    child: std::process::Child,
    pub(crate) endpoint: String,
}

impl LakeProcess {
    pub(crate) fn start(data_dir: &Path) -> LakeProcess {
        LakeProcess::start_logging(data_dir, None)
    }

    /// Starts the lake; with `log`, its info-level log goes to that file.
    pub(crate) fn start_logging(data_dir: &Path, log: Option<&Path>) -> LakeProcess {
        LakeProcess::start_with(data_dir, log, &[], None)
    }

    /// Starts the lake with extra environment (settings as `KLARITY_LAKE__…`) and, with
    /// `address_space_kib`, under that limit of virtual memory (`ulimit -v`, as a container's memory
    /// limit would hold it): an allocation past it aborts the process.
    pub(crate) fn start_with(
        data_dir: &Path,
        log: Option<&Path>,
        env: &[(&str, &str)],
        address_space_kib: Option<u64>,
    ) -> LakeProcess {
        use std::io::BufRead;
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let binary = env!("CARGO_BIN_EXE_klarity-audit");
        let mut command = match address_space_kib {
            Some(kib) => {
                let mut sh = Command::new("sh");
                sh.arg("-c").arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\"")).arg(binary);
                sh
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["lake", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", if log.is_some() { "warn,audit_lake=info" } else { "warn" })
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting klarity-audit lake");
        let stdout = child.stdout.take().unwrap();
        let mut reader = std::io::BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        // Keep draining the banner so the process never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let endpoint = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        LakeProcess { child, endpoint }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended, if it did.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

/// Environment variables through which AWS's standard credential chain finds an identity.
pub(crate) const AWS_IDENTITY_ENV: [&str; 13] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ENDPOINT_URL",
];

/// `klarity-audit relay` as a process on a free port, delivering to `endpoint`; killed on drop.
pub(crate) struct RelayProcess {
    child: std::process::Child,
    pub(crate) address: String,
}

impl RelayProcess {
    /// Starts the relay with extra environment (settings as `KLARITY_RELAY__…`).
    pub(crate) fn start_with(data_dir: &Path, endpoint: &str, env: &[(&str, &str)]) -> RelayProcess {
        use std::io::BufRead;
        let mut command = Command::new(env!("CARGO_BIN_EXE_klarity-audit"));
        // The relay's AWS identity is what a test gives it, never what the machine has.
        for name in AWS_IDENTITY_ENV {
            command.env_remove(name);
        }
        let mut child = command
            .args(["relay", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("KLARITY_RELAY__ENDPOINT_URL", endpoint)
            .env("KLARITY_RELAY__IDLE_POLL_MS", "10")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting klarity-audit relay");
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let address = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .map(|a| a.trim_end_matches(',').to_owned())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        RelayProcess { child, address }
    }

    /// Kills the process at once (SIGKILL).
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs a JSON body with a bearer token over plain HTTP; (status, body), or (0, error).
pub(crate) fn http_post(address: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        Ok((head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), rest.to_owned()))
    };
    attempt().unwrap_or_else(|err| (0, err.to_string()))
}

impl Drop for LakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `s` percent-encoded for a form body (awsQuery parameters such as policy documents).
pub(crate) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Calls the lake over plain HTTP with a SigV4 signature (customer keys), blocking. `target` is a
/// CloudTrail operation for `cloudtrail`, or a path with query for `cloudtrail-data`.
/// Returns (status, body); (0, error) when the connection failed.
pub(crate) fn lake_call(endpoint: &str, service: &str, target: &str, body: &str) -> (u16, String) {
    use audit_lake::config::{CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY};
    lake_call_as(endpoint, (CUSTOMER_ACCESS_KEY_ID, CUSTOMER_SECRET_ACCESS_KEY), service, target, body)
}

/// [`lake_call`] signed with other keys (access key id, secret).
pub(crate) fn lake_call_as(
    endpoint: &str,
    (access_key_id, secret): (&str, &str),
    service: &str,
    target: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};

    use audit_lake::sigv4;
    let host = endpoint.trim_start_matches("http://").to_owned();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let amz_date = audit_event::EventTime::from_unix(now, 0).to_string().replace(['-', ':'], "");
    let (path_query, mut headers) = if service == "iam" || service == "sts" {
        (
            "/".to_owned(),
            vec![("content-type".to_owned(), "application/x-www-form-urlencoded; charset=utf-8".to_owned())],
        )
    } else if service == "cloudtrail" {
        (
            "/".to_owned(),
            vec![
                ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
                ("x-amz-target".to_owned(), format!("CloudTrail_20131101.{target}")),
            ],
        )
    } else {
        (target.to_owned(), vec![("content-type".to_owned(), "application/json".to_owned())])
    };
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    headers.push(("host".to_owned(), host.clone()));
    let (path, query) = path_query.split_once('?').unwrap_or((&path_query, ""));
    let mut names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    let signable = sigv4::Signable { method: "POST", path, query, headers: &headers, body: body.as_bytes() };
    let auth =
        sigv4::authorization_header(&signable, access_key_id, secret, &amz_date, "us-east-1", service, &names).unwrap();
    let mut request = format!(
        "POST {path_query} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: {auth}\r\n",
        body.len()
    );
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let attempt = || -> std::io::Result<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(&host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        stream.write_all(request.as_bytes())?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, body.to_owned()))
    };
    attempt().unwrap_or_else(|err| (0, err.to_string()))
}

/// The upstream example events shipped with `audit-event`'s tests.
pub(crate) fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit-event/tests/data/upstream")
}

/// The catalog directory of the workspace.
pub(crate) fn catalog_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog")
}

/// `klarity-audit` running in a mount namespace of its own (`unshare`, util-linux) in which `disk`
/// is a fresh tmpfs of `size` (e.g. `24m`): a disk that really fills up (ENOSPC). `script` runs
/// there with `$D` the disk, `$B` the binary and `$T` a file outside it, and ends by `exec`ing the
/// server; its first line of output (the listening banner) is returned. Killed on drop.
pub(crate) struct OnSmallDisk {
    child: std::process::Child,
    pub(crate) banner: String,
}

impl OnSmallDisk {
    pub(crate) fn start(disk: &Path, size: &str, out_file: &Path, script: &str, env: &[(&str, &str)]) -> OnSmallDisk {
        use std::io::BufRead;
        std::fs::create_dir_all(disk).unwrap();
        let script = format!(r#"mount -t tmpfs -o size={size} tmpfs "$D" && {script}"#);
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("D", disk)
            .env("B", env!("CARGO_BIN_EXE_klarity-audit"))
            .env("T", out_file)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) runs the server in a mount namespace of its own");
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        reader.read_line(&mut banner).unwrap();
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        OnSmallDisk { child, banner }
    }

    /// The `http://` address the banner names, without the scheme.
    pub(crate) fn address(&self) -> String {
        self.banner
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .map(|a| a.trim_end_matches(',').to_owned())
            .unwrap_or_else(|| panic!("no address in {:?}", self.banner))
    }
}

impl Drop for OnSmallDisk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An event data store and a channel into it in the local lake at `endpoint`, whose resource
/// policy lets the vendor account publish with external ID `crash-ext-1`; with `role`, also that
/// customer role (trusting the vendor under the same external ID) allowed to publish and to query
/// the store. Returns (store ARN, channel ARN).
pub(crate) fn crash_channel(endpoint: &str, role: Option<&str>) -> (String, String) {
    use serde_json::{Value, json};
    let (status, body) = lake_call(
        endpoint,
        "cloudtrail",
        "CreateEventDataStore",
        r#"{"Name":"relaycrash","MultiRegionEnabled":false,"AdvancedEventSelectors":[{"Name":"a","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let store_arn = serde_json::from_str::<Value>(&body).unwrap()["EventDataStoreArn"].as_str().unwrap().to_owned();
    let (status, body) = lake_call(
        endpoint,
        "cloudtrail",
        "CreateChannel",
        &format!(
            r#"{{"Name":"relaycrash","Source":"Custom","Destinations":[{{"Type":"EVENT_DATA_STORE","Location":"{store_arn}"}}]}}"#
        ),
    );
    assert_eq!(status, 200, "{body}");
    let channel = serde_json::from_str::<Value>(&body).unwrap()["ChannelArn"].as_str().unwrap().to_owned();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"855341727128"}},"Action":"cloudtrail-data:PutAuditEvents","Resource":"{channel}","Condition":{{"StringEquals":{{"cloudtrail:ExternalId":"crash-ext-1"}}}}}}]}}"#
    );
    let (status, body) = lake_call(
        endpoint,
        "cloudtrail",
        "PutResourcePolicy",
        &json!({"ResourceArn": channel, "ResourcePolicy": policy}).to_string(),
    );
    assert_eq!(status, 200, "{body}");

    if let Some(role) = role {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::855341727128:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"crash-ext-1"}}}]}"#;
        let (status, body) = lake_call(
            endpoint,
            "iam",
            "",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName={role}&AssumeRolePolicyDocument={}",
                urlencode(trust)
            ),
        );
        assert_eq!(status, 200, "{body}");
        let permissions = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["cloudtrail-data:PutAuditEvents", "cloudtrail:GetChannel"], "Resource": channel},
            {"Effect": "Allow", "Action": ["cloudtrail:StartQuery", "cloudtrail:DescribeQuery", "cloudtrail:GetQueryResults"], "Resource": store_arn}
        ]});
        let (status, body) = lake_call(
            endpoint,
            "iam",
            "",
            &format!(
                "Action=PutRolePolicy&Version=2010-05-08&RoleName={role}&PolicyName=publish&PolicyDocument={}",
                urlencode(&permissions.to_string())
            ),
        );
        assert_eq!(status, 200, "{body}");
    }
    (store_arn, channel)
}

/// A new, empty database on the test server (`KLARITY_TEST_DATABASE_URL`, which `./scripts/test`
/// sets to its throwaway cluster); its URL. Without the variable the test fails: a PostgreSQL test
/// skipped would pass for nothing.
pub(crate) fn fresh_database(server: &str) -> String {
    let name = format!("klarity_it_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls).await.expect("test server");
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    });
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}

/// The shared test server's URL.
pub(crate) fn test_server() -> String {
    std::env::var("KLARITY_TEST_DATABASE_URL").expect(
        "KLARITY_TEST_DATABASE_URL must name a PostgreSQL server where tests may create databases \
         (postgres://user@host:port/postgres); ./scripts/test starts one",
    )
}

/// A PostgreSQL cluster of the test's own (`scripts/throwaway-postgres`), for tests that restart
/// the server; stopped on drop.
pub(crate) struct OwnPostgres {
    dir: tempfile::TempDir,
    /// The server's URL (its `postgres` database).
    pub(crate) url: String,
}

impl OwnPostgres {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/throwaway-postgres")
    }

    pub(crate) fn start() -> OwnPostgres {
        OwnPostgres::start_speaking(false)
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1 from a certificate
    /// authority of its own ([`OwnPostgres::ca_file`]).
    pub(crate) fn start_tls() -> OwnPostgres {
        OwnPostgres::start_speaking(true)
    }

    /// The certificate authority of a [`OwnPostgres::start_tls`] server.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_speaking(tls: bool) -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(OwnPostgres::script())
            .arg("start")
            .arg(dir.path())
            .env("THROWAWAY_POSTGRES_TLS", if tls { "1" } else { "0" })
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        OwnPostgres { dir, url }
    }

    /// Restarts the server: every session ends, as on a failover.
    pub(crate) fn restart(&self) {
        self.script_does("restart");
    }

    /// Takes the server down until [`OwnPostgres::resume`].
    pub(crate) fn pause(&self) {
        self.script_does("pause");
    }

    /// Starts the server again after [`OwnPostgres::pause`], on the same port.
    pub(crate) fn resume(&self) {
        self.script_does("resume");
    }

    /// Stops the server's processes (SIGSTOP) until [`OwnPostgres::thaw`]: connections stay open
    /// and nothing answers, as when a server hangs or a network drops packets.
    pub(crate) fn freeze(&self) {
        self.script_does("freeze");
    }

    /// Lets the server's processes go on after [`OwnPostgres::freeze`].
    pub(crate) fn thaw(&self) {
        self.script_does("thaw");
    }

    fn script_does(&self, what: &str) {
        let out = Command::new(OwnPostgres::script()).arg(what).arg(self.dir.path()).output().unwrap();
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // A frozen server could not stop.
        let _ = Command::new(OwnPostgres::script()).arg("thaw").arg(self.dir.path()).output();
        let _ = Command::new(OwnPostgres::script()).arg("stop").arg(self.dir.path()).output();
    }
}

/// GETs `path` over plain HTTP (one connection, closed after); (status, body).
pub(crate) fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), body.to_owned())
}

/// How many times each UID is in the lake's store `store_id` (under `dir/lake`), read with `lake
/// dump` until `expected` distinct UIDs are there or `within` has passed.
pub(crate) fn stored_uids(
    dir: &Dir,
    store_id: &str,
    expected: usize,
    within: std::time::Duration,
) -> std::collections::BTreeMap<String, usize> {
    let deadline = std::time::Instant::now() + within;
    let lake = dir.path().join("lake");
    loop {
        let mut stored = std::collections::BTreeMap::new();
        let out = dir.run(&["lake", "dump", "--data-dir", lake.to_str().unwrap(), "--store", store_id], None);
        for line in out.stdout.lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            *stored.entry(event["eventData"]["UID"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        if stored.len() >= expected || std::time::Instant::now() >= deadline {
            return stored;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The entries the lake logged as sent again after it had stored them (its log at `log`): what
/// AWS, which does not de-duplicate, would have stored twice.
pub(crate) fn repeated_entries(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("were sent again"))
        .filter_map(|l| {
            l.split("repeated=").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse::<usize>().ok())
        })
        .sum()
}
