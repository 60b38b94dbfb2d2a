//! Schedule windows (docs/reference/configuration.md `windows`, §7): a cron schedule opens a window that stays open for a
//! duration, in a time zone. Pure functions of "now"; the write-back work asks them.
//!
//! Schedules are read by [`parse_schedule`] (docs/reference/configuration.md): standard 5-field cron
//! (`min hour day-of-month month day-of-week`), or the `cron` crate's 6/7-field form with seconds first
//! (and an optional year). The crate is the engine; this module makes the standard form mean what
//! standard (Vixie) cron means, or refuses it:
//! - 5 fields get `0 ` prepended (second 0).
//! - Weekday numbers: standard cron counts `0` (and `7`) as Sunday, `1` as Monday … `6` as Saturday; the
//!   crate counts `1` as Sunday … `7` as Saturday and refuses `0`, so `1-5` would silently mean
//!   Sunday–Thursday. In a 5-field schedule the day-of-week field is therefore translated into names
//!   (`1-5` → `Mon,Tue,Wed,Thu,Fri`). In a 6/7-field schedule a weekday number is refused: the 6-field
//!   dialects disagree (Quartz and the crate: `1` = Sunday; Spring: `1` = Monday), and a wrong guess
//!   shifts a window by a day. Names (`Mon-Fri`) mean the same everywhere and are always accepted.
//! - Standard cron fires when *either* a restricted day-of-month or a restricted day-of-week matches;
//!   the crate only when both do. A 5-field schedule that restricts both (neither starts with `*`) is
//!   refused; write two windows instead.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use std::str::FromStr;

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

/// Why a schedule expression was refused; the message is one line, for `FILE:LINE:COL: …` diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

/// Weekday names in standard cron's numbering: index 0 (and 7) is Sunday.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Reads a window schedule: standard 5-field cron, or 6/7 fields with seconds (and year), or a
/// shorthand (`@daily`, `@weekly`, …). See the module documentation for how weekdays are read.
pub fn parse_schedule(text: &str) -> Result<Schedule, ScheduleError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let expression = match fields.as_slice() {
        [shorthand] if shorthand.starts_with('@') => shorthand.to_string(),
        [minute, hour, day_of_month, month, day_of_week] => {
            if restricted(day_of_month) && restricted(day_of_week) {
                return Err(ScheduleError(format!(
                    "day-of-month `{day_of_month}` and day-of-week `{day_of_week}` are both restricted: standard cron fires when either matches, tagwatch's schedule engine only when both do; use two windows, one for each"
                )));
            }
            let day_of_week = standard_weekdays(day_of_week)?;
            format!("0 {minute} {hour} {day_of_month} {month} {day_of_week}")
        }
        [_, _, _, _, _, day_of_week] | [_, _, _, _, _, day_of_week, _] => {
            refuse_weekday_numbers(day_of_week)?;
            fields.join(" ")
        }
        _ => {
            return Err(ScheduleError(format!(
                "{} field(s); expected 5 (minute hour day-of-month month day-of-week), or 6/7 with seconds first (and a year last)",
                fields.len()
            )));
        }
    };
    Schedule::from_str(&expression).map_err(|error| {
        // The crate's error draws a caret over several lines; its last line says what is wrong.
        let detail = error.to_string();
        ScheduleError(detail.lines().last().unwrap_or_default().trim().to_string())
    })
}

/// Whether a day field restricts the days (Vixie cron: it does unless it starts with `*`).
fn restricted(field: &str) -> bool {
    !(field.starts_with('*') || field == "?")
}

/// A standard day-of-week field (`0`–`7`, names, ranges, lists, steps) as the crate's weekday names.
fn standard_weekdays(field: &str) -> Result<String, ScheduleError> {
    let bad = |why: String| {
        ScheduleError(format!(
            "day-of-week `{field}`: {why} (0 or 7 = Sun, 1 = Mon … 6 = Sat, or names)"
        ))
    };
    let mut days = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => match step.parse::<usize>() {
                Ok(step) if step > 0 => (base, step),
                _ => return Err(bad(format!("`{step}` is not a step"))),
            },
            None => (item, 1),
        };
        let (first, last) = match base {
            "*" | "?" => (0, 7),
            _ => match base.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (
                        weekday(from).ok_or_else(|| bad(format!("`{from}` is not a weekday")))?,
                        weekday(to).ok_or_else(|| bad(format!("`{to}` is not a weekday")))?,
                    );
                    if from > to {
                        return Err(bad(format!("the range `{base}` runs backwards")));
                    }
                    (from, to)
                }
                None if step > 1 => {
                    return Err(bad(format!("a step needs `*` or a range, not `{base}`")));
                }
                None => {
                    let day =
                        weekday(base).ok_or_else(|| bad(format!("`{base}` is not a weekday")))?;
                    (day, day)
                }
            },
        };
        for day in (first..=last).step_by(step) {
            days[day % 7] = true;
        }
    }
    if days.iter().all(|day| *day) {
        return Ok("*".to_string());
    }
    let names: Vec<&str> = WEEKDAYS
        .iter()
        .zip(days)
        .filter_map(|(name, on)| on.then_some(*name))
        .collect();
    Ok(names.join(","))
}

/// A weekday in standard numbering (0–7, 7 = Sunday again) from a number or an English name (the
/// names the `cron` crate knows: `Mon`, `Monday`, `Tues`, `Thurs`, any case).
fn weekday(text: &str) -> Option<usize> {
    if let Ok(number) = text.parse::<usize>() {
        return (number <= 7).then_some(number);
    }
    const NAMES: [(&str, usize); 16] = [
        ("sun", 0),
        ("sunday", 0),
        ("mon", 1),
        ("monday", 1),
        ("tue", 2),
        ("tues", 2),
        ("tuesday", 2),
        ("wed", 3),
        ("wednesday", 3),
        ("thu", 4),
        ("thurs", 4),
        ("thursday", 4),
        ("fri", 5),
        ("friday", 5),
        ("sat", 6),
        ("saturday", 6),
    ];
    let lower = text.to_ascii_lowercase();
    NAMES
        .iter()
        .find_map(|(name, day)| (*name == lower).then_some(*day))
}

/// A 6/7-field day-of-week field may use names only (a step after `*` or a range is a count, fine).
fn refuse_weekday_numbers(field: &str) -> Result<(), ScheduleError> {
    let numbered = field.split(',').any(|item| {
        let base = item.split_once('/').map_or(item, |(base, _)| base);
        base.bytes().any(|b| b.is_ascii_digit())
    });
    if numbered {
        return Err(ScheduleError(format!(
            "day-of-week `{field}`: write weekday names (Mon-Fri) in a schedule with seconds; numbers are ambiguous there (1 is Sunday for Quartz and the cron crate, Monday for Spring and standard cron); a 5-field schedule reads them as standard cron"
        )));
    }
    Ok(())
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
    use chrono::{Datelike, Timelike};

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

    /// The weekdays a daily-at-09:00 schedule fires on in the week from Sunday 2026-11-22, Sunday first.
    fn firing_days(expression: &str) -> Vec<String> {
        let schedule = parse_schedule(expression).unwrap();
        let sunday = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        schedule
            .after(&sunday)
            .take_while(|t| *t < sunday + chrono::Duration::days(7))
            .map(|t| {
                assert_eq!(
                    (t.hour(), t.minute(), t.second()),
                    (9, 0, 0),
                    "{expression}"
                );
                t.weekday().to_string()
            })
            .collect()
    }

    #[test]
    fn five_field_schedule_is_standard_cron_at_second_zero() {
        assert_eq!(
            firing_days("0 9 * * *"),
            ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        );
        // docs/reference/configuration.md's merge-window example.
        assert_eq!(firing_days("0 9 * * Mon-Thu"), ["Mon", "Tue", "Wed", "Thu"]);
    }

    #[test]
    fn five_field_weekday_numbers_mean_what_standard_cron_means() {
        assert_eq!(
            firing_days("0 9 * * 1-5"),
            ["Mon", "Tue", "Wed", "Thu", "Fri"]
        );
        assert_eq!(firing_days("0 9 * * 1-5"), firing_days("0 9 * * Mon-Fri"));
        assert_eq!(firing_days("0 9 * * 0"), ["Sun"]);
        assert_eq!(firing_days("0 9 * * 7"), ["Sun"]);
        assert_eq!(firing_days("0 9 * * 5-7"), ["Sun", "Fri", "Sat"]);
        assert_eq!(firing_days("0 9 * * 6,0"), ["Sun", "Sat"]);
        assert_eq!(firing_days("0 9 * * */2"), ["Sun", "Tue", "Thu", "Sat"]);
        assert_eq!(firing_days("0 9 * * 1-5/2"), ["Mon", "Wed", "Fri"]);
        assert_eq!(firing_days("0 9 * * mon,FRIDAY"), ["Mon", "Fri"]);
    }

    #[test]
    fn weekday_names_mean_the_same_with_and_without_seconds() {
        assert_eq!(
            firing_days("0 0 9 * * Mon-Fri"),
            firing_days("0 9 * * Mon-Fri")
        );
        assert_eq!(firing_days("0 0 9 * * Sun"), ["Sun"]);
        assert_eq!(firing_days("0 0 9 * * Sat 2026"), ["Sat"]);
        assert_eq!(firing_days("0 0 9 * * *"), firing_days("0 9 * * *"));
    }

    #[test]
    fn weekday_numbers_in_a_schedule_with_seconds_are_refused() {
        for expression in [
            "0 0 9 * * 1-5",
            "0 0 9 * * 0",
            "0 0 9 * * 7",
            "0 0 9 ? * 2-6 2027",
        ] {
            let error = parse_schedule(expression).unwrap_err().to_string();
            assert!(
                error.contains("write weekday names"),
                "{expression}: {error}"
            );
        }
    }

    #[test]
    fn five_field_schedule_restricting_both_day_fields_is_refused() {
        let error = parse_schedule("0 9 1 * Mon").unwrap_err().to_string();
        assert!(error.contains("both restricted"), "{error}");
        // `*` or a `*/n` step leaves a day field unrestricted, as in Vixie cron.
        assert!(parse_schedule("0 9 */2 * Mon").is_ok());
        assert!(parse_schedule("0 9 1 * *").is_ok());
    }

    #[test]
    fn malformed_schedules_are_refused_with_a_reason() {
        for (expression, why) in [
            ("every monday", "2 field(s)"),
            ("0 9 * *", "4 field(s)"),
            ("0 9 * * 8", "`8` is not a weekday"),
            ("0 9 * * Fri-Mon", "runs backwards"),
            ("0 9 * * 1/2", "a step needs"),
            ("0 9 * * */0", "is not a step"),
            ("0 25 * * *", "Hours"),
        ] {
            let error = parse_schedule(expression).unwrap_err().to_string();
            assert!(error.contains(why), "{expression}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        assert!(parse_schedule("@daily").is_ok());
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
