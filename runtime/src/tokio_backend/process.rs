//! The process's own resources, read from Linux's `/proc` at each scrape
//! (production only: the simulator's nodes share one process, so it has
//! no such figures to give).

use crate::observability::metrics::ScrapeCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Kernel clock ticks per second for `/proc/self/stat` times: 100 on
/// every mainstream Linux build (`USER_HZ`, fixed by the kernel ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// `plexspaces_process_*` from `/proc/self`, and the tokio runtime's
/// alive tasks and workers. A figure that cannot be read (not Linux, or
/// no runtime) is left out, never made up.
#[derive(Debug, Default)]
pub struct ProcessCollector;

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// User plus system CPU seconds (fields 14 and 15 of `/proc/self/stat`,
/// counted after the parenthesised command name, which may hold spaces).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl ScrapeCollector for ProcessCollector {
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(cpu) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_seconds(&s))
        {
            let metric = encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time of the process",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
        }
        if let Some(rss) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| resident_bytes(&s))
        {
            let help = "Resident memory of the process";
            gauge(
                encoder,
                "process_resident_memory",
                help,
                Some(&Unit::Bytes),
                rss,
            )?;
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            let open = entries.count() as i64;
            gauge(
                encoder,
                "process_open_fds",
                "Open file descriptors",
                None,
                open,
            )?;
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| max_fds(&s))
        {
            let help = "The limit on open file descriptors";
            gauge(encoder, "process_max_fds", help, None, max)?;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let metrics = handle.metrics();
            let alive = metrics.num_alive_tasks() as i64;
            let workers = metrics.num_workers() as i64;
            gauge(
                encoder,
                "runtime_tasks",
                "Tasks alive on the tokio runtime",
                None,
                alive,
            )?;
            gauge(
                encoder,
                "runtime_workers",
                "Worker threads of the tokio runtime",
                None,
                workers,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
        let status = "Name:\tx\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(resident_bytes(status), Some(2048 * 1024));
        let limits = "Limit Soft Hard Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), Some(1024));
    }
}
