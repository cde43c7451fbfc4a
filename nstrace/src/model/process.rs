//! Processes as nstrace names them to people: kept as data (pid, command),
//! written "comm[pid]" only when shown or stored ([`fmt::Display`], and
//! the same text in the JSON and the database, read back by [`FromStr`]).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A process: its command and pid ("ip[812]").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Process {
    pub comm: String,
    pub pid: u32,
}

/// Who made a pin: the process, and its parent where the mount hook saw
/// the call ("ip[812] (parent sh[800])").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PinMaker {
    pub process: Process,
    pub parent: Option<Process>,
}

/// Text that is not a process as [`Process`] writes it.
#[derive(Debug, thiserror::Error)]
#[error("not a process as nstrace writes one (comm[pid]): {0:?}")]
pub struct NotAProcess(String);

impl Process {
    pub fn new(comm: impl Into<String>, pid: u32) -> Process {
        Process { comm: comm.into(), pid }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.comm, self.pid)
    }
}

/// The inverse of `Display` for any command: the pid is the digits after
/// the last '['.
impl FromStr for Process {
    type Err = NotAProcess;
    fn from_str(s: &str) -> Result<Process, NotAProcess> {
        s.strip_suffix(']')
            .and_then(|s| s.rsplit_once('['))
            .filter(|(_, pid)| pid.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(comm, pid)| Some(Process::new(comm, pid.parse().ok()?)))
            .ok_or_else(|| NotAProcess(s.into()))
    }
}

impl From<Process> for PinMaker {
    fn from(process: Process) -> PinMaker {
        PinMaker { process, parent: None }
    }
}

impl fmt::Display for PinMaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.parent {
            Some(parent) => write!(f, "{} (parent {parent})", self.process),
            None => self.process.fmt(f),
        }
    }
}

const PARENT: &str = " (parent ";

/// Only a maker with a parent ends in ')' (a process ends in ']'); it is
/// split at the first " (parent " that leaves a process on both sides.
impl FromStr for PinMaker {
    type Err = NotAProcess;
    fn from_str(s: &str) -> Result<PinMaker, NotAProcess> {
        let Some(inner) = s.strip_suffix(')') else { return Ok(s.parse::<Process>()?.into()) };
        inner
            .match_indices(PARENT)
            .find_map(|(i, _)| {
                let process = inner[..i].parse().ok()?;
                Some(PinMaker { process, parent: Some(inner[i + PARENT.len()..].parse().ok()?) })
            })
            .ok_or_else(|| NotAProcess(s.into()))
    }
}

macro_rules! as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

as_text!(Process);
as_text!(PinMaker);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_read_back_as_written() {
        let p = Process::new("ip", 812);
        assert_eq!(p.to_string(), "ip[812]");
        let odd = Process::new("a]b[ (parent x", 3);
        for m in [
            PinMaker::from(p.clone()),
            PinMaker { process: p.clone(), parent: Some(Process::new("sh", 800)) },
            PinMaker { process: odd.clone(), parent: Some(odd.clone()) },
            PinMaker::from(odd.clone()),
        ] {
            assert_eq!(m.to_string().parse::<PinMaker>().unwrap(), m, "{m}");
        }
        assert_eq!(
            PinMaker { process: p.clone(), parent: Some(Process::new("sh", 800)) }.to_string(),
            "ip[812] (parent sh[800])"
        );
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""ip[812]""#);
        assert_eq!(serde_json::from_str::<Process>(r#""ip[812]""#).unwrap(), p);
        assert!("ip".parse::<Process>().is_err() && "ip[x]".parse::<Process>().is_err());
    }
}
