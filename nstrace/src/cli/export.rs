//! The HTTP and monitoring flags of `nstrace serve` (and of `nstrace
//! export`, its older name, which runs the same service with the same
//! defaults).

use std::{net::SocketAddr, time::Duration};

use crate::{
    cli::trace::parse_seconds,
    error::{Error, Result},
};

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Address to serve on (IP:PORT).
    #[arg(long, default_value = "127.0.0.1:9764")]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address. The endpoints have no
    /// authentication and /namespaces shows every process's command.
    #[arg(long)]
    pub allow_remote: bool,
    /// How old a namespace that no task uses must be to count as a leak suspect (300, 5m, 1h, ...).
    #[arg(long, value_parser = parse_seconds, default_value = "300")]
    pub leak_age: Duration,
    /// Add nstrace_container_namespaces{runtime,container,type} (container
    /// ids as labels; capped by --per-container-cap).
    #[arg(long)]
    pub per_container: bool,
    /// Most containers labelled by --per-container; the rest are "other".
    #[arg(long, default_value_t = 100)]
    pub per_container_cap: usize,
    #[command(flatten)]
    pub walk: crate::cli::WalkArgs,
    /// Most namespaces kept in memory; destroyed rows are evicted first.
    #[arg(long, default_value_t = 100_000)]
    pub max_rows: usize,
    /// Time between holder refreshes (/proc scan and task walk) that set states (1, 500ms, 5s, ...).
    #[arg(long, value_parser = parse_seconds, default_value = "1")]
    pub refresh: Duration,
    #[command(flatten)]
    pub mechanisms: crate::cli::MechanismArgs,
}

/// Refuses non-loopback addresses without `--allow-remote`.
pub fn check_listen(listen: SocketAddr, allow_remote: bool) -> Result<()> {
    if allow_remote || listen.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "refusing to listen on {listen}: not a loopback address, and /metrics and /namespaces have no \
         authentication; pass --allow-remote to serve other hosts (behind a firewall or network policy)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addresses_need_allow_remote() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_listen(a("127.0.0.1:9764"), false).is_ok());
        assert!(check_listen(a("127.5.0.1:1"), false).is_ok());
        assert!(check_listen(a("[::1]:9764"), false).is_ok());
        assert!(check_listen(a("[::ffff:127.0.0.1]:9764"), false).is_ok());
        let err = check_listen(a("0.0.0.0:1"), false).unwrap_err().to_string();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(check_listen(a("[::]:9764"), false).is_err());
        assert!(check_listen(a("0.0.0.0:9764"), true).is_ok());
    }
}
