//! One module per subcommand.

pub mod diff;
pub mod doctor;
pub mod export;
pub mod leaks;
pub mod live;
pub mod ls;
pub mod trace;
pub mod why;
