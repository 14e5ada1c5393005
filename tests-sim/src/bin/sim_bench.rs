//! Simulator throughput: how many seeds of the 60-simulated-second,
//! three-node storm (every fault kind, then a quiet period) run per minute
//! on this machine, and how many simulated seconds pass per wall second
//! (the ratio to running the same scenario in real time).
//!
//! ```text
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
//!     cargo run --release -p plexspaces-tests-sim --bin sim_bench [-- SEEDS]
//! ```

// A benchmark measures wall time and runs one simulation per core.
#![allow(clippy::disallowed_methods)]

#[cfg(madsim)]
fn main() {
    use plexspaces_tests_sim::storm;
    use std::time::{Duration, Instant};

    let seeds: u64 = std::env::args()
        .nth(1)
        .map_or(20, |s| s.parse().expect("a seed count"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let (active, quiet) = (Duration::from_secs(50), Duration::from_secs(10));
    let simulated = (active + quiet).as_secs_f64();
    println!(
        "storm: 3 nodes, {simulated} simulated seconds per seed, {seeds} seeds on {threads} threads"
    );
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|worker| {
            std::thread::spawn(move || {
                let mut acked = 0;
                for seed in (worker..seeds).step_by(threads as usize) {
                    let outcome = storm::run(seed, active, quiet)
                        .unwrap_or_else(|violation| panic!("seed {seed}: {violation}"));
                    acked += outcome.acked;
                }
                acked
            })
        })
        .collect();
    let acked: usize = workers
        .into_iter()
        .map(|w| w.join().expect("a worker"))
        .sum();
    let wall = start.elapsed().as_secs_f64();
    println!("wall time: {wall:.1} s; journal entries acknowledged: {acked}");
    println!(
        "seeds per minute: {:.0} (target 100)",
        seeds as f64 / wall * 60.0
    );
    println!(
        "simulated seconds per wall second: {:.0} (x real time)",
        seeds as f64 * simulated / wall
    );
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("sim_bench runs the simulator: build it with RUSTFLAGS=\"--cfg madsim\"");
    std::process::exit(2);
}
