//! S3 storage against a real S3-protocol server: moto's server mode from PyPI, started by the
//! test through uv (pinned) and killed with its whole process group when the test ends.
//! Dump into a prefix (twice, then with --keep), restore the newest into another era, verify.
//! Part of `cargo xtask test` (it exports UV).

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{LiveServer, assert_intact, stdout, text, tool, write};
use e2e::dataset::Dataset;

/// Pinned: the version the test was written against.
const MOTO: &str = "moto[server]==5.2.5";

struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Moto {
        let uv = std::env::var("UV").unwrap_or_else(|_| panic!("the S3 test starts moto through uv: `cargo xtask test` exports UV; by hand: export UV=$(cargo xtask tools --print uv)"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(uv)
            .args([
                "tool",
                "run",
                "--quiet",
                "--from",
                MOTO,
                "moto_server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so the python under uv dies with it.
            .process_group(0)
            .spawn()
            .expect("starting moto_server through uv");
        let m = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &m.url])
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            assert!(
                Instant::now() < deadline,
                "moto did not answer at {} within 180 s",
                m.url
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        m
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    fn curl(&self, args: &[&str]) -> String {
        let out = Command::new("curl").arg("-sf").args(args).output().unwrap();
        assert!(out.status.success(), "curl {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Object keys under `prefix` (moto answers unsigned requests).
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = self.curl(&[&format!(
            "{}/{bucket}?list-type=2&prefix={prefix}",
            self.url
        )]);
        xml.split("<Key>")
            .skip(1)
            .map(|s| s.split("</Key>").next().unwrap().to_string())
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let pg = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn run(url: &str, args: &[&str], env: &[(&'static str, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tool(url, args, &env)
}

#[tokio::test]
async fn dump_to_an_s3_prefix_keeps_the_newest_and_restores_the_newest_into_another_era() {
    let moto = Moto::start();
    moto.curl(&["-X", "PUT", &format!("{}/backups", moto.url)]);
    let env = moto.env();
    let a = LiveServer::start("1.5.0");
    let ds = Dataset::upgrade();
    write(&a, &ds).await;

    let mut printed = Vec::new();
    for keep in [None, None, Some("2")] {
        let mut args = vec!["dump", "--to", "s3://backups/nightly/"];
        if let Some(k) = keep {
            args.extend(["--keep", k]);
        }
        let out = run(&a.url, &args, &env);
        assert!(out.status.success(), "{}", text(&out));
        printed.push(stdout(&out));
        // Archive names carry the second they were made.
        std::thread::sleep(Duration::from_millis(1100));
    }
    for p in &printed {
        assert!(
            p.starts_with("s3://backups/nightly/chroma-backup-") && p.ends_with(".tar"),
            "{p}"
        );
    }
    let keys = moto.keys("backups", "nightly/");
    let want: Vec<String> = printed[1..]
        .iter()
        .map(|p| p.trim_start_matches("s3://backups/").to_string())
        .collect();
    assert_eq!(
        keys, want,
        "--keep 2 left the two newest and nothing else (no partial uploads)"
    );

    let b = LiveServer::start("0.6.3");
    let out = run(
        &b.url,
        &["restore", "--from", "s3://backups/nightly/"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        common::stderr(&out).contains(printed[2].as_str()),
        "the newest archive was restored: {}",
        text(&out)
    );
    let out = run(&b.url, &["verify", "--from", &printed[2]], &env);
    assert!(out.status.success(), "{}", text(&out));
    assert_intact(&b, &ds).await;

    let out = run(&b.url, &["inspect", "s3://backups/empty-prefix/"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        common::stderr(&out).contains(
            "s3://backups/empty-prefix/: no archive named chroma-backup-<UTC time>.tar there"
        ),
        "{}",
        text(&out)
    );
    let out = run(
        &b.url,
        &["inspect", "s3://backups/nightly/missing.tar"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        common::stderr(&out)
            .contains("location `s3://backups/nightly/missing.tar` is not usable: no such object"),
        "{}",
        text(&out)
    );
}
