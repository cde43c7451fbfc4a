//! One module per subcommand.

pub mod doctor;
pub mod ls;
pub mod trace;
