//! The seed harness for PlexSpaces' simulation scenarios.
//!
//! A scenario is a function from a seed to an outcome, run inside a fresh
//! madsim runtime seeded with it. [`run_seeds`] runs one over the seeds the
//! environment asks for and, when a seed fails, prints the one command that
//! replays it before re-raising the failure:
//!
//! - default: seeds `0..default_count`, the scenario's regression seeds,
//!   and, when `PLEXSPACES_FRESH_BASE` is set (`scripts/test.sh` sets it
//!   from the commit), a window of fresh seeds derived from it and the
//!   scenario's name: each commit explores seeds no run has tried, and a
//!   failing one replays with `PLEXSPACES_SEED`;
//! - `PLEXSPACES_SEEDS=N`: seeds `0..N` (a long run);
//! - `PLEXSPACES_SEED_START=B`: the seeds start at `B` instead of 0
//!   (`B..B+N`), to explore seeds far from the ones CI runs;
//! - `PLEXSPACES_SEED=S`: seed `S` alone (a reproduction).

#[cfg(madsim)]
pub mod adversary;
#[cfg(madsim)]
pub mod cluster_setup;
#[cfg(madsim)]
pub mod journal_workload;
#[cfg(madsim)]
pub mod liveness;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod storm;

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Which seeds a run covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedPlan {
    seeds: Vec<u64>,
    /// The plan is the default one (no seed variable set), to which
    /// regression and fresh seeds are added.
    default: bool,
}

/// An environment variable that should hold a seed or count did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSeedVar {
    /// The variable's name.
    pub var: &'static str,
    /// What it held.
    pub value: String,
}

impl std::fmt::Display for BadSeedVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={:?} is not a whole number", self.var, self.value)
    }
}

impl std::error::Error for BadSeedVar {}

impl SeedPlan {
    /// The plan described by `single` (`PLEXSPACES_SEED`), `count`
    /// (`PLEXSPACES_SEEDS`) and `start` (`PLEXSPACES_SEED_START`), falling
    /// back to `0..default_count`.
    pub fn from_vars(
        single: Option<&str>,
        count: Option<&str>,
        start: Option<&str>,
        default_count: u64,
    ) -> Result<Self, BadSeedVar> {
        let parse = |var: &'static str, value: &str| {
            value.trim().parse::<u64>().map_err(|_| BadSeedVar {
                var,
                value: value.to_string(),
            })
        };
        if let Some(seed) = single {
            return Ok(SeedPlan {
                seeds: vec![parse("PLEXSPACES_SEED", seed)?],
                default: false,
            });
        }
        let default = count.is_none() && start.is_none();
        let count = match count {
            Some(value) => parse("PLEXSPACES_SEEDS", value)?,
            None => default_count,
        };
        let start = match start {
            Some(value) => parse("PLEXSPACES_SEED_START", value)?,
            None => 0,
        };
        Ok(SeedPlan {
            seeds: (start..start.saturating_add(count)).collect(),
            default,
        })
    }

    /// The plan the process environment asks for.
    ///
    /// # Panics
    /// If a variable is set but is not a number: a typo must not silently
    /// run the default seeds instead of the one being reproduced.
    pub fn from_env(default_count: u64) -> Self {
        let var = |name| std::env::var(name).ok();
        let single = var("PLEXSPACES_SEED");
        let count = var("PLEXSPACES_SEEDS");
        let start = var("PLEXSPACES_SEED_START");
        Self::from_vars(
            single.as_deref(),
            count.as_deref(),
            start.as_deref(),
            default_count,
        )
        .unwrap_or_else(|bad| panic!("{bad}"))
    }

    /// Adds `seeds` that once failed (regression cases): they run in every
    /// plan but a single-seed reproduction, after the plan's own, once each.
    /// A seed that found a bug stays in the suite forever this way, even
    /// when the default count would not reach it.
    pub fn with_regressions(mut self, seeds: &[u64]) -> Self {
        let single = std::env::var("PLEXSPACES_SEED").is_ok();
        if !single {
            for seed in seeds {
                if !self.seeds.contains(seed) {
                    self.seeds.push(*seed);
                }
            }
        }
        self
    }

    /// Adds `count` fresh seeds to a default plan, from the window
    /// `PLEXSPACES_FRESH_BASE` and `scenario` name (see [`fresh_window`]);
    /// nothing when the variable is unset or another plan was asked for.
    pub fn with_fresh(self, scenario: &str, count: u64) -> Self {
        let base = std::env::var("PLEXSPACES_FRESH_BASE").ok();
        self.with_fresh_from(base.as_deref(), scenario, count)
    }

    /// [`SeedPlan::with_fresh`] with the base given.
    pub fn with_fresh_from(mut self, base: Option<&str>, scenario: &str, count: u64) -> Self {
        let Some(base) = base.filter(|_| self.default) else {
            return self;
        };
        let start = fresh_window(base, scenario);
        println!(
            "scenario {scenario}: {count} fresh seeds from {start} (PLEXSPACES_FRESH_BASE={base})"
        );
        self.seeds.extend(start..start.saturating_add(count));
        self
    }

    /// The seeds, in the order they run.
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }
}

/// Where the fresh seeds of `scenario` start for a run labelled `base`
/// (a commit id): a hash of both, kept below 2^48 so seeds stay short to
/// type, and far above the `0..N` ranges CI runs by count.
pub fn fresh_window(base: &str, scenario: &str) -> u64 {
    // FNV-1a, then a splitmix64 finalizer: stable across builds and
    // platforms (the window must be the same wherever it is replayed).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in base.bytes().chain([0]).chain(scenario.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (1 << 32) + (hash >> 16)
}

/// The test target this process runs (its binary's name without cargo's
/// hash), for replay commands.
pub fn current_test_target() -> String {
    let binary = std::env::args().next().unwrap_or_default();
    let stem = std::path::Path::new(&binary)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// The command that replays `seed` of the scenario in test target `test`.
pub fn replay_command(test: &str, seed: u64) -> String {
    format!(
        "PLEXSPACES_SEED={seed} RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/madsim \
         cargo test --profile sim -p plexspaces-tests-sim --test {test}"
    )
}

/// Runs `scenario` once per seed of `plan`. A failing seed is reported with
/// its replay command (for test target `test`), then its panic continues.
/// With `PLEXSPACES_KEEP_GOING=1` (long runs), every seed runs and every
/// failure is reported with its replay command before the run fails.
pub fn run_seeds<T>(test: &str, plan: &SeedPlan, scenario: impl Fn(u64) -> T) -> Vec<T> {
    let keep_going = std::env::var_os("PLEXSPACES_KEEP_GOING").is_some();
    let mut outcomes = Vec::with_capacity(plan.seeds.len());
    let mut failed = Vec::new();
    for &seed in &plan.seeds {
        println!("scenario {test}: seed {seed}");
        match catch_unwind(AssertUnwindSafe(|| scenario(seed))) {
            Ok(outcome) => outcomes.push(outcome),
            Err(panic) => {
                eprintln!("scenario {test} failed with seed {seed}");
                eprintln!("replay: {}", replay_command(test, seed));
                if failed.is_empty() {
                    report_shrunk(test, seed, &panic_text(panic.as_ref()), &|s| {
                        scenario(s);
                    });
                }
                if !keep_going {
                    resume_unwind(panic);
                }
                failed.push(seed);
            }
        }
    }
    if !failed.is_empty() {
        for seed in &failed {
            eprintln!("FAILED {test} seed {seed}: {}", replay_command(test, *seed));
        }
        panic!(
            "scenario {test}: {} of {} seeds failed: {failed:?}",
            failed.len(),
            plan.seeds.len()
        );
    }
    println!("scenario {test}: {} seeds passed", plan.seeds.len());
    outcomes
}

/// Shrinks a failure of `scenario` at `seed` (see [`shrink`]) and prints
/// the shrunk schedule and its replay command, unless
/// `PLEXSPACES_NO_SHRINK` is set. Returns the shrunk failure.
#[cfg(madsim)]
pub fn report_shrunk(
    test: &str,
    seed: u64,
    failure: &str,
    scenario: &dyn Fn(u64),
) -> Option<shrink::Shrunk> {
    if std::env::var_os("PLEXSPACES_NO_SHRINK").is_some() {
        return None;
    }
    let shrunk = shrink::shrink(seed, failure, scenario)?;
    eprintln!(
        "shrunk seed {seed} of {test} from {} events ({} episodes) to {} ({} trials); it fails \
         the same way with\n{}\nreplay: {}",
        shrunk.drawn_events,
        shrunk.drawn_episodes,
        shrunk.events,
        shrunk.trials,
        shrunk.schedule,
        shrunk.replay_command(test)
    );
    Some(shrunk)
}

/// Without the simulator there is nothing to shrink.
#[cfg(not(madsim))]
pub fn report_shrunk(_: &str, _: u64, _: &str, _: &dyn Fn(u64)) -> Option<()> {
    None
}

/// The text of a panic's payload (what `panic!` and `assert!` said).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Runs `planted` (a scenario with a deliberately broken variant switched
/// on) over seeds `0..budget` and returns the first seed whose failure is
/// one of the oracle's `expected` failures (its message contains one of
/// them). A seed failing for any other reason fails the test at once: a
/// planted bug that crashes the scenario elsewhere proves nothing about
/// the oracle. Panics if every seed passes: a simulator that catches
/// nothing proves nothing.
pub fn caught_within(what: &str, budget: u64, expected: &[&str], planted: impl Fn(u64)) -> u64 {
    assert!(
        !expected.is_empty(),
        "name the oracle's failure to look for"
    );
    // A replay asks for the one seed that caught it.
    let seeds: Vec<u64> = match std::env::var("PLEXSPACES_SEED") {
        Ok(seed) => vec![
            seed.trim()
                .parse()
                .expect("PLEXSPACES_SEED is a whole number"),
        ],
        Err(_) => (0..budget).collect(),
    };
    for seed in seeds {
        let Err(panic) = catch_unwind(AssertUnwindSafe(|| planted(seed))) else {
            continue;
        };
        let text = panic_text(panic.as_ref());
        assert!(
            expected.iter().any(|e| text.contains(e)),
            "{what} made seed {seed} fail, but not as the oracle says it should \
             (expected one of {expected:?}): {text}"
        );
        println!("{what} caught at seed {seed}: {text}");
        // Shrinking a planted bug's failure shows what it takes to see it
        // (on request: it reruns the scenario many times).
        if std::env::var_os("PLEXSPACES_SHRINK_PLANTED").is_some() {
            let test = format!(
                "{} -- {}",
                current_test_target(),
                std::thread::current().name().unwrap_or("")
            );
            report_shrunk(&test, seed, &text, &planted);
        }
        return seed;
    }
    panic!("{what} survived {budget} seeds: the simulator does not see it");
}

/// Runs `scenario` twice with `seed` and insists on the same outcome: the
/// determinism meta-check.
pub fn assert_deterministic<T: PartialEq + Debug>(seed: u64, scenario: impl Fn(u64) -> T) -> T {
    let first = scenario(seed);
    let second = scenario(seed);
    assert_eq!(first, second, "seed {seed} gave two different outcomes");
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_variables() {
        let plan = |single, count| SeedPlan::from_vars(single, count, None, 3);
        assert_eq!(plan(None, None).unwrap().seeds(), [0, 1, 2]);
        let window = SeedPlan::from_vars(None, Some("2"), Some("9000000"), 3).unwrap();
        assert_eq!(window.seeds(), [9_000_000, 9_000_001]);
        assert!(SeedPlan::from_vars(None, None, Some("x"), 3).is_err());
        assert_eq!(plan(None, Some("5")).unwrap().seeds(), [0, 1, 2, 3, 4]);
        assert_eq!(
            plan(Some("77"), Some("5")).unwrap().seeds(),
            [77],
            "one seed wins"
        );
        let bad = plan(Some("x7"), None).unwrap_err();
        assert_eq!((bad.var, bad.value.as_str()), ("PLEXSPACES_SEED", "x7"));
        assert!(plan(None, Some("-1")).is_err());
    }

    #[test]
    fn regression_seeds_join_the_plan_once() {
        if std::env::var("PLEXSPACES_SEED").is_ok() {
            return; // a reproduction runs its one seed only
        }
        let plan = SeedPlan::from_vars(None, Some("3"), None, 0)
            .unwrap()
            .with_regressions(&[21, 1, 21]);
        assert_eq!(plan.seeds(), [0, 1, 2, 21]);
    }

    #[test]
    fn a_failing_seed_is_reraised_after_passing_ones() {
        let plan = SeedPlan::from_vars(None, Some("4"), None, 0).unwrap();
        let ran = std::sync::Mutex::new(Vec::new());
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_seeds("demo", &plan, |seed| {
                ran.lock().unwrap().push(seed);
                assert!(seed != 2, "seed 2 is bad");
            })
        }));
        assert!(result.is_err());
        assert_eq!(*ran.lock().unwrap(), [0, 1, 2], "stops at the failing seed");
        assert!(replay_command("demo", 2).starts_with("PLEXSPACES_SEED=2 "));
    }

    #[test]
    fn fresh_windows_are_stable_distinct_and_only_for_default_plans() {
        let default = SeedPlan::from_vars(None, None, None, 2).unwrap();
        let plan = default.clone().with_fresh_from(Some("abc123"), "bank", 3);
        let start = fresh_window("abc123", "bank");
        assert_eq!(plan.seeds(), [0, 1, start, start + 1, start + 2]);
        assert_eq!(start, fresh_window("abc123", "bank"), "stable");
        assert_ne!(
            start,
            fresh_window("abc124", "bank"),
            "a new commit, new seeds"
        );
        assert_ne!(start, fresh_window("abc123", "durable"), "per scenario");
        assert!((1 << 32..(1 << 32) + (1 << 48)).contains(&start));
        assert_eq!(
            default.clone().with_fresh_from(None, "bank", 3).seeds(),
            [0, 1]
        );
        let explicit = SeedPlan::from_vars(None, Some("2"), None, 9).unwrap();
        assert_eq!(
            explicit.with_fresh_from(Some("abc"), "bank", 3).seeds(),
            [0, 1]
        );
    }

    #[test]
    fn a_planted_bug_counts_only_when_the_oracle_fails() {
        let seed = caught_within("demo", 5, &["balance"], |seed| {
            assert!(seed < 3, "seed {seed}: the balance is off");
        });
        assert_eq!(seed, 3);
        let unrelated = catch_unwind(|| {
            caught_within("demo", 5, &["balance"], |seed| {
                assert!(seed < 2, "index out of bounds");
            })
        });
        let text = panic_text(unrelated.unwrap_err().as_ref());
        assert!(text.contains("not as the oracle says"), "{text}");
        let survived = catch_unwind(|| caught_within("demo", 3, &["balance"], |_| {}));
        assert!(panic_text(survived.unwrap_err().as_ref()).contains("survived 3 seeds"));
    }

    #[test]
    #[should_panic(expected = "two different outcomes")]
    fn nondeterminism_is_caught() {
        let calls = std::sync::atomic::AtomicU64::new(0);
        assert_deterministic(1, |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        });
    }
}
