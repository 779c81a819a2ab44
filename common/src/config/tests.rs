//! Tests of [`super`].

use super::*;
use crate::identity::Identity;

fn key() -> String {
    Identity::generate(PartyId::ModelOwner, &mut rand::rng()).public_key_base64()
}

fn cluster(extra: &str) -> String {
    format!(
        "[job]\nfrac_bits = 12\n\
         [parties.server0]\naddress = \"127.0.0.1:7100\"\npublic_key = \"{}\"\n\
         [parties.server1]\naddress = \"localhost:7101\"\npublic_key = \"{}\"\n\
         [parties.model-owner]\npublic_key = \"{}\"\n\
         [parties.data-owner-0]\npublic_key = \"{}\"\n{extra}",
        key(),
        key(),
        key(),
        key()
    )
}

#[test]
fn loads_a_valid_cluster_with_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, cluster("")).unwrap();
    let mut env = config::Map::new();
    env.insert("TESSERA__JOB__RING_BITS".into(), "64".into());
    env.insert(
        "TESSERA__PARTIES__SERVER1__ADDRESS".into(),
        "10.1.2.3:9000".into(),
    );
    // Off loopback without a certificate: allowed only when the file says so.
    env.insert("TESSERA__NETWORK__ALLOW_PLAINTEXT".into(), "true".into());
    let c = ClusterConfig::load_with_env(&path, Some(env)).unwrap();
    assert_eq!(c.num_servers(), 2);
    assert_eq!(c.job.frac_bits, 12);
    assert_eq!(c.job.ring_bits, 64);
    assert_eq!(
        c.party(PartyId::Server(1)).unwrap().address.as_deref(),
        Some("10.1.2.3:9000")
    );
    assert_eq!(c.data_owners(), vec![PartyId::DataOwner(0)]);
    assert!(c.network.allow_plaintext);
}

#[test]
fn the_job_may_ask_for_differential_privacy() {
    let plain = ClusterConfig::from_toml(&cluster("")).unwrap();
    assert_eq!(plain.job.dp, None);
    // The table follows the parties in this file, so it names its full path.
    let with = cluster("[job.dp]\nnoise_multiplier = 1.1\nclip = 0.5\ndelta = 1e-6\n");
    let dp = ClusterConfig::from_toml(&with).unwrap().job.dp.unwrap();
    assert_eq!((dp.noise_multiplier, dp.clip, dp.delta), (1.1, 0.5, 1e-6));
    let typo = cluster("[job.dp]\nnoise = 1.1\nclip = 0.5\ndelta = 1e-6\n");
    assert!(matches!(
        ClusterConfig::from_toml(&typo),
        Err(ConfigError::Load { .. })
    ));
    // A sampling rate is refused, not ignored: no owner sampling happens, so none may be
    // credited (see `dp`).
    let sampled = cluster(
        "[job.dp]\nnoise_multiplier = 1.1\nclip = 0.5\ndelta = 1e-6\nsampling_rate = 0.01\n",
    );
    assert!(matches!(
        ClusterConfig::from_toml(&sampled),
        Err(ConfigError::Load { .. })
    ));
}

#[test]
fn the_privacy_table_sets_the_clusters_minimum() {
    let none = ClusterConfig::from_toml(&cluster("")).unwrap();
    assert_eq!(none.privacy, PrivacyPolicy::default());
    let set = cluster("[privacy]\nmin_noise_multiplier = 1.5\nmax_delta = 1e-6\n");
    let policy = ClusterConfig::from_toml(&set).unwrap().privacy;
    assert_eq!(
        (policy.min_noise_multiplier, policy.max_delta),
        (Some(1.5), Some(1e-6))
    );
    let training = cluster("[training]\nmin_batch = 32\noptimizers = [\"sgd\"]\n");
    let training = ClusterConfig::from_toml(&training).unwrap().training;
    assert_eq!(
        (training.min_batch, training.optimizers),
        (32, Some(vec!["sgd".to_string()]))
    );
    let zero = cluster("[privacy]\nmin_noise_multiplier = 0\n");
    assert!(matches!(
        ClusterConfig::from_toml(&zero),
        Err(ConfigError::BadPrivacy(_))
    ));
}

#[test]
fn a_server_off_loopback_needs_a_certificate() {
    let remote = cluster("").replace("localhost:7101", "10.1.2.3:7101");
    assert!(matches!(
        ClusterConfig::from_toml(&remote),
        Err(ConfigError::BadTls {
            party: PartyId::Server(1),
            ..
        })
    ));
    let cert = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
    let with_cert = remote.replace(
        "address = \"10.1.2.3:7101\"",
        &format!("address = \"10.1.2.3:7101\"\ntls_cert = \"{cert}\""),
    );
    let c = ClusterConfig::from_toml(&with_cert).unwrap();
    let endpoint = c.endpoint(PartyId::Server(1)).unwrap();
    assert_eq!(endpoint.address, "10.1.2.3:7101");
    assert!(
        endpoint
            .tls_cert
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(c.endpoint(PartyId::Server(0)).unwrap().tls_cert, None);
    let plaintext = format!("{remote}[network]\nallow_plaintext = true\n");
    assert!(ClusterConfig::from_toml(&plaintext).is_ok());
    let not_pem = remote.replace(
        "address = \"10.1.2.3:7101\"",
        "address = \"10.1.2.3:7101\"\ntls_cert = \"hello\"",
    );
    assert!(matches!(
        ClusterConfig::from_toml(&not_pem),
        Err(ConfigError::BadTls { .. })
    ));
    assert!(is_loopback("127.0.0.1:1") && is_loopback("[::1]:1") && is_loopback("localhost:1"));
    assert!(!is_loopback("10.0.0.1:1") && !is_loopback("example.org:1"));
}

/// Data owners may go by names of their own, given with their role; a role that is not
/// the name's, or a missing one, is refused naming the party.
#[test]
fn data_owners_may_have_names_of_their_own_with_their_role() {
    let named = cluster(&format!(
        "[parties.hospital-a]\nrole = \"data-owner\"\npublic_key = \"{}\"\n",
        key()
    ));
    let c = ClusterConfig::from_toml(&named).unwrap();
    let hospital: PartyId = "hospital-a".parse().unwrap();
    assert!(c.data_owners().contains(&hospital), "{:?}", c.data_owners());
    assert!(c.data_owners().contains(&PartyId::DataOwner(0)));
    assert_eq!(hospital.to_string(), "hospital-a");

    let no_role = named.replace("role = \"data-owner\"\n", "");
    assert!(matches!(
        ClusterConfig::from_toml(&no_role),
        Err(ConfigError::BadRole { name, .. }) if name == "hospital-a"
    ));
    let wrong = named.replace("role = \"data-owner\"", "role = \"server\"");
    assert!(matches!(
        ClusterConfig::from_toml(&wrong),
        Err(ConfigError::BadRole { name, .. }) if name == "hospital-a"
    ));
    let server_as_owner = named.replace(
        "[parties.server0]\n",
        "[parties.server0]\nrole = \"data-owner\"\n",
    );
    assert!(matches!(
        ClusterConfig::from_toml(&server_as_owner),
        Err(ConfigError::BadRole { name, .. }) if name == "server0"
    ));
    let unknown = named.replace("role = \"data-owner\"", "role = \"auditor\"");
    let e = ClusterConfig::from_toml(&unknown).unwrap_err();
    assert!(
        matches!(&e, ConfigError::BadRole { reason: RoleProblem::Unknown(r), .. } if r == "auditor"),
        "{e}"
    );
}

/// Servers and the model owner may go by names of their own too (issue 12, item 7): a
/// server gives its role and index, and the file's names resolve to the parties. A missing
/// or out-of-range index, an index on another role, a fixed name's wrong index, and two
/// names for one party are refused naming the entry.
#[test]
fn servers_and_the_model_owner_may_have_names_of_their_own() {
    let named = cluster("")
        .replace(
            "[parties.server0]\n",
            "[parties.eu-leader]\nrole = \"server\"\nindex = 0\n",
        )
        .replace(
            "[parties.model-owner]\n",
            "[parties.acme-research]\nrole = \"model-owner\"\n",
        )
        + "[models.m]\nclients = [\"acme-research\", \"data-owner-0\"]\nmax_queries = 5\n";
    let c = ClusterConfig::from_toml(&named).unwrap();
    assert_eq!(c.resolve("eu-leader").unwrap(), PartyId::Server(0));
    assert_eq!(c.resolve("server0").unwrap(), PartyId::Server(0));
    assert_eq!(c.resolve("acme-research").unwrap(), PartyId::ModelOwner);
    assert_eq!(c.resolve("server1").unwrap(), PartyId::Server(1));
    assert_eq!(c.party(PartyId::Server(0)).unwrap().name, "eu-leader");
    assert_eq!(c.models["m"], [PartyId::ModelOwner, PartyId::DataOwner(0)]);
    assert_eq!(c.query_budgets["m"], 5);
    assert_eq!(c.num_servers(), 2);
    assert!(matches!(
        c.resolve("nobody-here"),
        Err(ConfigError::BadPartyName(_))
    ));

    let bad_role = |toml: &str, entry: &str, problem: RoleProblem| {
        let e = ClusterConfig::from_toml(toml).unwrap_err();
        assert!(
            matches!(&e, ConfigError::BadRole { name, reason } if name == entry && *reason == problem),
            "{e}"
        );
    };
    bad_role(
        &named.replace("index = 0\n", ""),
        "eu-leader",
        RoleProblem::ServerNeedsIndex,
    );
    bad_role(
        &named.replace("index = 0", "index = 3"),
        "eu-leader",
        RoleProblem::ServerIndexOutOfRange(3),
    );
    bad_role(
        &named.replace(
            "role = \"model-owner\"",
            "role = \"model-owner\"\nindex = 1",
        ),
        "acme-research",
        RoleProblem::IndexNotForRole("model-owner".into()),
    );
    bad_role(
        &named.replace("[parties.server1]\n", "[parties.server1]\nindex = 0\n"),
        "server1",
        RoleProblem::NotTheNamesIndex(0),
    );
    let twice = named.replace(
        "[parties.server1]\n",
        "[parties.eu-backup]\nrole = \"server\"\nindex = 0\n",
    );
    let e = ClusterConfig::from_toml(&twice).unwrap_err();
    assert!(
        matches!(&e, ConfigError::SameParty { name, other }
            if [name.as_str(), other.as_str()] == ["eu-leader", "eu-backup"]
                || [name.as_str(), other.as_str()] == ["eu-backup", "eu-leader"]),
        "{e}"
    );
}

#[test]
fn reports_missing_party_bad_address_and_bad_key() {
    let no_s1 = cluster("").replace("[parties.server1]", "[parties.server2]");
    assert!(matches!(
        ClusterConfig::from_toml(&no_s1),
        Err(ConfigError::MissingParty(PartyId::Server(1)))
    ));
    let bad_addr = cluster("").replace("localhost:7101", "localhost");
    assert!(matches!(
        ClusterConfig::from_toml(&bad_addr),
        Err(ConfigError::BadAddress {
            party: PartyId::Server(1),
            ..
        })
    ));
    let bad_key = cluster("[parties.data-owner-1]\npublic_key = \"not-a-key\"\n");
    assert!(matches!(
        ClusterConfig::from_toml(&bad_key),
        Err(ConfigError::BadKey {
            party: PartyId::DataOwner(1),
            ..
        })
    ));
    let bad_name = cluster("[parties.server9]\npublic_key = \"x\"\n");
    assert!(matches!(
        ClusterConfig::from_toml(&bad_name),
        Err(ConfigError::BadPartyName(_))
    ));
    let bad_ring = cluster("").replace("frac_bits = 12", "ring_bits = 48");
    assert!(matches!(
        ClusterConfig::from_toml(&bad_ring),
        Err(ConfigError::BadJob { .. })
    ));
}
