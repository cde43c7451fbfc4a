//! One module per subcommand.

pub mod diff;
pub mod doctor;
pub mod leaks;
pub mod export;
pub mod live;
pub mod ls;
pub mod trace;
pub mod why;
