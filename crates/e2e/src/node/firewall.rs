//! What kube-router's NetworkPolicy controller leaves in the kernel: its chains in iptables'
//! filter table, the jumps to them from INPUT, FORWARD and OUTPUT, and its ipsets. kube-router
//! does not remove them when it stops, and its own `--cleanup-config` first tears down the
//! IPVS proxy (which this cluster does not run) and panics there, so the sweep removes exactly
//! what the controller names as its own and nothing else in the table (a host's Docker or
//! firewall rules stay), then the table itself if nothing is left in it.

use std::io::Write;
use std::process::{Command, Stdio};

/// The chains the controller makes: its three entry chains, one per pod it guards and one per
/// policy (kube-router's `kubeInputChainName`, `kubePodFirewallChainPrefix`, …).
const CHAIN_PREFIXES: [&str; 3] = ["KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-"];
/// The ipsets it fills with the pods a policy selects and admits.
const IPSET_PREFIXES: [&str; 2] = ["KUBE-SRC-", "KUBE-DST-"];
const BUILT_IN: [&str; 3] = ["INPUT", "FORWARD", "OUTPUT"];

fn is_ours(chain: &str) -> bool {
    CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// From `iptables-save -t filter`, the `iptables-restore --noflush` input that deletes the
/// controller's jumps from the built-in chains, then empties and deletes its chains. `None`
/// when the table holds nothing of it.
pub fn cleanup_script(save: &str) -> Option<String> {
    let mut chains = Vec::new();
    let mut jumps = Vec::new();
    let mut in_filter = false;
    for line in save.lines() {
        let line = line.trim_end();
        if let Some(table) = line.strip_prefix('*') {
            in_filter = table == "filter";
            continue;
        }
        if !in_filter {
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if is_ours(name) {
                chains.push(name.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            let target = rule.rsplit_once(" -j ").map(|(_, t)| t.trim());
            if BUILT_IN.contains(&chain) && target.is_some_and(is_ours) {
                jumps.push(format!("-D {rule}"));
            }
        }
    }
    if chains.is_empty() && jumps.is_empty() {
        return None;
    }
    let mut out = vec!["*filter".to_string()];
    out.extend(jumps);
    out.extend(chains.iter().map(|c| format!("-F {c}")));
    out.extend(chains.iter().map(|c| format!("-X {c}")));
    out.push("COMMIT".into());
    Some(out.join("\n") + "\n")
}

/// Whether `iptables-save -t filter` shows a table that does nothing: only the built-in
/// chains, each with policy ACCEPT, and no rule. iptables' nf_tables backend creates that
/// table for kube-router's first rule; once its rules are gone, removing the table leaves the
/// host as it was (a table holding anyone else's rule or policy is kept).
pub fn filter_table_is_inert(save: &str) -> bool {
    let mut seen = false;
    for line in save.lines().map(str::trim_end) {
        if line.starts_with('#') || line.is_empty() || line == "COMMIT" {
            continue;
        }
        if line == "*filter" {
            seen = true;
            continue;
        }
        match line.strip_prefix(':') {
            Some(decl) => {
                let mut f = decl.split_whitespace();
                let (chain, policy) = (f.next().unwrap_or_default(), f.next().unwrap_or_default());
                if !BUILT_IN.contains(&chain) || policy != "ACCEPT" {
                    return false;
                }
            }
            None => return false,
        }
    }
    seen
}

/// From `ipset list -n`, the sets the controller made.
pub fn ipsets(list: &str) -> Vec<String> {
    list.lines()
        .map(str::trim)
        .filter(|n| IPSET_PREFIXES.iter().any(|p| n.starts_with(p)))
        .map(str::to_string)
        .collect()
}

/// Removes the controller's rules and sets (after it has stopped); returns what went. A host
/// without iptables or ipset has none of them.
pub fn sweep() -> Vec<String> {
    let mut removed = Vec::new();
    let save = Command::new("iptables-save")
        .args(["-t", "filter"])
        .output();
    if let Ok(o) = save
        && o.status.success()
        && let Some(script) = cleanup_script(&String::from_utf8_lossy(&o.stdout))
    {
        let rules = script.lines().filter(|l| l.starts_with("-X ")).count();
        let applied = Command::new("iptables-restore")
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(script.as_bytes())?;
                }
                child.wait_with_output()
            });
        match applied {
            Ok(o) if o.status.success() => removed.push(format!(
                "{rules} kube-router iptables chains and their jumps"
            )),
            Ok(o) => tracing::warn!(
                stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                "iptables-restore refused the kube-router cleanup"
            ),
            Err(e) => tracing::warn!(error = %e, "could not run iptables-restore"),
        }
    }
    if let Ok(o) = Command::new("iptables-save")
        .args(["-t", "filter"])
        .output()
        && o.status.success()
        && filter_table_is_inert(&String::from_utf8_lossy(&o.stdout))
        && Command::new("nft")
            .args(["delete", "table", "ip", "filter"])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        removed.push("the emptied nftables table ip filter".into());
    }
    if let Ok(o) = Command::new("ipset").args(["list", "-n"]).output()
        && o.status.success()
    {
        for set in ipsets(&String::from_utf8_lossy(&o.stdout)) {
            if Command::new("ipset")
                .args(["destroy", &set])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                removed.push(format!("ipset {set}"));
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from `iptables-save -t filter` on the local cluster with one policy, beside a
    /// rule of the host's own that must stay.
    const SAVED: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [1408:48917599]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [1324:48913231]
:DOCKER - [0:0]
:KUBE-NWPLCY-DEFAULT - [0:0]
:KUBE-POD-FW-KGKHY5CTFMYCY2HK - [0:0]
:KUBE-ROUTER-FORWARD - [0:0]
-A INPUT -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT
-A FORWARD -j DOCKER
-A FORWARD -m comment --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD
-A KUBE-ROUTER-FORWARD -d 10.244.0.2/32 -m comment --comment "rule to jump traffic destined to POD name:c-chromadb-0 namespace: np1 to chain KUBE-POD-FW-KGKHY5CTFMYCY2HK" -j KUBE-POD-FW-KGKHY5CTFMYCY2HK
COMMIT
"#;

    #[test]
    fn the_cleanup_deletes_the_jumps_then_empties_and_deletes_only_kube_routers_chains() {
        let script = cleanup_script(SAVED).expect("kube-router's rules are there");
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines,
            [
                "*filter",
                r#"-D INPUT -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT"#,
                r#"-D FORWARD -m comment --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD"#,
                "-F KUBE-NWPLCY-DEFAULT",
                "-F KUBE-POD-FW-KGKHY5CTFMYCY2HK",
                "-F KUBE-ROUTER-FORWARD",
                "-X KUBE-NWPLCY-DEFAULT",
                "-X KUBE-POD-FW-KGKHY5CTFMYCY2HK",
                "-X KUBE-ROUTER-FORWARD",
                "COMMIT",
            ]
        );
        assert!(!script.contains("DOCKER"), "{script}");
    }

    #[test]
    fn a_table_without_kube_router_needs_no_cleanup() {
        let host_only =
            "*filter\n:INPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n-A FORWARD -j DOCKER\nCOMMIT\n";
        assert_eq!(cleanup_script(host_only), None);
        assert_eq!(cleanup_script(""), None);
    }

    #[test]
    fn only_an_empty_accepting_filter_table_is_inert() {
        let emptied = "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        assert!(filter_table_is_inert(emptied));
        assert!(
            !filter_table_is_inert(SAVED),
            "kube-router's and the host's rules"
        );
        let dropping = emptied.replace(":FORWARD ACCEPT", ":FORWARD DROP");
        assert!(!filter_table_is_inert(&dropping), "a host's DROP policy");
        let with_rule = emptied.replace("COMMIT", "-A INPUT -j ACCEPT\nCOMMIT");
        assert!(!filter_table_is_inert(&with_rule));
        assert!(!filter_table_is_inert(""), "no table at all");
    }

    #[test]
    fn only_the_controllers_sets_are_destroyed() {
        assert_eq!(
            ipsets("KUBE-DST-LYJRREYOZJQX35DZ\ndocker-set\nKUBE-SRC-ABC\n"),
            ["KUBE-DST-LYJRREYOZJQX35DZ", "KUBE-SRC-ABC"]
        );
    }
}
