//! Settings resolution: defaults, file, flags and environment.

use std::time::Duration;

use latchkey_core::access_token::Algorithm;
use latchkey_core::secret::Secret;
use latchkey_core::throttle::ThrottlePolicy;

use super::*;
use crate::client_address::TrustedProxies;
use crate::rate_limit::RateLimits;

#[test]
fn flags_override_file_override_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9000\"\naccess_ttl = \"5m\"\nrefresh_grace = 3\naudience = \"api\"\n",
    )
    .expect("write");
    let args = ServeArgs {
        config: Some(path),
        access_ttl: Some(Duration::from_secs(42)),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert_eq!(s.listen.port(), 9000);
    assert_eq!(s.policy.issuer, "http://127.0.0.1:9000");
    assert_eq!(s.policy.access_ttl_seconds, 42);
    assert_eq!(s.policy.refresh.grace_seconds, 3);
    assert_eq!(s.policy.audience, "api");
}

#[test]
fn signing_algorithm_and_key_rotation_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "signing_algorithm = \"ES256\"\nkey_rotation_interval = \"30d\"\n",
    )
    .expect("write");
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert_eq!(s.policy.signing_algorithm, Algorithm::Es256);
    assert_eq!(
        s.key_rotation_interval,
        Some(Duration::from_secs(30 * 86400))
    );
    let args = ServeArgs {
        config: Some(path.clone()),
        signing_algorithm: Some(Algorithm::Rs256),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert_eq!(s.policy.signing_algorithm, Algorithm::Rs256);
    let defaults = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert_eq!(defaults.policy.signing_algorithm, Algorithm::EdDsa);
    assert_eq!(defaults.key_rotation_interval, None);

    std::fs::write(&path, "signing_algorithm = \"HS256\"\n").expect("write");
    assert!(Settings::resolve(&args).is_err());
    std::fs::write(&path, "key_rotation_interval = \"1m\"\n").expect("write");
    assert!(Settings::resolve(&args).is_err());
    assert!(parse_algorithm("es256").is_err());
    assert_eq!(parse_algorithm("EdDSA"), Ok(Algorithm::EdDsa));
}

#[test]
fn sign_up_is_open_by_default_and_set_by_file_or_flag() {
    use latchkey_core::service::SignUpMode;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, "sign_up = \"invite\"\n").expect("write");
    let from_file = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&from_file).expect("resolve");
    assert_eq!(s.policy.sign_up, SignUpMode::Invite);
    assert!(s.to_toml().contains("sign_up = \"invite\""));
    let flag = ServeArgs {
        config: Some(path.clone()),
        sign_up: Some(SignUpMode::Closed),
        ..ServeArgs::default()
    };
    assert_eq!(
        Settings::resolve(&flag).expect("resolve").policy.sign_up,
        SignUpMode::Closed
    );
    let defaults = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert_eq!(defaults.policy.sign_up, SignUpMode::Open);
    assert!(defaults.to_toml().contains("sign_up = \"open\""));
    std::fs::write(&path, "sign_up = \"maybe\"\n").expect("write");
    assert!(Settings::resolve(&from_file).is_err());
    assert_eq!(parse_sign_up(" closed "), Ok(SignUpMode::Closed));
    assert!(parse_sign_up("Open").is_err());
}

#[test]
fn throttle_and_rate_limits_have_defaults_and_can_be_set() {
    let defaults = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert_eq!(defaults.policy.throttle, ThrottlePolicy::default());
    assert_eq!(defaults.rate_limits, RateLimits::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "[throttle]\nenabled = false\naccount_free_failures = 3\naddress_free_failures = 30\n\
         window = \"1h\"\nbase_delay = \"2s\"\nmax_delay = \"5m\"\n\
         [rate_limits]\nsign_up_per_minute = 0\ntokens_per_minute = 60\n",
    )
    .expect("write");
    let args = ServeArgs {
        config: Some(path.clone()),
        tokens_rate_limit: Some(1000),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    let t = s.policy.throttle;
    assert!(!t.enabled);
    assert_eq!((t.account.free_failures, t.address.free_failures), (3, 30));
    assert_eq!(t.address.window_seconds, 3600);
    assert_eq!(t.account.base_delay_seconds, 2);
    assert_eq!(t.account.max_delay_seconds, 300);
    assert_eq!(s.rate_limits.sign_up_per_minute, 0);
    assert_eq!(s.rate_limits.tokens_per_minute, 1000);
    assert!(s.password_pepper.is_none());
    std::fs::write(&path, "password_pepper = \"0123456789abcdef0123\"\n").expect("write");
    let s = Settings::resolve(&args).expect("resolve");
    assert_eq!(
        s.password_pepper.as_ref().map(Secret::expose),
        Some("0123456789abcdef0123")
    );
    assert!(!format!("{s:?}").contains("0123456789abcdef"));
    std::fs::write(&path, "password_pepper = \"short\"\n").expect("write");
    assert!(Settings::resolve(&args).is_err());
    std::fs::write(&path, "[throttle]\nmax_delay = \"0s\"\n").expect("write");
    assert!(Settings::resolve(&args).is_err());
}

#[test]
fn hashing_threads_default_to_all_cores_but_one_and_can_be_set() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let s = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert_eq!(s.hashing_threads, (cores - 1).max(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, "hashing_threads = 3\n").expect("write");
    let mut args = ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    };
    assert_eq!(
        Settings::resolve(&args).expect("resolve").hashing_threads,
        3
    );
    args.hashing_threads = Some(1);
    assert_eq!(
        Settings::resolve(&args).expect("resolve").hashing_threads,
        1
    );
    args.hashing_threads = Some(0);
    assert!(Settings::resolve(&args).is_err());
}

#[test]
fn cors_origins_come_from_the_file_or_flags_in_the_form_browsers_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "cors_allowed_origins = [\"HTTPS://App.Example.com:443\", \"http://127.0.0.1:5173/\"]\n",
    )
    .expect("write");
    let mut args = ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    };
    assert_eq!(
        Settings::resolve(&args)
            .expect("resolve")
            .cors_allowed_origins,
        ["https://app.example.com", "http://127.0.0.1:5173"]
    );
    args.cors_allowed_origins = vec!["https://spa.example.com".into()];
    assert_eq!(
        Settings::resolve(&args)
            .expect("resolve")
            .cors_allowed_origins,
        ["https://spa.example.com"]
    );
    for bad in ["spa.example.com", "https://spa.example.com/app", "*"] {
        args.cors_allowed_origins = vec![bad.into()];
        assert!(Settings::resolve(&args).is_err(), "{bad}");
    }
}

#[test]
fn trusted_proxies_come_from_the_file_or_replace_it_from_flags() {
    assert!(Settings::resolve(&ServeArgs::default())
        .expect("resolve")
        .trusted_proxies
        .is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").expect("write");
    let mut args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let from_file = Settings::resolve(&args).expect("resolve").trusted_proxies;
    assert_eq!(
        from_file,
        TrustedProxies::parse(&["10.0.0.0/8", "::1"]).expect("parse")
    );
    args.trusted_proxies = vec!["192.0.2.0/24".into()];
    assert_eq!(
        Settings::resolve(&args).expect("resolve").trusted_proxies,
        TrustedProxies::parse(&["192.0.2.0/24"]).expect("parse")
    );
    args.trusted_proxies = vec!["192.0.2.0/99".into()];
    assert!(Settings::resolve(&args).is_err());
}

#[test]
fn clients_may_be_registered_to_introspect_any() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    let hash = "ab".repeat(32);
    std::fs::write(
        &path,
        format!(
            "[[clients]]\nclient_id = \"gateway\"\ntype = \"confidential\"\n\
             secret_sha256 = \"{hash}\"\nintrospect_any = true\n\
             [[clients]]\nclient_id = \"svc\"\ntype = \"confidential\"\n\
             secret_sha256 = \"{hash}\"\n"
        ),
    )
    .expect("write");
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    let flags: Vec<_> = s
        .clients
        .iter()
        .map(|c| (c.client_id.as_str(), c.introspect_any))
        .collect();
    assert_eq!(flags, [("gateway", true), ("svc", false)]);
    std::fs::write(
        &path,
        "[[clients]]\nclient_id = \"spa\"\ntype = \"public\"\nintrospect_any = true\n",
    )
    .expect("write");
    assert!(Settings::resolve(&args).is_err());
}

#[test]
fn revocation_feed_is_private_unless_the_file_or_a_flag_opens_it() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    let mut args = ServeArgs::default();
    assert!(
        !Settings::resolve(&args)
            .expect("resolve")
            .public_revocation_feed
    );
    std::fs::write(&path, "public_revocation_feed = true\n").expect("write");
    args.config = Some(path.clone());
    assert!(
        Settings::resolve(&args)
            .expect("resolve")
            .public_revocation_feed
    );
    args.public_revocation_feed = Some(false);
    assert!(
        !Settings::resolve(&args)
            .expect("resolve")
            .public_revocation_feed
    );

    let flag = |argv: &[&str]| Cli::try_parse_from(argv).map(|c| c.serve.public_revocation_feed);
    assert_eq!(flag(&["latchkey"]).ok(), Some(None));
    assert_eq!(
        flag(&["latchkey", "--public-revocation-feed"]).ok(),
        Some(Some(true))
    );
    assert_eq!(
        flag(&["latchkey", "--public-revocation-feed=false"]).ok(),
        Some(Some(false))
    );
    assert!(flag(&["latchkey", "--public-revocation-feed=maybe"]).is_err());
}

#[test]
fn debug_of_settings_and_args_shows_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "password_pepper = \"PLANTED-pepper-0123456789\"\n\
         database_url = \"postgres://me:PLANTED-db@db/auth\"\n",
    )
    .expect("write");
    let args = ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    };
    let mut s = Settings::resolve(&args).expect("resolve");
    s.server_secret = Some(Secret::from("1 PLANTED-server-secret"));
    let shown = format!("{s:#?}");
    assert!(!shown.contains("PLANTED"), "{shown}");
    assert!(
        shown.contains("postgres://me:[redacted]@db/auth"),
        "{shown}"
    );
    assert_eq!(shown.matches("[redacted]").count(), 3, "{shown}");
    let args = ServeArgs {
        database_url: Some(DatabaseUrl::from("postgres://me:PLANTED@db/auth")),
        ..ServeArgs::default()
    };
    assert!(!format!("{args:?}").contains("PLANTED"));
}

#[test]
fn config_parse_errors_do_not_quote_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    for text in [
        "listen = \"127.0.0.1:1\"\ndatabase_url = \"postgres://me:PLANTED@db/auth\n",
        "password_pepper = \"PLANTED-pepper-0123456789\" x\n",
        "password_pepper = [\"PLANTED-pepper-0123456789\"]\n",
    ] {
        std::fs::write(&path, text).expect("write");
        let e = Settings::resolve(&args).expect_err("bad file");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("PLANTED"), "{shown}");
        assert!(shown.contains("line "), "{shown}");
    }
}

#[test]
fn connection_limits_and_network_prefixes_have_defaults_and_can_be_set() {
    let defaults = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.idle_timeout, Duration::from_secs(60));
    assert_eq!(defaults.max_connections, 10_000);
    assert_eq!(
        (
            defaults.network_prefixes.ipv4,
            defaults.network_prefixes.ipv6
        ),
        (32, 64)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "header_read_timeout = \"5s\"\nidle_timeout = 30\nmax_connections = 50\n\
         ipv4_prefix = 24\nipv6_prefix = 56\n",
    )
    .expect("write");
    let mut args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert_eq!(s.header_read_timeout, Duration::from_secs(5));
    assert_eq!(s.idle_timeout, Duration::from_secs(30));
    assert_eq!(s.max_connections, 50);
    assert_eq!((s.network_prefixes.ipv4, s.network_prefixes.ipv6), (24, 56));
    args.max_connections = Some(7);
    assert_eq!(
        Settings::resolve(&args).expect("resolve").max_connections,
        7
    );
    args.max_connections = Some(0);
    assert!(Settings::resolve(&args).is_err());
    args.max_connections = None;
    for bad in [
        "ipv6_prefix = 129\n",
        "ipv4_prefix = 0\n",
        "idle_timeout = 0\n",
        "header_read_timeout = \"0s\"\n",
    ] {
        std::fs::write(&path, bad).expect("write");
        assert!(Settings::resolve(&args).is_err(), "{bad}");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "acess_ttl = \"5m\"\n").expect("write");
    let args = ServeArgs {
        config: Some(path),
        ..ServeArgs::default()
    };
    assert!(Settings::resolve(&args).is_err());
    assert!(parse_duration("ten minutes").is_err());
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
}

#[test]
fn database_tls_settings_are_checked_with_the_configuration() {
    for (url, wanted) in [
        (
            "postgres://me:PLANTED@db/auth?sslmode=verify_full",
            "database_url: sslmode=verify_full is not one of disable, prefer, require, verify-ca, verify-full",
        ),
        (
            "postgres://me:PLANTED@db/auth?sslmode=verify-full",
            "database_url: sslmode=verify-full verifies the server's certificate and needs sslrootcert",
        ),
    ] {
        let args = ServeArgs {
            database_url: Some(DatabaseUrl::from(url)),
            ..ServeArgs::default()
        };
        let e = Settings::resolve(&args).expect_err(url).to_string();
        assert!(e.contains(wanted), "{e}");
        assert!(!e.contains("PLANTED"), "{e}");
    }
    let args = ServeArgs {
        database_url: Some(DatabaseUrl::from(
            "postgres://me:PLANTED@db/auth?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
        )),
        ..ServeArgs::default()
    };
    Settings::resolve(&args).expect("verify-full with a CA");
}

#[test]
fn metrics_listen_comes_from_the_file_or_a_flag_and_must_differ_from_listen() {
    assert_eq!(
        Settings::resolve(&ServeArgs::default())
            .expect("resolve")
            .metrics_listen,
        None
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, "metrics_listen = \"127.0.0.1:9100\"\n").expect("write");
    let mut args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert_eq!(
        s.metrics_listen,
        Some("127.0.0.1:9100".parse().expect("addr"))
    );
    args.metrics_listen = Some("10.0.0.5:9200".parse().expect("addr"));
    assert_eq!(
        Settings::resolve(&args).expect("resolve").metrics_listen,
        args.metrics_listen
    );
    // The main listener's address cannot serve both.
    args.metrics_listen = Some("127.0.0.1:8080".parse().expect("addr"));
    assert!(Settings::resolve(&args).is_err());
    std::fs::write(&path, "metrics_listen = \"not an address\"\n").expect("write");
    args.metrics_listen = None;
    assert!(Settings::resolve(&args).is_err());
}

#[test]
fn listen_takes_addresses_and_localhost_but_explains_host_names() {
    assert_eq!(
        parse_listen("0.0.0.0:8080").map(|a| a.to_string()),
        Ok("0.0.0.0:8080".to_owned())
    );
    assert_eq!(
        parse_listen("[::1]:9").map(|a| a.to_string()),
        Ok("[::1]:9".to_owned())
    );
    let local = parse_listen("localhost:8181").expect("localhost");
    assert!(local.ip().is_loopback() && local.port() == 8181, "{local}");
    let refused = parse_listen("auth.example.com:80").expect_err("a host name");
    assert!(refused.contains("host name"), "{refused}");
    assert!(parse_listen("localhost:http").is_err());
    assert!(parse_listen("8080").is_err());

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, "listen = \"localhost:9100\"\n").expect("write");
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert!(s.listen.ip().is_loopback() && s.listen.port() == 9100);
    std::fs::write(&path, "listen = \"db.internal:9100\"\n").expect("write");
    assert!(Settings::resolve(&args).is_err());
}

#[test]
fn unspecified_listen_address_without_issuer_is_warned_about() {
    let mut args = ServeArgs {
        listen: parse_listen("0.0.0.0:8080").ok(),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    assert!(s.unusable_issuer_warning().is_some());
    args.issuer = Some("https://auth.example.com".into());
    let s = Settings::resolve(&args).expect("resolve");
    assert!(s.unusable_issuer_warning().is_none());
    let s = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert!(s.unusable_issuer_warning().is_none());
}

#[test]
fn smtp_settings_come_from_the_file_or_flags_and_their_password_never_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latchkey.toml");
    std::fs::write(
        &path,
        "smtp_url = \"smtps://mailer:PLANTED-smtp@smtp.example.com\"\n\
         smtp_from = \"Latchkey <noreply@example.com>\"\n\
         smtp_timeout = \"30s\"\n\
         [rate_limits]\nrecovery_per_minute = 3\n",
    )
    .expect("write");
    let args = ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    let smtp = s.smtp.as_ref().expect("smtp");
    assert_eq!(
        smtp.url.expose(),
        "smtps://mailer:PLANTED-smtp@smtp.example.com"
    );
    assert_eq!(smtp.from, "Latchkey <noreply@example.com>");
    assert_eq!(smtp.timeout, Duration::from_secs(30));
    assert!(s.policy.mail_enabled);
    assert_eq!(s.rate_limits.recovery_per_minute, 3);
    for shown in [format!("{s:#?}"), s.to_toml()] {
        assert!(!shown.contains("PLANTED"), "{shown}");
    }
    assert!(s
        .to_toml()
        .contains("smtp_url = \"smtps://mailer:[redacted]@smtp.example.com\""));

    // Flags win; a URL without a sender, or a bad one, is refused.
    let args = ServeArgs {
        config: Some(path),
        smtp_url: Some(Secret::from("smtp://127.0.0.1:2525")),
        smtp_from: Some("ops@example.com".to_owned()),
        ..ServeArgs::default()
    };
    let s = Settings::resolve(&args).expect("resolve");
    let smtp = s.smtp.as_ref().expect("smtp");
    assert_eq!(
        (smtp.url.expose(), smtp.from.as_str()),
        ("smtp://127.0.0.1:2525", "ops@example.com")
    );
    assert!(!format!("{args:?}").contains("PLANTED"));
    for (url, from) in [
        ("smtp://127.0.0.1:2525", None),
        ("http://mail.example.com", Some("a@example.com")),
    ] {
        let args = ServeArgs {
            smtp_url: Some(Secret::from(url)),
            smtp_from: from.map(str::to_owned),
            ..ServeArgs::default()
        };
        assert!(Settings::resolve(&args).is_err(), "{url} {from:?}");
    }
    let none = Settings::resolve(&ServeArgs::default()).expect("resolve");
    assert!(none.smtp.is_none() && !none.policy.mail_enabled);
}
