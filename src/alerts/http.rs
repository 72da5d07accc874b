//! A small blocking HTTP/1.1 client for webhooks: `POST` of a JSON body over plain HTTP on
//! std's `TcpStream`, with connect, write and read timeouts. Only the status line of the
//! answer is read. `https://` is refused with a clear error when the routes are read (put a
//! local relay in front of an https receiver).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// Host as written (IPv6 without brackets).
    host: String,
    /// Port (80 when absent).
    port: u16,
    /// Path and query (`/` when absent), without the fragment.
    path: String,
}

impl Url {
    /// Parses an `http://host[:port][/path][?query]` URL; a message says what is wrong.
    pub(crate) fn parse(s: &str) -> Result<Url, String> {
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a URL has no spaces or control characters".into());
        }
        let lower = s.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &s["http://".len()..]
        } else if lower.starts_with("https://") {
            return Err(
                "https is not supported: give an http:// URL (a local relay can forward to https)"
                    .into(),
            );
        } else {
            return Err(format!("{s:?} is not an http:// URL"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let close = v6.find(']').ok_or("unclosed [ in the host")?;
            let after = &v6[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err("junk after the IPv6 host".into()),
            };
            (&v6[..close], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("bad port {p:?}"))?,
            None => 80,
        };
        let tail = tail.split('#').next().unwrap_or("");
        let path = if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// `http://host:port`: where a webhook goes, without the path (a hook's path is often its
    /// secret, so logs and messages show only this).
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.host_header())
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// POSTs `body` as JSON to `url` with the extra `headers`; returns the answer's status code.
/// Every step (connect, write, read of the status line) has `timeout`.
pub(crate) fn post_json(
    url: &Url,
    body: &[u8],
    headers: &[(&str, &str)],
    timeout: Duration,
) -> std::io::Result<u16> {
    let addrs: Vec<_> = (url.host.as_str(), url.port).to_socket_addrs()?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut s = stream.ok_or(last)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: vocmine/{}\r\nConnection: close\r\n",
        url.path,
        url.host_header(),
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req)?;
    s.flush()?;
    read_status(&mut s)
}

/// Reads the status line (`HTTP/1.x NNN ...`) of an answer, at most 8 KiB.
fn read_status(s: &mut impl Read) -> std::io::Result<u16> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        if buf.len() > 8192 {
            return Err(bad("no status line in the first 8 KiB of the answer"));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("the receiver closed the connection without an answer"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code
            .parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| bad("bad status code in the answer")),
        _ => Err(bad("the answer is not HTTP/1.x")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_ports_paths_and_ipv6_and_https_is_refused() {
        let u = Url::parse("http://127.0.0.1:8080/hooks/abc?x=1#frag").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.path, "/hooks/abc?x=1");
        assert_eq!(u.origin(), "http://127.0.0.1:8080");
        let u = Url::parse("HTTP://example.org").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.origin(), "http://[::1]:9");
        assert!(Url::parse("https://x.org/")
            .unwrap_err()
            .contains("https is not supported"));
        for bad in [
            "ftp://x",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://u:p@h/",
            "http://h/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_status_line_is_read_and_junk_refused() {
        let mut ok = &b"HTTP/1.1 204 No Content\r\n\r\n"[..];
        assert_eq!(read_status(&mut ok).unwrap(), 204);
        let mut junk = &b"SSH-2.0-OpenSSH\r\n"[..];
        assert!(read_status(&mut junk).is_err());
        let mut cut = &b"HTTP/1.1 2"[..];
        assert!(read_status(&mut cut).is_err());
    }
}
