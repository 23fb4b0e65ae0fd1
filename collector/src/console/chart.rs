//! The overview's chart of flags opened and resolved per day: an inline SVG drawn on the
//! server (no script, no inline style: colours come from the stylesheet's classes), with the
//! same numbers in a table for screen readers and for reading exact values.

use maud::{html, Markup};

use crate::store::FlagDay;

/// Days the chart shows, ending today.
pub const DAYS: i64 = 30;
/// A day in µs.
pub const DAY_US: i64 = 86_400_000_000;

const W: i64 = 720;
const H: i64 = 180;
const PAD: i64 = 24;

fn label(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

/// The chart for the [`DAYS`] days up to `now_us` (days without flags drawn as zero).
pub fn flags_chart(days: &[FlagDay], now_us: i64) -> Markup {
    let today = now_us.div_euclid(DAY_US);
    let first = today - DAYS + 1;
    let series: Vec<FlagDay> = (first..=today)
        .map(|d| {
            days.iter()
                .find(|x| x.day == d)
                .copied()
                .unwrap_or(FlagDay {
                    day: d,
                    ..FlagDay::default()
                })
        })
        .collect();
    let max = series
        .iter()
        .map(|d| d.opened.max(d.resolved))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (W - 2 * PAD) / DAYS;
    let bar = (slot / 2 - 1).max(1);
    let y = |n: u64| H - PAD - (n as i64 * (H - 2 * PAD)) / max as i64;
    let total: (u64, u64) = series
        .iter()
        .fold((0, 0), |a, d| (a.0 + d.opened, a.1 + d.resolved));
    html! {
        figure class="chart" {
            svg viewBox={"0 0 " (W) " " (H)} role="img"
                aria-label={"Flags opened (" (total.0) ") and resolved (" (total.1) ") per day over the last " (DAYS) " days"} {
                line class="axis" x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) {}
                text class="tick" x="2" y=(PAD) { (max) }
                text class="tick" x="2" y=(H - PAD) { "0" }
                @for (i, d) in series.iter().enumerate() {
                    @let x = PAD + i as i64 * slot;
                    rect class="opened" x=(x) y=(y(d.opened)) width=(bar) height=(H - PAD - y(d.opened)) {
                        title { (label(d.day)) ": " (d.opened) " opened" }
                    }
                    rect class="resolved" x=(x + bar + 1) y=(y(d.resolved)) width=(bar) height=(H - PAD - y(d.resolved)) {
                        title { (label(d.day)) ": " (d.resolved) " resolved" }
                    }
                    @if (DAYS - 1 - i as i64) % 7 == 0 {
                        text class="tick" x=(x) y=(H - 6) { (label(d.day)) }
                    }
                }
            }
            figcaption {
                span class="key opened" { "■" } " opened  "
                span class="key resolved" { "■" } " resolved"
            }
            details {
                summary { "The numbers" }
                table {
                    thead { tr { th scope="col" { "Day" } th scope="col" class="num" { "Opened" } th scope="col" class="num" { "Resolved" } } }
                    tbody {
                        @for d in series.iter().filter(|d| d.opened + d.resolved > 0) {
                            tr { td { (label(d.day)) } td class="num" { (d.opened) } td class="num" { (d.resolved) } }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_every_day_and_scales_to_the_busiest() {
        let now = 20_000 * DAY_US + 5;
        let svg = flags_chart(
            &[
                FlagDay {
                    day: 20_000,
                    opened: 10,
                    resolved: 5,
                },
                FlagDay {
                    day: 19_000,
                    opened: 99,
                    resolved: 0,
                },
            ],
            now,
        )
        .into_string();
        assert_eq!(svg.matches("class=\"opened\"").count(), DAYS as usize);
        // The bar of the busiest day reaches the top; a day outside the window is not drawn.
        assert!(svg.contains(&format!("y=\"{PAD}\"")), "{svg}");
        assert!(svg.contains("Flags opened (10) and resolved (5)"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
    }
}
