//! Networked mode with real processes on 127.0.0.1: three `aggregator`s, data owners and the
//! `model-owner`, talking gRPC. This file is the harness (the cluster, its processes, the audit
//! records and the metrics); [`federated`] checks what the model owner revealed against the sum
//! the test computes itself from the data owners' own audit records of what they uploaded, exact
//! in the ring; [`mpc`]: encrypted prediction served by the same processes.

mod federated;
mod mpc;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tessera_common::PartyId;
use tessera_common::identity::{Identity, write_key_file};
use tessera_common::ringvec::RingVec;
use tessera_common::seal::Sealer;
use x25519_dalek::StaticSecret;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    ids: Vec<Identity>,
    leader_address: String,
    /// The data owners, in the order `start_data_owner(i, ..)` numbers them.
    owners: Vec<PartyId>,
    /// Names of their own the servers and the model owner go by in the cluster file.
    roles: Vec<(PartyId, String)>,
}

impl Cluster {
    /// The name `party` goes by in the cluster file, its key file and its log.
    fn name_of(&self, party: PartyId) -> String {
        name_in(&self.roles, party)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("cluster.toml")
    }

    fn spawn(&self, exe: &str, args: &[&str], log: &str) -> Proc {
        let log = std::fs::File::create(self.path(log)).unwrap();
        let child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Proc(child)
    }

    fn start_servers(&self) -> Vec<Proc> {
        (0..3).map(|i| self.start_server(i, "")).collect()
    }

    /// Starts `server{i}`, logging to `server{i}{suffix}.log`.
    fn start_server(&self, i: u32, suffix: &str) -> Proc {
        self.start_server_with(i, suffix, &[])
    }

    /// [`Cluster::start_server`] with `extra` arguments to `serve`.
    fn start_server_with(&self, i: u32, suffix: &str, extra: &[&str]) -> Proc {
        let name = self.name_of(PartyId::Server(i as u8));
        let key = self.path(&format!("{name}.key"));
        let tls_key = self.path(&format!("{name}.tls.key"));
        let config = self.config();
        let mut args = serve_args(&config, &name, &key);
        if tls_key.exists() {
            args.extend(["--tls-key", path_str(&tls_key)]);
        }
        args.extend(extra);
        self.spawn(
            env!("CARGO_BIN_EXE_t-aggregator"),
            &args,
            &format!("{name}{suffix}.log"),
        )
    }

    fn start_data_owner(&self, i: u32, shard: &str) -> Proc {
        self.start_data_owner_with(i, shard, &[])
    }

    /// A data owner on shard `shard` of the bundled digits, with `extra` arguments to `serve`.
    fn start_data_owner_with(&self, i: u32, shard: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["--data", "bundled", "--shard", shard];
        args.extend(extra);
        self.start_data_owner_on(i, &args)
    }

    /// A data owner whose data `serve` is told by `data_args` (`--data`, `--shard`, ...).
    fn start_data_owner_on(&self, i: u32, data_args: &[&str]) -> Proc {
        let name = self.owners[i as usize].to_string();
        let key = self.path(&format!("{name}.key"));
        let audit = self.path("audit");
        let config = self.config();
        let mut args = serve_args(&config, &name, &key);
        args.extend(["--quiet", "--audit-dir", path_str(&audit)]);
        args.extend(data_args);
        self.spawn(
            env!("CARGO_BIN_EXE_t-data-owner"),
            &args,
            &format!("{name}.log"),
        )
    }

    fn run_model_owner(&self, rounds: u32, timeout: Duration) {
        self.run_model_owner_with(rounds, timeout, &["--model", "logreg"]);
    }

    /// `model-owner train` with `model_args` (`--model`, `--test-data`, ...), to its end.
    fn run_model_owner_with(&self, rounds: u32, timeout: Duration, model_args: &[&str]) {
        let mo = self.spawn_model_owner(rounds, model_args);
        self.wait_model_owner(mo, timeout);
    }

    /// Starts `model-owner train` with `model_args`, logging to `model-owner.log`.
    fn spawn_model_owner(&self, rounds: u32, model_args: &[&str]) -> Proc {
        let key = self.path(&format!("{}.key", self.name_of(PartyId::ModelOwner)));
        let rounds = rounds.to_string();
        let out = self.path("out");
        let audit = self.path("audit");
        let config = self.config();
        let mut args = vec![
            "train",
            "--config",
            path_str(&config),
            "--key",
            path_str(&key),
            "--rounds",
            &rounds,
            "--out",
            path_str(&out),
            "--audit-dir",
            path_str(&audit),
            "--quiet",
        ];
        args.extend(model_args);
        self.spawn(
            env!("CARGO_BIN_EXE_t-model-owner"),
            &args,
            "model-owner.log",
        )
    }

    /// Waits for the model owner to end, which it must do successfully within `timeout`.
    fn wait_model_owner(&self, mut mo: Proc, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = mo.0.try_wait().unwrap() {
                assert!(status.success(), "model owner failed:\n{}", self.logs());
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "model owner timed out:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out += &format!(
                    "== {}\n{}\n",
                    p.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        out
    }

    fn sealer(&self, party: PartyId) -> Sealer {
        let id = self.ids.iter().find(|i| i.party() == party).unwrap();
        Sealer::new(id, self.ids.iter().map(|i| (i.party(), i.public_key())))
    }
}

/// `serve --config C --name N --key K`, the arguments every party's `serve` starts with.
fn serve_args<'a>(config: &'a Path, name: &'a str, key: &'a Path) -> Vec<&'a str> {
    vec![
        "serve",
        "--config",
        path_str(config),
        "--name",
        name,
        "--key",
        path_str(key),
    ]
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cluster(min_clients: usize, deadline_secs: u64) -> Cluster {
    cluster_with(min_clients, deadline_secs, false)
}

/// A cluster on 127.0.0.1; with `tls`, every server gets a self-signed certificate made for this
/// run (in the cluster file) and its key (`serverN.tls.key`), and everybody speaks TLS.
fn cluster_with(min_clients: usize, deadline_secs: u64, tls: bool) -> Cluster {
    cluster_of(
        min_clients,
        deadline_secs,
        tls,
        &["data-owner-0", "data-owner-1", "data-owner-2"],
    )
}

/// [`cluster_with`] whose data owners go by `owners` (fixed names or names of their own, listed
/// with `role = "data-owner"`).
fn cluster_of(min_clients: usize, deadline_secs: u64, tls: bool, owners: &[&str]) -> Cluster {
    cluster_named(min_clients, deadline_secs, tls, owners, &[])
}

/// The name `party` goes by: its name of its own among `roles`, else its fixed name.
fn name_in(roles: &[(PartyId, String)], party: PartyId) -> String {
    roles
        .iter()
        .find(|(p, _)| *p == party)
        .map_or_else(|| party.to_string(), |(_, n)| n.clone())
}

/// [`cluster_of`] whose servers or model owner go by the names of their own in `roles`
/// (listed with their role, and a server with its index; their key files say those names).
fn cluster_named(
    min_clients: usize,
    deadline_secs: u64,
    tls: bool,
    owners: &[&str],
    roles: &[(PartyId, &str)],
) -> Cluster {
    let roles: Vec<(PartyId, String)> = roles.iter().map(|(p, n)| (*p, n.to_string())).collect();
    let dir = tempfile::tempdir().unwrap();
    let owners: Vec<PartyId> = owners.iter().map(|n| n.parse().unwrap()).collect();
    let mut parties: Vec<PartyId> = (0..3).map(PartyId::Server).collect();
    parties.extend(&owners);
    parties.push(PartyId::ModelOwner);
    let secrets: Vec<StaticSecret> = parties
        .iter()
        .map(|_| StaticSecret::random_from_rng(&mut rand::rng()))
        .collect();
    let ids: Vec<Identity> = parties
        .iter()
        .zip(&secrets)
        .map(|(p, s)| Identity::from_secret(*p, s.clone()))
        .collect();
    let mut toml = format!(
        "[job]\nring_bits = 32\nfrac_bits = 16\nclip = 1.0\nmin_clients = {min_clients}\nround_deadline_secs = {deadline_secs}\n"
    );
    let mut leader_address = String::new();
    for (id, secret) in ids.iter().zip(&secrets) {
        let name = name_in(&roles, id.party());
        write_key_file(&dir.path().join(format!("{name}.key")), &name, secret).unwrap();
        toml += &format!(
            "[parties.{name}]\npublic_key = \"{}\"\n",
            id.public_key_base64()
        );
        if id.party().is_named() {
            toml += "role = \"data-owner\"\n";
        } else if name != id.party().to_string() {
            match id.party().server_index() {
                Some(i) => toml += &format!("role = \"server\"\nindex = {i}\n"),
                None => toml += "role = \"model-owner\"\n",
            }
        }
        if id.party().is_server() {
            let address = format!("127.0.0.1:{}", free_port());
            if id.party() == PartyId::Server(0) {
                leader_address = address.clone();
            }
            toml += &format!("address = \"{address}\"\n");
            if tls {
                let rcgen::CertifiedKey { cert, signing_key } =
                    rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
                let key = dir.path().join(format!("{name}.tls.key"));
                std::fs::write(&key, signing_key.serialize_pem()).unwrap();
                // Private, as the server requires of a secret key file.
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
                toml += &format!("tls_cert = \"\"\"\n{}\"\"\"\n", cert.pem());
            }
        }
    }
    std::fs::write(dir.path().join("cluster.toml"), toml).unwrap();
    Cluster {
        dir,
        ids,
        leader_address,
        owners,
        roles,
    }
}

/// The `<audit>/<prefix>-...-<job>-<round>.bin` files, as (job, round, path).
fn audit_records(dir: &Path, prefix: &str) -> Vec<(u64, u64, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name
            .strip_prefix(&format!("{prefix}-"))
            .and_then(|r| r.strip_suffix(".bin"))
        {
            let mut fields = rest.rsplit('-');
            let round = fields.next().unwrap().parse().unwrap();
            let job = fields.next().unwrap().parse().unwrap();
            out.push((job, round, entry.path()));
        }
    }
    out
}

fn ring_vec(path: &Path) -> RingVec {
    ring_vec_of(path, 32)
}

/// A recorded vector of `bits`-bit ring elements.
fn ring_vec_of(path: &Path, bits: u32) -> RingVec {
    let bytes = std::fs::read(path).unwrap();
    let mut v = RingVec::zeros(bits, bytes.len() / (bits as usize / 8)).unwrap();
    v.add_bytes_at(0, &bytes).unwrap();
    v
}

/// The model owner's arguments of the breast-cancer table jobs: the shipped model-spec file,
/// the test table and its label column.
fn table_model_args() -> Vec<String> {
    vec![
        "--model".into(),
        shipped("examples/models/tabular-mlp.toml"),
        "--test-data".into(),
        shipped("common/data/breast-cancer/test.csv"),
        "--label-column".into(),
        "diagnosis".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A file the repository ships, by its path from the workspace root.
fn shipped(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .to_str()
        .unwrap()
        .to_owned()
}

/// Checks the audit records of a federated job: `rounds` aggregates, each the exact ring sum
/// of the `owners` updates the data owners recorded for its round.
fn assert_exact_sums(c: &Cluster, rounds: usize, owners: usize) {
    let aggregates = audit_records(&c.path("audit"), "aggregate");
    assert_eq!(aggregates.len(), rounds, "{aggregates:?}");
    assert_every_sum_exact(c, owners);
}

/// Checks every aggregate the model owner recorded: the exact ring sum of the `owners` updates
/// the data owners recorded for its round. Returns the rounds with their aggregate's file.
fn assert_every_sum_exact(c: &Cluster, owners: usize) -> Vec<(u64, PathBuf)> {
    let audit = c.path("audit");
    let aggregates = audit_records(&audit, "aggregate");
    let updates = audit_records(&audit, "update");
    for (job, round, path) in &aggregates {
        let contributors: Vec<&PathBuf> = updates
            .iter()
            .filter(|(j, r, _)| j == job && r == round)
            .map(|(_, _, p)| p)
            .collect();
        assert_eq!(
            contributors.len(),
            owners,
            "round {round}: every owner recorded its update"
        );
        let mut expected = RingVec::zeros(32, ring_vec(contributors[0]).len()).unwrap();
        for p in contributors {
            expected.add_assign(&ring_vec(p)).unwrap();
        }
        assert_eq!(
            ring_vec(path),
            expected,
            "round {round}: revealed aggregate is the exact ring sum"
        );
        let contributors = std::fs::read_to_string(path.with_extension("txt")).unwrap();
        assert_eq!(contributors.lines().count(), owners);
    }
    aggregates.into_iter().map(|(_, r, p)| (r, p)).collect()
}

/// `GET /metrics` at `address`: each sample line (`name{labels} value`) by its name and labels;
/// `None` if the endpoint does not answer 200.
fn scrape(address: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") || !head.contains("text/plain; version=0.0.4") {
        return None;
    }
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect(),
    )
}

/// The sum of the numeric `field=` of every log line containing `message`.
fn logged_field(log: &str, message: &str, field: &str) -> u64 {
    let key = format!("{field}=");
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| {
            let rest = &l[l.find(&key)? + key.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// Polls `done` every 100 ms for up to `timeout`; panics with the logs if it never holds.
fn wait_until(c: &Cluster, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
