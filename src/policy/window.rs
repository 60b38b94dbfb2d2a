//! Schedule windows (SPEC §3 `windows`, §7): a cron schedule opens a window that stays open for a
//! duration, in a time zone. Pure functions of "now"; the write-back work asks them.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use cron::Schedule;

/// How far back `is_open` looks for the opening that may still be running. A window longer than this
/// is rejected by validation, so the search is always complete.
pub const MAX_WINDOW_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct Window {
    pub schedule: Schedule,
    pub duration: Duration,
    pub timezone: Tz,
}

impl Window {
    /// Whether `now` lies inside a window: some opening `t` with `t <= now < t + duration`.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.current_opening(now).is_some()
    }

    /// The opening that `now` lies in, if any.
    pub fn current_opening(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.timezone);
        // `after(x).next_back()` is the last opening strictly before x; one second later includes `now`.
        let probe = local + chrono::Duration::seconds(1);
        let last = self.schedule.after(&probe).next_back()?;
        let last = last.with_timezone(&Utc);
        let end = last + chrono::Duration::from_std(self.duration).ok()?;
        (last <= now && now < end).then_some(last)
    }

    /// The earliest instant at or after `now` when the window is open: `now` itself when it is open,
    /// else the next opening (`None` when the schedule never fires again).
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(now) {
            return Some(now);
        }
        let local = now.with_timezone(&self.timezone);
        self.schedule
            .after(&local)
            .next()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Whether a bump may be written now: no windows means always; otherwise inside any of them.
pub fn any_open(windows: &[Window], now: DateTime<Utc>) -> bool {
    windows.is_empty() || windows.iter().any(|window| window.is_open(now))
}

/// When a bump waiting for its windows will land: `now` if open, else the earliest next opening.
pub fn next_any_open(windows: &[Window], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if any_open(windows, now) {
        return Some(now);
    }
    windows
        .iter()
        .filter_map(|window| window.next_open(now))
        .min()
}

/// A UTC instant from local wall-clock parts (tests and docs).
pub fn local_instant(
    timezone: Tz,
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
) -> Option<DateTime<Utc>> {
    timezone
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn weekday_window() -> Window {
        Window {
            schedule: Schedule::from_str("0 0 9 * * Mon-Fri").unwrap(),
            duration: Duration::from_secs(8 * 3600),
            timezone: chrono_tz::Europe::Berlin,
        }
    }

    fn berlin(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        // November 2026: the 23rd is a Monday; Berlin is UTC+1.
        local_instant(chrono_tz::Europe::Berlin, 2026, 11, day, hour, minute).unwrap()
    }

    #[test]
    fn open_from_the_opening_until_the_duration_ends() {
        let window = weekday_window();
        assert!(!window.is_open(berlin(23, 8, 59)));
        assert!(window.is_open(berlin(23, 9, 0)));
        assert!(window.is_open(berlin(23, 16, 59)));
        assert!(!window.is_open(berlin(23, 17, 0)));
    }

    #[test]
    fn closed_at_the_weekend_and_next_open_is_monday_morning() {
        let window = weekday_window();
        let saturday = berlin(28, 12, 0);
        assert!(!window.is_open(saturday));
        assert_eq!(window.next_open(saturday), Some(berlin(30, 9, 0)));
        let inside = berlin(24, 10, 30);
        assert_eq!(window.next_open(inside), Some(inside));
    }

    #[test]
    fn time_zone_decides_the_opening() {
        let mut window = weekday_window();
        window.timezone = chrono_tz::America::New_York;
        // 09:00 in Berlin is 03:00 in New York: closed there.
        assert!(!window.is_open(berlin(23, 9, 30)));
        // 15:30 Berlin = 09:30 New York.
        assert!(window.is_open(berlin(23, 15, 30)));
    }

    #[test]
    fn window_spanning_midnight_stays_open_into_the_next_day() {
        let window = Window {
            schedule: Schedule::from_str("0 0 22 * * *").unwrap(),
            duration: Duration::from_secs(4 * 3600),
            timezone: chrono_tz::UTC,
        };
        let after_midnight = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap();
        assert!(window.is_open(after_midnight));
        assert!(!window.is_open(Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()));
    }

    #[test]
    fn no_windows_means_always_open() {
        let now = berlin(28, 3, 0);
        assert!(any_open(&[], now));
        assert_eq!(next_any_open(&[], now), Some(now));
        assert_eq!(
            next_any_open(&[weekday_window()], now),
            Some(berlin(30, 9, 0))
        );
    }
}
