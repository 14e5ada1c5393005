//! When a reminder is due: once, every fixed period from an anchor, or by a
//! cron expression in an IANA time zone. Times are wall-clock milliseconds
//! since the Unix epoch (reminders are about calendars, not uptime).

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// How a reminder recurs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recurrence {
    /// Due once, at its first due time.
    Once,
    /// Due at the first due time and every `period` after it.
    Every(Duration),
    /// Due at every time the cron expression matches in `time_zone`, from
    /// the first due time on. The expression has a seconds field first
    /// (`sec min hour day-of-month month day-of-week [year]`, as the `cron`
    /// crate reads it), e.g. `0 30 9 * * Mon-Fri`; `time_zone` is an IANA
    /// name such as `Europe/Paris`, so daylight saving time is followed.
    Cron {
        /// The cron expression.
        expression: String,
        /// The IANA time zone it is read in.
        time_zone: String,
    },
}

/// A recurrence checked and ready to compute due times.
pub(crate) enum Compiled {
    Once,
    Every(u64),
    Cron(Box<cron::Schedule>, chrono_tz::Tz),
}

pub(crate) use crate::seams::unix_millis as millis;

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn time_of(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

impl Recurrence {
    /// Checks the recurrence (cron syntax, time zone, period).
    pub(crate) fn compile(&self) -> Result<Compiled, String> {
        match self {
            Recurrence::Once => Ok(Compiled::Once),
            Recurrence::Every(period) => {
                let ms = period.as_millis();
                if ms == 0 || ms > u128::from(u64::MAX) {
                    return Err(format!("period {period:?}: at least 1 ms"));
                }
                Ok(Compiled::Every(ms as u64))
            }
            Recurrence::Cron {
                expression,
                time_zone,
            } => {
                let schedule = cron::Schedule::from_str(expression)
                    .map_err(|e| format!("cron expression {expression:?}: {e}"))?;
                let zone = chrono_tz::Tz::from_str(time_zone)
                    .map_err(|e| format!("time zone {time_zone:?}: {e}"))?;
                Ok(Compiled::Cron(Box::new(schedule), zone))
            }
        }
    }
}

impl Compiled {
    /// The first due time at or after `not_before`, for a reminder whose
    /// first due time is `anchor`; `None` if it is never due again.
    pub(crate) fn due_at_or_after(&self, anchor: u64, not_before: u64) -> Option<u64> {
        match self {
            Compiled::Once => (anchor >= not_before).then_some(anchor),
            Compiled::Every(period) => {
                if anchor >= not_before {
                    return Some(anchor);
                }
                let periods = (not_before - anchor).div_ceil(*period);
                anchor.checked_add(periods.checked_mul(*period)?)
            }
            Compiled::Cron(schedule, zone) => {
                let from = anchor.max(not_before);
                // `after` is exclusive: start one millisecond earlier.
                let start = Utc.timestamp_millis_opt(from as i64 - 1).single()?;
                let next: DateTime<chrono_tz::Tz> =
                    schedule.after(&start.with_timezone(zone)).next()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// The due time after `due` that is not before `now`: missed due times
    /// are skipped (one firing stands for all of them).
    pub(crate) fn next_after(&self, anchor: u64, due: u64, now: u64) -> Option<u64> {
        self.due_at_or_after(anchor, due.saturating_add(1).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn fixed_periods_keep_their_phase_and_skip_missed_times() {
        let every = Recurrence::Every(Duration::from_secs(3600))
            .compile()
            .unwrap();
        let anchor = 10 * HOUR;
        assert_eq!(every.due_at_or_after(anchor, 0), Some(anchor));
        assert_eq!(
            every.due_at_or_after(anchor, anchor + 1),
            Some(anchor + HOUR)
        );
        // Fired at 11h, the node was down until 14h30: next is 15h.
        assert_eq!(
            every.next_after(anchor, 11 * HOUR, 14 * HOUR + HOUR / 2),
            Some(15 * HOUR)
        );
        assert_eq!(every.next_after(anchor, 11 * HOUR, 0), Some(12 * HOUR));
    }

    #[test]
    fn once_is_due_once() {
        let once = Recurrence::Once.compile().unwrap();
        assert_eq!(once.due_at_or_after(5, 0), Some(5));
        assert_eq!(once.next_after(5, 5, 0), None);
    }

    #[test]
    fn cron_follows_the_time_zone_including_daylight_saving() {
        let cron = Recurrence::Cron {
            expression: "0 30 9 * * *".into(),
            time_zone: "Europe/Paris".into(),
        }
        .compile()
        .unwrap();
        let utc = |s: &str| millis(SystemTime::from(DateTime::parse_from_rfc3339(s).unwrap()));
        // Winter: 09:30 in Paris is 08:30 UTC; summer (after 30 March
        // 2025): 07:30 UTC.
        assert_eq!(
            cron.due_at_or_after(0, utc("2025-03-29T12:00:00Z")),
            Some(utc("2025-03-30T07:30:00Z"))
        );
        assert_eq!(
            cron.due_at_or_after(0, utc("2025-03-28T12:00:00Z")),
            Some(utc("2025-03-29T08:30:00Z"))
        );
        // Exactly at a due time counts.
        let at = utc("2025-03-29T08:30:00Z");
        assert_eq!(cron.due_at_or_after(0, at), Some(at));
        assert_eq!(
            cron.next_after(0, at, at),
            Some(utc("2025-03-30T07:30:00Z"))
        );
    }

    #[test]
    fn bad_recurrences_are_refused_with_the_reason() {
        let bad_cron = Recurrence::Cron {
            expression: "every tuesday".into(),
            time_zone: "UTC".into(),
        };
        assert!(
            bad_cron
                .compile()
                .err()
                .unwrap()
                .contains("cron expression")
        );
        let bad_zone = Recurrence::Cron {
            expression: "0 0 * * * *".into(),
            time_zone: "Mars/Olympus".into(),
        };
        assert!(bad_zone.compile().err().unwrap().contains("time zone"));
        assert!(Recurrence::Every(Duration::ZERO).compile().is_err());
    }
}
