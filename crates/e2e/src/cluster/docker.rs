//! Is there a Docker daemon to start k3s in? A plain `GET /_ping` with a short timeout, so
//! `--backend k3s` fails in seconds (and `--backend auto` falls back) on machines without one.
//!
//! Only the endpoint testcontainers itself would use is probed: `$DOCKER_HOST`, else the
//! default socket. A `docker` CLI on PATH proves nothing — the daemon is what k3s needs.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Long enough for a busy daemon, short enough that a missing one is reported at once.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// The daemon endpoint (`unix:///…` or `tcp://…`) when it answers `/_ping`, otherwise a
/// sentence naming the endpoint and why it failed, e.g.
/// `no Docker daemon at unix:///var/run/docker.sock (connect: No such file or directory)`.
pub fn docker_daemon() -> Result<String, String> {
    let endpoint = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => DEFAULT_DOCKER_HOST.to_string(),
    };
    let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
    probe(&endpoint, tls, PING_TIMEOUT)
}

/// Probes one endpoint; split out so tests can aim it at sockets they control.
pub fn probe(endpoint: &str, tls: bool, timeout: Duration) -> Result<String, String> {
    let fail = |reason: String| Err(no_daemon(endpoint, &reason));
    if let Some(path) = endpoint.strip_prefix("unix://") {
        match ping_unix(Path::new(path), timeout) {
            Ok(()) => Ok(endpoint.to_string()),
            Err(reason) => fail(reason),
        }
    } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
        // A TLS-protected daemon would need its client certificates to answer; that it
        // accepts connections is as far as a cheap probe can go (testcontainers does the rest).
        match ping_tcp(addr.trim_end_matches('/'), !tls, timeout) {
            Ok(()) => Ok(endpoint.to_string()),
            Err(reason) => fail(reason),
        }
    } else {
        fail(
            "only unix:// and tcp:// endpoints can be probed; set DOCKER_HOST to one of those"
                .into(),
        )
    }
}

/// The message `--backend auto` prints and `--backend k3s` extends with its advice.
fn no_daemon(endpoint: &str, reason: &str) -> String {
    format!("no Docker daemon at {endpoint} ({reason})")
}

fn ping_unix(path: &Path, timeout: Duration) -> Result<(), String> {
    // std's UnixStream has no connect timeout, but connecting to a local socket either
    // succeeds or fails immediately; only the exchange afterwards can hang.
    let mut stream =
        UnixStream::connect(path).map_err(|e| format!("connect: {}", io_reason(&e)))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    exchange(&mut stream)
}

fn ping_tcp(addr: &str, http: bool, timeout: Duration) -> Result<(), String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)
        .map_err(|e| format!("connect: {}", io_reason(&e)))?;
    if !http {
        return Ok(());
    }
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    exchange(&mut stream)
}

fn exchange(stream: &mut (impl Read + Write)) -> Result<(), String> {
    // HTTP/1.0 so the daemon closes the connection after answering and read_to_end ends.
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| format!("send /_ping: {}", io_reason(&e)))?;
    let mut buf = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read /_ping answer: {}", io_reason(&e)))?;
    judge_ping_answer(&String::from_utf8_lossy(&buf))
}

/// `HTTP/1.x 200` with body `OK` is a daemon; anything else is described.
fn judge_ping_answer(answer: &str) -> Result<(), String> {
    let status = answer.lines().next().unwrap_or("").trim();
    let mut parts = status.split_whitespace();
    let proto = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/") {
        return Err(format!(
            "/_ping answer is not HTTP: {:?}",
            truncate(status, 60)
        ));
    }
    if code != "200" {
        return Err(format!("/_ping answered {:?}", truncate(status, 60)));
    }
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or("");
    if body != "OK" {
        return Err(format!(
            "/_ping answered 200 with body {:?}, not OK",
            truncate(body, 60)
        ));
    }
    Ok(())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".into(),
        // Strip std's " (os error N)" tail: the sentence is for people.
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread;

    use rstest::rstest;

    use super::*;

    /// A one-shot fake daemon on a Unix socket that answers the first request with `answer`.
    fn fake_daemon(answer: &'static str) -> (tempfile::TempDir, String, thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let handle = thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut req = [0u8; 512];
                let _ = conn.read(&mut req);
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        (dir, format!("unix://{}", sock.display()), handle)
    }

    #[test]
    fn missing_socket_names_endpoint_and_cause() {
        let dir = tempfile::tempdir().expect("temp dir");
        let endpoint = format!("unix://{}/docker.sock", dir.path().display());
        let err =
            probe(&endpoint, false, Duration::from_secs(1)).expect_err("no socket, no daemon");
        assert_eq!(
            err,
            format!("no Docker daemon at {endpoint} (connect: No such file or directory)")
        );
    }

    #[test]
    fn daemon_answering_ok_is_found() {
        let (_dir, endpoint, h) = fake_daemon("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        assert_eq!(
            probe(&endpoint, false, Duration::from_secs(2)),
            Ok(endpoint.clone())
        );
        h.join().expect("fake daemon thread");
    }

    #[test]
    fn daemon_answering_500_is_not_a_daemon() {
        let (_dir, endpoint, h) = fake_daemon("HTTP/1.1 500 Internal Server Error\r\n\r\nboom");
        let err = probe(&endpoint, false, Duration::from_secs(2)).expect_err("500");
        assert!(
            err.contains("/_ping answered \"HTTP/1.1 500 Internal Server Error\""),
            "{err}"
        );
        h.join().expect("fake daemon thread");
    }

    #[test]
    fn silent_socket_times_out_quickly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("docker.sock");
        let _listener = UnixListener::bind(&sock).expect("bind"); // accepts (backlog), never answers
        let endpoint = format!("unix://{}", sock.display());
        let started = std::time::Instant::now();
        let err = probe(&endpoint, false, Duration::from_millis(300)).expect_err("silence");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(err.ends_with("(read /_ping answer: timed out)"), "{err}");
    }

    #[test]
    fn unsupported_scheme_is_refused_with_the_accepted_ones() {
        let err = probe("ssh://me@host", false, Duration::from_secs(1)).expect_err("ssh");
        assert_eq!(
            err,
            "no Docker daemon at ssh://me@host (only unix:// and tcp:// endpoints can be probed; set DOCKER_HOST to one of those)"
        );
    }

    #[rstest]
    #[case::ok_body_accepted("HTTP/1.1 200 OK\r\n\r\nOK", true)]
    #[case::http_1_0_accepted("HTTP/1.0 200 OK\r\nApi-Version: 1.47\r\n\r\nOK\n", true)]
    #[case::other_body_refused("HTTP/1.1 200 OK\r\n\r\n<html>proxy</html>", false)]
    #[case::not_http_refused("SSH-2.0-OpenSSH_9.6\r\n", false)]
    #[case::empty_answer_refused("", false)]
    fn ping_answer_judgement(#[case] answer: &str, #[case] is_daemon: bool) {
        assert_eq!(
            judge_ping_answer(answer).is_ok(),
            is_daemon,
            "{:?}",
            judge_ping_answer(answer)
        );
    }
}
