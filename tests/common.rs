//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository (or `$VOCMINE_SHARED`), if present. Absent data makes a
/// test skip with a printed reason, except under CI, where it must be there.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let base = std::env::var_os("VOCMINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let p = base.join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing, and CI must have ../shared", p.display());
    }
    eprintln!("SKIP: {} not found (../shared is absent here)", p.display());
    None
}

/// The shipped model bundle.
pub fn model_dir() -> PathBuf {
    root().join("models")
}

/// Every line of a JSONL file, parsed.
pub fn read_jsonl(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs the vocmine binary in `dir` with its embedding cache there; panics with the output
/// unless it succeeds, else returns stdout.
pub fn vocmine_in(dir: &std::path::Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
    cmd.current_dir(dir).env("VOCMINE_CACHE", dir.join("cache"));
    run_checked(cmd, args)
}

/// Runs `cmd` (its arguments set) expecting it to fail; panics if it succeeds, else returns
/// stderr (the error message the user sees).
pub fn stderr_of_failure(mut cmd: std::process::Command) -> String {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{cmd:?} succeeded\n{err}");
    err
}

/// Runs `cmd` with `args`; panics with the output unless it succeeds, else returns stdout.
pub fn run_checked(mut cmd: std::process::Command, args: &[&str]) -> String {
    let o = cmd.args(args).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{args:?}\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A GET request to a server on this machine: the status and the JSON body (Null if none).
pub fn http_get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text[9..12].parse().unwrap();
    let body_start = text.find("\r\n\r\n").unwrap() + 4;
    let mut body = &text[body_start..];
    // Chunked transfer: take the first chunk's payload.
    if text[..body_start]
        .to_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let nl = body.find("\r\n").unwrap();
        let len = usize::from_str_radix(body[..nl].trim(), 16).unwrap();
        body = &body[nl + 2..nl + 2 + len];
    }
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Starts `vocmine serve INDEX` on a free loopback port; returns the child and its address
/// (read from the line it prints on stderr).
pub fn start_server(index: &std::path::Path) -> (std::process::Child, String) {
    start_serve([index.as_os_str(), "--addr".as_ref(), "127.0.0.1:0".as_ref()])
}

/// Starts `vocmine serve ARGS...` (which must bind a free port, `--addr 127.0.0.1:0`); returns
/// the child and the address it prints on stderr.
pub fn start_serve<I, S>(args: I) -> (std::process::Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"))
        .arg("serve")
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

/// One HTTP/1.1 request (Connection: close): status, head and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req += &format!("Host: {addr}\r\n");
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let split = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
    let head = text[..split].to_lowercase();
    let mut body = text[split..].to_string();
    if head.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body.as_str();
        while let Some(nl) = rest.find("\r\n") {
            let len = usize::from_str_radix(rest[..nl].trim(), 16).unwrap_or(0);
            if len == 0 {
                break;
            }
            out += &rest[nl + 2..nl + 2 + len];
            rest = &rest[nl + 2 + len + 2..];
        }
        body = out;
    }
    (status, head, body)
}

/// Sends SIGTERM to `child` and waits (at most 60 s) for its exit status.
pub fn sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let t0 = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
