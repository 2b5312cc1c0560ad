//! The local cluster, live: `cargo xtask cluster up` builds (first time) and starts it, the
//! API server answers /readyz through kubectl with the printed kubeconfig, the process node is
//! Ready, and `cargo xtask cluster down` leaves no process, port or file behind.
//!
//! It takes over `target/cluster` (a cluster already up there is replaced, then removed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn xtask(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    eprintln!(
        "xtask {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn kubectl(kubectl: &str, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Processes whose program is one the cluster builds, or whose command line names the
/// cluster folder.
fn cluster_processes(tools: &Path, cluster: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            == Some("Z")
        {
            continue;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let ours = ["k8s-", "etcd-"].iter().any(|p| {
            exe.strip_prefix(tools)
                .is_ok_and(|r| r.to_string_lossy().starts_with(p))
        }) || cmd.contains(&*cluster.to_string_lossy());
        if ours {
            found.push(format!("{pid} {cmd}"));
        }
    }
    found
}

#[test]
#[ignore = "builds Kubernetes and etcd from Go modules on first run (~20 min with a cold Go cache on 2 shared cores, ~1.5 min warm), needs root; run: cargo test -p xtask --test cluster -- --ignored cluster_up_down"]
fn cluster_up_down() {
    let root = root();
    let cluster = root.join("target/cluster");
    let tools = root.join("target/tools");

    // A failed assertion still takes the cluster down.
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            if std::thread::panicking() {
                xtask(&["cluster", "down"]);
            }
        }
    }
    let _down = Down;
    let up = xtask(&["cluster", "up"]);
    assert!(up.status.success(), "cluster up failed");
    let stdout = String::from_utf8_lossy(&up.stdout);
    let kubeconfig = cluster.join("kubeconfig");
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "up prints the kubeconfig: {stdout}"
    );

    let kubectl_path = String::from_utf8(xtask(&["tools", "--print", "kubectl"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    let (ok, readyz) = kubectl(
        &kubectl_path,
        &kubeconfig,
        &["get", "--raw", "/readyz?verbose"],
    );
    assert!(
        ok && readyz.contains("[+]etcd ok") && readyz.contains("readyz check passed"),
        "{readyz}"
    );
    let (ok, nodes) = kubectl(
        &kubectl_path,
        &kubeconfig,
        &["get", "nodes", "--no-headers"],
    );
    assert!(
        ok && nodes.split_whitespace().take(2).collect::<Vec<_>>() == ["process-node", "Ready"],
        "{nodes}"
    );
    let (ok, sc) = kubectl(
        &kubectl_path,
        &kubeconfig,
        &["get", "storageclass", "--no-headers"],
    );
    assert!(ok && sc.contains("(default)"), "{sc}");
    // PodSecurity admission enforces a namespace's label.
    let (ok, _) = kubectl(
        &kubectl_path,
        &kubeconfig,
        &["create", "namespace", "psa-probe"],
    );
    assert!(ok);
    let (ok, _) = kubectl(
        &kubectl_path,
        &kubeconfig,
        &[
            "label",
            "namespace",
            "psa-probe",
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    );
    assert!(ok);
    // The controller-manager creates the namespace's default ServiceAccount, which
    // admission needs before it gets to PodSecurity.
    let sa_ready = (0..60).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        kubectl(
            &kubectl_path,
            &kubeconfig,
            &["-n", "psa-probe", "get", "serviceaccount", "default"],
        )
        .0
    });
    assert!(
        sa_ready,
        "the controller-manager made the default ServiceAccount"
    );
    let (ok, refused) = kubectl(
        &kubectl_path,
        &kubeconfig,
        &[
            "-n",
            "psa-probe",
            "run",
            "root-pod",
            "--image=debian",
            "--restart=Never",
        ],
    );
    assert!(
        !ok && refused.contains("violates PodSecurity \"restricted:latest\""),
        "{refused}"
    );

    let status = xtask(&["cluster", "status"]);
    assert!(status.status.success(), "every component healthy");
    assert!(
        !cluster_processes(&tools, &cluster).is_empty(),
        "the probe for leftovers sees a running cluster"
    );

    let down = xtask(&["cluster", "down"]);
    assert!(down.status.success());
    assert!(!cluster.exists(), "down removes {}", cluster.display());
    let left = cluster_processes(&tools, &cluster);
    assert!(left.is_empty(), "processes left after down: {left:#?}");
    for port in [2379, 2380, 2381, 6443, 10257, 10259] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken after down"
        );
    }
    let status = xtask(&["cluster", "status"]);
    assert!(
        !status.status.success(),
        "status reports no cluster after down"
    );
}

/// Refused before anything is built or started, in one line naming the fix.
#[test]
fn up_as_another_user_than_root_is_refused_in_one_line() {
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let mut c = if nix_is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", xtask]);
        c
    } else {
        Command::new(xtask)
    };
    let out = c
        .args(["cluster", "up"])
        .current_dir(root())
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.starts_with("error: cargo xtask cluster up must run as root (this is uid "),
        "{stderr}"
    );
    assert!(
        stderr.contains("sudo -E cargo xtask cluster up"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
