//! An error with its causes on one line (a leaf: every layer may use it).

use std::fmt;

/// Displays an error and its causes, "what failed: why: root cause": the
/// way `main` prints errors, and the way to put an error into a string
/// (a plain `{e}` or `to_string()` drops the causes).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// `Chain(e).to_string()`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    Chain(e).to_string()
}
