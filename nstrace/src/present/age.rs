//! Ages as people read them, in one place: `ls`'s AGE column and the text
//! answers take the largest unit ("42s", "17m", "5h", "3d"); the live view
//! adds the next one ("3m07s", "2h05m", "3d04h").

/// Seconds in each unit, largest last, with its letter.
const UNITS: [(u64, char); 4] = [(1, 's'), (60, 'm'), (3600, 'h'), (86_400, 'd')];

/// The largest unit that fits `secs` (negative ages are clock skew: 0).
fn unit(secs: u64) -> usize {
    UNITS.iter().rposition(|(size, _)| secs >= *size).unwrap_or(0)
}

/// "42s", "17m", "5h", "3d".
pub fn coarse(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (size, letter) = UNITS[unit(s)];
    format!("{}{letter}", s / size)
}

/// "42s", "3m07s", "2h05m", "3d04h"; "-" when unknown.
pub fn fine(secs: Option<f64>) -> String {
    let Some(secs) = secs else { return "-".into() };
    let s = secs.max(0.0) as u64;
    let i = unit(s);
    let (size, letter) = UNITS[i];
    if i == 0 {
        return format!("{s}{letter}");
    }
    let (next, next_letter) = UNITS[i - 1];
    let next_count = size / next;
    format!("{}{letter}{:02}{next_letter}", s / size, s / next % next_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_ages_take_the_largest_unit() {
        for (secs, want) in [(-3.0, "0s"), (0.0, "0s"), (59.9, "59s"), (60.0, "1m"), (3599.0, "59m"), (3600.0, "1h")] {
            assert_eq!(coarse(secs), want, "{secs}");
        }
        assert_eq!(coarse(86_399.0), "23h");
        assert_eq!(coarse(3.0 * 86_400.0 + 7.0), "3d");
    }

    #[test]
    fn fine_ages_add_the_next_unit() {
        assert_eq!(fine(None), "-");
        assert_eq!(fine(Some(42.0)), "42s");
        assert_eq!(fine(Some(187.0)), "3m07s");
        assert_eq!(fine(Some(2.0 * 3600.0 + 5.0 * 60.0 + 59.0)), "2h05m");
        assert_eq!(fine(Some(3.0 * 86_400.0 + 4.0 * 3600.0 + 1.0)), "3d04h");
        assert_eq!(fine(Some(-1.0)), "0s");
    }
}
