//! How long each phase of a snapshot took: `ls --timings` and the
//! benchmark's per-phase table.

use std::time::{Duration, Instant};

/// Phase durations in the order they ran.
#[derive(Debug)]
pub struct Phases {
    last: Instant,
    list: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub fn start() -> Phases {
        Phases { last: Instant::now(), list: Vec::new() }
    }

    /// Ends the phase `name`: the time since the previous mark.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.list.push((name, now - self.last));
        self.last = now;
    }

    /// Appends phases measured elsewhere (they already ran), and restarts
    /// the clock.
    pub fn extend(&mut self, phases: &[(&'static str, Duration)]) {
        self.list.extend_from_slice(phases);
        self.last = Instant::now();
    }

    pub fn into_list(self) -> Vec<(&'static str, Duration)> {
        self.list
    }

    pub fn list(&self) -> &[(&'static str, Duration)] {
        &self.list
    }
}

/// One line per phase, `timing <phase>: <ms> ms`, then the total.
pub fn write(out: &mut dyn std::io::Write, phases: &[(&'static str, Duration)]) -> std::io::Result<()> {
    let mut total = Duration::ZERO;
    for (name, d) in phases {
        total += *d;
        writeln!(out, "timing {name}: {:.2} ms", d.as_secs_f64() * 1e3)?;
    }
    writeln!(out, "timing total: {:.2} ms", total.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_listed_in_order_with_a_total() {
        let phases = [("walk", Duration::from_micros(1500)), ("render", Duration::from_micros(250))];
        let mut out = Vec::new();
        write(&mut out, &phases).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "timing walk: 1.50 ms\ntiming render: 0.25 ms\ntiming total: 1.75 ms\n"
        );
    }

    #[test]
    fn a_mark_ends_a_phase_and_extend_keeps_earlier_ones() {
        let mut p = Phases::start();
        p.extend(&[("earlier", Duration::from_millis(3))]);
        p.mark("now");
        let names: Vec<_> = p.list().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["earlier", "now"]);
        assert_eq!(p.list()[0].1, Duration::from_millis(3));
    }
}
