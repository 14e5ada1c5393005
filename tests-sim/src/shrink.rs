//! Shrinking a failing seed: delta debugging (Zeller's ddmin) over the
//! episodes of its fault schedule — a crash and its restart, a partition
//! and its heal, a reset — run again with the same seed (so the workload
//! draws the same numbers) until no episode can be dropped without the
//! failure changing. The result is a short schedule that still fails,
//! printed with the one command that replays it
//! (`PLEXSPACES_SCHEDULE_KEEP` names the kept episodes).
//!
//! A trial counts as failing only if it fails the same way: the panic's
//! first line, with its numbers taken out, must match the original's, so a
//! shrink never wanders to another bug.

use crate::panic_text;
use plexspaces_sim::{keep_only, last_drawn, quiet_reports};
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Most trials one shrink may run.
pub const SHRINK_TRIALS_MAX: usize = 250;

/// A shrunk failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shrunk {
    /// The seed.
    pub seed: u64,
    /// The episodes kept (all others dropped).
    pub kept: Vec<usize>,
    /// Episodes in the drawn schedule.
    pub drawn_episodes: usize,
    /// Steps in the drawn schedule and in the kept one.
    pub drawn_events: usize,
    /// Steps of the shrunk schedule.
    pub events: usize,
    /// The shrunk schedule, printed.
    pub schedule: String,
    /// Scenario runs the shrink took.
    pub trials: usize,
}

impl Shrunk {
    /// The command that replays the shrunk failure of test target `test`.
    pub fn replay_command(&self, test: &str) -> String {
        let kept: Vec<String> = self.kept.iter().map(usize::to_string).collect();
        format!(
            "PLEXSPACES_SCHEDULE_KEEP={} {}",
            kept.join(","),
            crate::replay_command(test, self.seed)
        )
    }
}

/// What identifies a failure: its first line, without numbers, without the
/// `assert_eq!` boilerplate, at most 80 characters.
pub fn signature(failure: &str) -> String {
    let first = failure.lines().next().unwrap_or("");
    let first = first
        .strip_prefix("assertion `left == right` failed: ")
        .unwrap_or(first);
    first
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(80)
        .collect()
}

thread_local! {
    /// Set while a shrink runs trials on this thread: their panics are not
    /// printed.
    static SILENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once, a panic hook that stays silent on a shrinking thread
/// and defers to the previous hook everywhere else.
fn silence_trial_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !SILENT.with(|s| s.get()) {
                previous(info);
            }
        }));
    });
}

/// Shrinks the failure `failure` of `scenario` at `seed`, whose schedule
/// was the last one drawn on this thread. `None` if the scenario draws no
/// schedule.
pub fn shrink(seed: u64, failure: &str, scenario: &dyn Fn(u64)) -> Option<Shrunk> {
    let (drawn, _) = last_drawn()?;
    let wanted = signature(failure);
    let episodes = drawn.episodes();
    silence_trial_panics();
    SILENT.with(|s| s.set(true));
    quiet_reports(true);
    let mut trials = 0;
    let mut fails = |kept: &[usize]| -> bool {
        if trials >= SHRINK_TRIALS_MAX {
            return false;
        }
        trials += 1;
        keep_only(Some(kept.iter().copied().collect::<BTreeSet<usize>>()));
        match catch_unwind(AssertUnwindSafe(|| scenario(seed))) {
            Ok(()) => false,
            Err(panic) => signature(&panic_text(panic.as_ref())) == wanted,
        }
    };
    let kept = ddmin(episodes, &mut fails);
    // The shrunk schedule, drawn once more to print it.
    keep_only(Some(kept.iter().copied().collect()));
    let _ = catch_unwind(AssertUnwindSafe(|| scenario(seed)));
    let shrunk_schedule = last_drawn().map(|(_, run)| run);
    keep_only(None);
    quiet_reports(false);
    SILENT.with(|s| s.set(false));
    let shrunk_schedule = shrunk_schedule?;
    Some(Shrunk {
        seed,
        drawn_episodes: drawn.episodes().len(),
        drawn_events: drawn.faults.len(),
        events: shrunk_schedule.faults.len(),
        schedule: shrunk_schedule.to_string(),
        kept,
        trials,
    })
}

/// Zeller's ddmin: a subset of `items` for which `fails` still holds and
/// from which no single chunk (down to single items) can be removed
/// without it stopping to. Assumes `fails(items)`.
pub fn ddmin(items: Vec<usize>, fails: &mut dyn FnMut(&[usize]) -> bool) -> Vec<usize> {
    if fails(&[]) {
        return Vec::new();
    }
    let mut items = items;
    let mut n = 2;
    while items.len() >= 2 {
        let chunk = items.len().div_ceil(n);
        let chunks: Vec<Vec<usize>> = items.chunks(chunk).map(<[usize]>::to_vec).collect();
        let mut reduced = false;
        for part in &chunks {
            if fails(part) {
                items = part.clone();
                n = 2;
                reduced = true;
                break;
            }
        }
        if !reduced {
            for part in &chunks {
                let rest: Vec<usize> = items
                    .iter()
                    .copied()
                    .filter(|i| !part.contains(i))
                    .collect();
                if fails(&rest) {
                    items = rest;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= items.len() {
                break;
            }
            n = (n * 2).min(items.len());
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddmin_finds_the_episodes_that_matter() {
        // Fails when both 3 and 11 are kept.
        let mut runs = 0;
        let found = ddmin((0..20).collect(), &mut |kept| {
            runs += 1;
            kept.contains(&3) && kept.contains(&11)
        });
        assert_eq!(found, [3, 11]);
        assert!(runs <= 100, "{runs} runs for 20 episodes");
        // Fails whatever is kept: nothing is needed.
        assert_eq!(ddmin((0..5).collect(), &mut |_| true), Vec::<usize>::new());
    }

    #[test]
    fn signatures_ignore_numbers_and_assert_boilerplate() {
        assert_eq!(
            signature(
                "assertion `left == right` failed: seed 12: run 3 did not complete\n left: 1"
            ),
            signature("seed 99: run 7 did not complete")
        );
        assert_ne!(
            signature("seed 1: lost"),
            signature("seed 1: applied twice")
        );
    }
}
