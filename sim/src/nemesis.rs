//! The nemesis: a fault schedule drawn from the seed (which faults, on which
//! nodes, when, for how long), run against a [`Cluster`], then a quiet
//! period with every fault healed so liveness can be checked.

use crate::cluster::Cluster;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::fmt;
use std::time::Duration;

/// Which faults the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultKinds {
    /// Crash a node, restart it later.
    pub crash: bool,
    /// Pause a node, resume it later.
    pub pause: bool,
    /// Partition two nodes (both ways, or one way), heal later.
    pub partition: bool,
    /// Cut one node off from everyone, heal later.
    pub isolate: bool,
    /// Reset a node's connections.
    pub reset: bool,
    /// Skew a node's wall clock, unskew later.
    pub skew: bool,
    /// Switch disk faults on, off later.
    pub disk: bool,
}

impl FaultKinds {
    /// Every kind.
    pub fn all() -> Self {
        FaultKinds {
            crash: true,
            pause: true,
            partition: true,
            isolate: true,
            reset: true,
            skew: true,
            disk: true,
        }
    }

    /// Only crashes and restarts.
    pub fn crashes() -> Self {
        FaultKinds {
            crash: true,
            pause: false,
            partition: false,
            isolate: false,
            reset: false,
            skew: false,
            disk: false,
        }
    }
}

/// The shape of a fault schedule.
#[derive(Clone, Debug)]
pub struct NemesisConfig {
    /// How long faults are injected.
    pub active: Duration,
    /// How long everything is healed and quiet afterwards.
    pub quiet: Duration,
    /// Mean time between the starts of two faults.
    pub mean_gap: Duration,
    /// Longest a fault lasts.
    pub max_fault: Duration,
    /// Which faults.
    pub kinds: FaultKinds,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            active: Duration::from_secs(30),
            quiet: Duration::from_secs(10),
            mean_gap: Duration::from_secs(2),
            max_fault: Duration::from_secs(5),
            kinds: FaultKinds::all(),
        }
    }
}

/// One step of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Crash the node.
    Crash(usize),
    /// Restart the (crashed) node.
    Restart(usize),
    /// Pause the node.
    Pause(usize),
    /// Resume the node.
    Resume(usize),
    /// Partition two nodes both ways.
    Partition(usize, usize),
    /// Stop traffic from the first node to the second.
    PartitionOneWay(usize, usize),
    /// Cut a node off.
    Isolate(usize),
    /// Heal every link.
    HealNetwork,
    /// Reset a node's connections.
    ResetConnections(usize),
    /// Skew a node's wall clock by this many milliseconds (negative: behind).
    SkewClock(usize, i64),
    /// Disk faults on (true) or off.
    DiskFaults(bool),
}

/// A fault at a time (from the start of the schedule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledFault {
    /// When.
    pub at: Duration,
    /// What.
    pub fault: Fault,
    /// The episode it belongs to: a fault and the step that ends it (a
    /// crash and its restart, a partition and its heal) share one, and a
    /// shrunk schedule keeps or drops episodes whole.
    pub episode: usize,
}

thread_local! {
    /// Episodes to keep in schedules drawn on this thread (the shrinker
    /// sets it); `None`: all.
    static KEEP: std::cell::RefCell<Option<std::collections::BTreeSet<usize>>> =
        const { std::cell::RefCell::new(None) };
    /// The last schedule drawn on this thread, in full and as kept.
    static LAST_DRAWN: std::cell::RefCell<Option<(Schedule, Schedule)>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps only `episodes` in the schedules drawn on this thread from now on
/// (`None`: every episode). A shrinker sets it between runs of one seed;
/// `PLEXSPACES_SCHEDULE_KEEP=1,4,7` does the same for a replay.
pub fn keep_only(episodes: Option<std::collections::BTreeSet<usize>>) {
    KEEP.with(|keep| *keep.borrow_mut() = episodes);
}

/// The last schedule drawn on this thread: as drawn, and as run (its kept
/// episodes).
pub fn last_drawn() -> Option<(Schedule, Schedule)> {
    LAST_DRAWN.with(|last| last.borrow().clone())
}

/// The episodes `PLEXSPACES_SCHEDULE_KEEP` names, if it is set.
fn kept_from_env() -> Option<std::collections::BTreeSet<usize>> {
    let value = std::env::var("PLEXSPACES_SCHEDULE_KEEP").ok()?;
    let kept = value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            part.trim().parse::<usize>().unwrap_or_else(|_| {
                panic!("PLEXSPACES_SCHEDULE_KEEP={value:?}: not a list of episode numbers")
            })
        })
        .collect();
    Some(kept)
}

/// A fault schedule: printed in full when a run fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The faults, in time order.
    pub faults: Vec<ScheduledFault>,
    /// The quiet period after them.
    pub quiet: Duration,
    /// When the active phase ends.
    pub active: Duration,
}

impl Schedule {
    /// Draws a schedule for `nodes` nodes from `seed`.
    pub fn draw(seed: u64, nodes: usize, config: &NemesisConfig) -> Schedule {
        assert!(nodes > 0, "a schedule needs nodes");
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4E3E_5150);
        let mut below = |n: u64| if n == 0 { 0 } else { rng.next_u64() % n };
        let k = config.kinds;
        let kinds: Vec<u8> = [
            (k.crash, 0),
            (k.pause, 1),
            (k.partition, 2),
            (k.isolate, 3),
            (k.reset, 4),
            (k.skew, 5),
            (k.disk, 6),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, kind)| kind)
        .collect();
        let mut faults = Vec::new();
        let mut episode = 0;
        let mut busy_until = vec![Duration::ZERO; nodes];
        let gap_ms = config.mean_gap.as_millis().max(2) as u64;
        let max_ms = config.max_fault.as_millis().max(1) as u64;
        let mut at = Duration::from_millis(below(gap_ms));
        while at < config.active && !kinds.is_empty() {
            let kind = kinds[below(kinds.len() as u64) as usize];
            let node = below(nodes as u64) as usize;
            let other = (node + 1 + below(nodes.saturating_sub(1) as u64) as usize) % nodes;
            let lasting = Duration::from_millis(1 + below(max_ms));
            let end = (at + lasting).min(config.active);
            let mut pair = |start: Fault, stop: Fault| {
                faults.push(ScheduledFault {
                    at,
                    fault: start,
                    episode,
                });
                faults.push(ScheduledFault {
                    at: end,
                    fault: stop,
                    episode,
                });
            };
            match kind {
                0 | 1 if busy_until[node] <= at => {
                    busy_until[node] = end;
                    if kind == 0 {
                        pair(Fault::Crash(node), Fault::Restart(node));
                    } else {
                        pair(Fault::Pause(node), Fault::Resume(node));
                    }
                }
                2 if nodes > 1 => {
                    if below(2) == 0 {
                        pair(Fault::Partition(node, other), Fault::HealNetwork);
                    } else {
                        pair(Fault::PartitionOneWay(node, other), Fault::HealNetwork);
                    }
                }
                3 => pair(Fault::Isolate(node), Fault::HealNetwork),
                4 => faults.push(ScheduledFault {
                    at,
                    fault: Fault::ResetConnections(node),
                    episode,
                }),
                5 => {
                    let ms = below(60_000) as i64 - 30_000;
                    pair(Fault::SkewClock(node, ms), Fault::SkewClock(node, 0));
                }
                6 => pair(Fault::DiskFaults(true), Fault::DiskFaults(false)),
                _ => {}
            }
            at += Duration::from_millis(gap_ms / 2 + below(gap_ms));
            episode += 1;
        }
        faults.sort_by_key(|f| f.at); // stable: a start stays before its own end
        let drawn = Schedule {
            faults,
            quiet: config.quiet,
            active: config.active,
        };
        // Drawing every episode first keeps the random stream, and so the
        // kept episodes, the same whatever is dropped.
        let kept = KEEP
            .with(|keep| keep.borrow().clone())
            .or_else(kept_from_env);
        let run = match &kept {
            Some(kept) => Schedule {
                faults: drawn
                    .faults
                    .iter()
                    .filter(|f| kept.contains(&f.episode))
                    .copied()
                    .collect(),
                ..drawn.clone()
            },
            None => drawn.clone(),
        };
        LAST_DRAWN.with(|last| *last.borrow_mut() = Some((drawn, run.clone())));
        run
    }

    /// The episodes of this schedule, in order.
    pub fn episodes(&self) -> Vec<usize> {
        let mut episodes: Vec<usize> = self.faults.iter().map(|f| f.episode).collect();
        episodes.dedup();
        episodes.sort_unstable();
        episodes.dedup();
        episodes
    }

    /// Runs the schedule against `cluster`, sleeping on virtual time between
    /// faults, then heals everything and waits out the quiet period.
    pub async fn run(&self, cluster: &Cluster) {
        let start = madsim::time::TimeHandle::current().now_instant();
        for step in &self.faults {
            madsim::time::sleep_until(start + step.at).await;
            apply(cluster, step.fault);
        }
        madsim::time::sleep_until(start + self.active).await;
        cluster.heal_all();
        madsim::time::sleep(self.quiet).await;
    }
}

fn apply(cluster: &Cluster, fault: Fault) {
    match fault {
        Fault::Crash(node) => cluster.crash(node),
        Fault::Restart(node) => cluster.restart(node),
        Fault::Pause(node) => cluster.pause(node),
        Fault::Resume(node) => cluster.resume(node),
        Fault::Partition(a, b) => cluster.partition(a, b),
        Fault::PartitionOneWay(a, b) => cluster.partition_one_way(a, b),
        Fault::Isolate(node) => cluster.isolate(node),
        Fault::HealNetwork => cluster.heal_network(),
        Fault::ResetConnections(node) => {
            cluster.reset_connections(node);
        }
        Fault::SkewClock(node, ms) => {
            cluster.skew_clock(node, Duration::from_millis(ms.unsigned_abs()), ms < 0)
        }
        Fault::DiskFaults(on) => cluster.set_disk_faults(on),
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault schedule ({} steps):", self.faults.len())?;
        for step in &self.faults {
            writeln!(
                f,
                "  {:>9.3}s  {:?}  (episode {})",
                step.at.as_secs_f64(),
                step.fault,
                step.episode
            )?;
        }
        writeln!(f, "  {:>9.3}s  heal everything", self.active.as_secs_f64())?;
        write!(f, "  then quiet for {:.3}s", self.quiet.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_a_function_of_its_seed() {
        let config = NemesisConfig::default();
        let a = Schedule::draw(7, 3, &config);
        assert_eq!(a, Schedule::draw(7, 3, &config));
        assert_ne!(a, Schedule::draw(8, 3, &config));
        assert!(
            a.faults.len() > 10,
            "30 s at a 2 s mean gap: {}",
            a.faults.len()
        );
        assert!(
            a.faults.windows(2).all(|w| w[0].at <= w[1].at),
            "in time order"
        );
        assert!(a.faults.iter().all(|f| f.at <= config.active));
        let text = a.to_string();
        assert!(text.starts_with("fault schedule") && text.contains("quiet"));
    }

    #[test]
    fn node_faults_do_not_overlap_on_one_node_and_always_end() {
        for seed in 0..50 {
            let schedule = Schedule::draw(seed, 3, &NemesisConfig::default());
            let mut down = [false; 3];
            for step in &schedule.faults {
                match step.fault {
                    Fault::Crash(n) | Fault::Pause(n) => {
                        assert!(!down[n], "seed {seed}: node {n} faulted twice at once");
                        down[n] = true;
                    }
                    Fault::Restart(n) | Fault::Resume(n) => down[n] = false,
                    _ => {}
                }
            }
            assert_eq!(down, [false; 3], "seed {seed}: every node fault ends");
        }
    }

    #[test]
    fn kept_episodes_are_kept_whole_and_the_rest_unchanged() {
        let config = NemesisConfig::default();
        let full = Schedule::draw(11, 3, &config);
        let episodes = full.episodes();
        assert!(episodes.len() > 4);
        let kept: std::collections::BTreeSet<usize> = episodes.iter().copied().step_by(2).collect();
        keep_only(Some(kept.clone()));
        let shrunk = Schedule::draw(11, 3, &config);
        keep_only(None);
        let expected: Vec<ScheduledFault> = full
            .faults
            .iter()
            .filter(|f| kept.contains(&f.episode))
            .copied()
            .collect();
        assert_eq!(shrunk.faults, expected);
        assert_eq!(shrunk.episodes(), kept.into_iter().collect::<Vec<_>>());
        let (drawn, run) = last_drawn().unwrap();
        assert_eq!((drawn, run), (full.clone(), shrunk));
        assert_eq!(
            Schedule::draw(11, 3, &config),
            full,
            "all again once cleared"
        );
    }

    #[test]
    fn only_the_chosen_kinds_are_drawn() {
        let config = NemesisConfig {
            kinds: FaultKinds::crashes(),
            ..NemesisConfig::default()
        };
        let schedule = Schedule::draw(1, 4, &config);
        assert!(!schedule.faults.is_empty());
        assert!(
            schedule
                .faults
                .iter()
                .all(|f| matches!(f.fault, Fault::Crash(_) | Fault::Restart(_)))
        );
    }
}
