//! The service socket: `ls`, `why`, `leaks` and `history` ask a running
//! `nstrace serve`, which answers from its store (creation, creators and
//! pins included) and its database.
//!
//! Protocol (one request per connection, each side one JSON line):
//! the client sends `{"version":1,"command":"ls","args":["--json"]}` (the
//! command's own arguments, parsed by the service exactly as the command
//! line would be) and reads `{"exit":0,"stdout":"…","stderr":"…"}` (what the
//! command would have printed, and its exit status). Anything else gets
//! `{"exit":2,"stderr":"nstrace serve: …"}`; the service never stops for a
//! bad request.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/nstrace/nstrace.sock";
/// Protocol version a request carries.
pub const VERSION: u32 = 1;
/// Longest request line the service reads.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Commands the service answers.
pub const COMMANDS: [&str; 5] = ["ls", "why", "leaks", "limits", "history"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub exit: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

impl Reply {
    pub fn error(exit: u8, message: impl std::fmt::Display) -> Reply {
        Reply { exit: exit.into(), stdout: String::new(), stderr: format!("nstrace serve: {message}\n") }
    }
}

/// Which socket a client tries: `--socket`, else `NSTRACE_SOCKET`, else the default.
pub fn socket_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("NSTRACE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("talking to nstrace serve on {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("nstrace serve on {path} sent a malformed reply")]
    Malformed { path: PathBuf, source: serde_json::Error },
}

/// Asks the service on `path`. `Ok(None)`: no service listens there (no
/// socket, or nobody accepting), so the caller falls back to a snapshot.
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Option<Reply>, RemoteError> {
    let io = |source| RemoteError::Io { path: path.into(), source };
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(request).expect("a request serializes");
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut text = Vec::new();
    stream.read_to_end(&mut text).map_err(io)?;
    serde_json::from_slice(&text).map(Some).map_err(|source| RemoteError::Malformed { path: path.into(), source })
}

/// Reads one request line (at most [`MAX_REQUEST`] bytes) and parses it.
pub fn read_request(r: impl Read) -> Result<Request, String> {
    let mut line = Vec::new();
    BufReader::new(r.take(MAX_REQUEST as u64 + 1))
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the request: {e}"))?;
    if line.len() > MAX_REQUEST {
        return Err(format!("request longer than {MAX_REQUEST} bytes"));
    }
    let req: Request = serde_json::from_slice(&line).map_err(|e| format!("malformed request: {e}"))?;
    if req.version != VERSION {
        return Err(format!("protocol version {} is not supported (this service speaks {VERSION})", req.version));
    }
    if !COMMANDS.contains(&req.command.as_str()) {
        return Err(format!("unknown command {:?} (the service answers {})", req.command, COMMANDS.join(", ")));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        let ok = read_request(&br#"{"version":1,"command":"ls","args":["--json"]}"#[..]).unwrap();
        assert_eq!(ok, Request { version: 1, command: "ls".into(), args: vec!["--json".into()] });
        let no_args = read_request(&b"{\"version\":1,\"command\":\"why\"}\nignored"[..]).unwrap();
        assert!(no_args.args.is_empty());
        for (bad, says) in [
            (&b"not json"[..], "malformed request"),
            (br#"{"version":2,"command":"ls"}"#, "version 2"),
            (br#"{"version":1,"command":"trace"}"#, "unknown command \"trace\""),
        ] {
            let e = read_request(bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let long = vec![b'x'; MAX_REQUEST + 10];
        assert!(read_request(&long[..]).unwrap_err().contains("longer than"));
    }

    #[test]
    fn no_service_is_none() {
        let req = Request { version: 1, command: "ls".into(), args: vec![] };
        assert_eq!(call(Path::new("/nonexistent/nstrace.sock"), &req, Duration::from_secs(1)).unwrap(), None);
    }

    #[test]
    fn a_reply_round_trips_over_a_socket() {
        let dir = std::env::temp_dir().join(format!("nstrace-remote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let req = read_request(&mut s).unwrap();
            let reply = Reply { exit: 1, stdout: format!("{} {:?}\n", req.command, req.args), stderr: String::new() };
            s.write_all(&serde_json::to_vec(&reply).unwrap()).unwrap();
        });
        let req = Request { version: 1, command: "leaks".into(), args: vec!["--json".into()] };
        let reply = call(&path, &req, Duration::from_secs(5)).unwrap().unwrap();
        server.join().unwrap();
        assert_eq!((reply.exit, reply.stdout.as_str()), (1, "leaks [\"--json\"]\n"));
        assert_eq!(socket_path(Some(Path::new("/x"))), PathBuf::from("/x"));
        std::fs::remove_dir_all(dir).ok();
    }
}
