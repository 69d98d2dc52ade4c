//! `tessera stats|namespaces|purge|get|put`: the admin API (`protocols::admin`) from a shell,
//! against a running server.
//!
//! ```text
//! tessera stats      [--server URL] [--token T]
//! tessera namespaces [--server URL] [--token T]
//! tessera purge NAMESPACE
//! tessera get NAMESPACE KEY [FILE]     (no FILE: the bytes go to stdout)
//! tessera put NAMESPACE KEY FILE
//! ```
//!
//! A small blocking HTTP/1.1 client (the server always sends `Content-Length`); `--token` goes
//! as `Authorization: Bearer`. Transfers of at least [`PROGRESS_BYTES_MIN`] show progress when
//! stderr is a terminal. Exit status: 0 done, 1 the server refused (its JSON error message is
//! printed), 2 bad usage or the server could not be reached.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Transfers at least this large show progress on a terminal.
pub const PROGRESS_BYTES_MIN: u64 = 1 << 20;
/// Copy buffer of a transfer.
const COPY_BUFFER_BYTES: usize = 256 << 10;
/// Longest response head the client reads.
const RESPONSE_HEAD_BYTES_MAX: usize = 64 << 10;
/// How long the client waits for the server to connect or answer.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server is and who is asking.
pub struct Server {
    /// `host:port`.
    pub authority: String,
    pub token: Option<String>,
}

/// What went wrong, and the exit status it gets.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with an error (status, message).
    Refused(u16, String),
    /// Usage or connection problems.
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(..) => 1,
            CliError::Failed(_) => 2,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Refused(status, message) => write!(f, "server answered {status}: {message}"),
            CliError::Failed(message) => f.write_str(message),
        }
    }
}

impl Server {
    /// `http://HOST:PORT[/]` (https is not served by Tessera).
    pub fn new(url: &str, token: Option<String>) -> Result<Server, CliError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| CliError::Failed(format!("--server `{url}` must start with http://")))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(CliError::Failed(format!(
                "--server `{url}` must be http://HOST:PORT"
            )));
        }
        let authority = match authority.contains(':') {
            true => authority.to_owned(),
            false => format!("{authority}:80"),
        };
        Ok(Server { authority, token })
    }

    fn connect(&self) -> Result<TcpStream, CliError> {
        let stream = TcpStream::connect(&self.authority)
            .map_err(|e| CliError::Failed(format!("cannot reach {}: {e}", self.authority)))?;
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        Ok(stream)
    }

    /// Sends a request with `body_len` bytes copied from `body`; returns the status, the
    /// response's length and a reader positioned at its body.
    fn request(
        &self,
        method: &str,
        target: &str,
        body_len: u64,
        body: Option<&mut dyn Read>,
    ) -> Result<(u16, u64, BufReader<TcpStream>), CliError> {
        let failed = |e: io::Error| CliError::Failed(format!("talking to {}: {e}", self.authority));
        let mut stream = self.connect()?;
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nhost: {}\r\ncontent-length: {body_len}\r\nconnection: close\r\n",
            self.authority
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(failed)?;
        if let Some(body) = body {
            copy_with_progress(body, &mut stream, body_len, "upload").map_err(failed)?;
        }
        let mut reader = BufReader::new(stream);
        let (status, length) = read_head(&mut reader).map_err(failed)?;
        Ok((status, length, reader))
    }

    /// A request whose answer is JSON: the body on 2xx, else the error's message.
    fn json(&self, method: &str, target: &str) -> Result<String, CliError> {
        let (status, length, reader) = self.request(method, target, 0, None)?;
        let body = read_all(reader, length)?;
        match status {
            200..=299 => Ok(body),
            _ => Err(CliError::Refused(status, error_message(&body))),
        }
    }
}

/// The message of `{"error":{"message":…}}`, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

fn read_all(reader: BufReader<TcpStream>, length: u64) -> Result<String, CliError> {
    let mut body = String::new();
    reader
        .take(length)
        .read_to_string(&mut body)
        .map_err(|e| CliError::Failed(format!("reading the answer: {e}")))?;
    Ok(body)
}

/// Reads a response head: the status and `Content-Length`.
fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, u64)> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    let mut read = 0;
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("not an HTTP response"))?;
    let mut length = None;
    loop {
        line.clear();
        read += reader.read_line(&mut line)?;
        if read > RESPONSE_HEAD_BYTES_MAX {
            return Err(invalid("response head too long"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
        }
    }
    Ok((status, length.ok_or_else(|| invalid("no Content-Length"))?))
}

/// Copies `len` bytes, showing progress on a terminal for large transfers.
fn copy_with_progress(
    from: &mut dyn Read,
    to: &mut dyn Write,
    len: u64,
    what: &str,
) -> io::Result<()> {
    let show = len >= PROGRESS_BYTES_MIN && io::stderr().is_terminal();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let mut done = 0u64;
    let mut shown = u64::MAX;
    while done < len {
        let want = buffer.len().min((len - done) as usize);
        let n = from.read(&mut buffer[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{what} ended after {done} of {len} bytes"),
            ));
        }
        to.write_all(&buffer[..n])?;
        done += n as u64;
        let percent = done * 100 / len;
        if show && percent != shown {
            shown = percent;
            eprint!("\r{what}: {percent:>3}% ({done} of {len} bytes)");
        }
    }
    if show {
        eprintln!();
    }
    to.flush()
}

/// A query string component, percent-encoded (everything but unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn key_query(namespace: &str, key: &str) -> String {
    format!("namespace={}&key={}", encode(namespace), encode(key))
}

/// Pretty-prints a JSON answer.
fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| body.to_owned())
}

pub fn stats(server: &Server) -> Result<(), CliError> {
    println!("{}", pretty(&server.json("GET", "/admin/stats")?));
    Ok(())
}

pub fn namespaces(server: &Server) -> Result<(), CliError> {
    println!("{}", pretty(&server.json("GET", "/admin/namespaces")?));
    Ok(())
}

pub fn purge(server: &Server, namespace: &str) -> Result<(), CliError> {
    let target = format!("/admin/namespaces?namespace={}", encode(namespace));
    println!("{}", pretty(&server.json("DELETE", &target)?));
    Ok(())
}

/// Fetches an entry into `file`, or stdout.
pub fn get(
    server: &Server,
    namespace: &str,
    key: &str,
    file: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let target = format!("/admin/blob?{}", key_query(namespace, key));
    let (status, length, reader) = server.request("GET", &target, 0, None)?;
    if !(200..=299).contains(&status) {
        return Err(CliError::Refused(
            status,
            error_message(&read_all(reader, length)?),
        ));
    }
    let mut reader = reader;
    let result = match file {
        Some(path) => {
            let mut out = File::create(path)
                .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", path.display())))?;
            copy_with_progress(&mut reader, &mut out, length, "download")
        }
        None => copy_with_progress(&mut reader, &mut io::stdout().lock(), length, "download"),
    };
    result.map_err(|e| CliError::Failed(format!("download: {e}")))
}

/// Stores `file` as the entry.
pub fn put(
    server: &Server,
    namespace: &str,
    key: &str,
    file: &std::path::Path,
) -> Result<(), CliError> {
    let mut input = File::open(file)
        .map_err(|e| CliError::Failed(format!("cannot open {}: {e}", file.display())))?;
    let len = input
        .metadata()
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", file.display())))?
        .len();
    let target = format!("/admin/blob?{}", key_query(namespace, key));
    let (status, length, reader) = server.request("PUT", &target, len, Some(&mut input))?;
    let body = read_all(reader, length)?;
    match status {
        200..=299 => {
            println!("stored {len} bytes as {namespace} {key}");
            Ok(())
        }
        _ => Err(CliError::Refused(status, error_message(&body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_http_host_port() {
        assert_eq!(
            Server::new("http://127.0.0.1:9/", None).unwrap().authority,
            "127.0.0.1:9"
        );
        assert_eq!(
            Server::new("http://cache", None).unwrap().authority,
            "cache:80"
        );
        for bad in ["https://x:1", "127.0.0.1:9", "http://", "http://x:1/path"] {
            assert!(Server::new(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_components_are_percent_encoded() {
        assert_eq!(encode("bazel/team a&b=c"), "bazel%2Fteam%20a%26b%3Dc");
        assert_eq!(key_query("gradle", "k1"), "namespace=gradle&key=k1");
    }

    #[test]
    fn response_heads_give_status_and_length() {
        let mut head = &b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\n\r\nrest"[..];
        assert_eq!(read_head(&mut head).unwrap(), (404, 12));
        let mut none = &b"HTTP/1.1 200 OK\r\n\r\n"[..];
        assert!(read_head(&mut none).is_err());
    }
}
