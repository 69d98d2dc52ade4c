//! An SVG plot of latency by percentile that overlays several runs — the picture that tells at a
//! glance whether one server's tail is worse than another's.
//!
//! * x axis: percentile on a "nines" scale, `x = -log10(1 - p)`, so 90 %, 99 %, 99.9 % … are
//!   evenly spaced and the tail gets as much room as the median;
//! * y axis: latency in milliseconds on a log scale, decades labelled;
//! * one coloured line per run, a legend with each run's label.
//!
//! ```
//! use tessera_bench::plot::{render_svg, Series};
//! let svg = render_svg("GET 4 KiB", &[Series { label: "nginx".into(), points: vec![(0.5, 0.05), (0.99, 0.2), (1.0, 3.0)] }]);
//! assert!(svg.starts_with("<svg") && svg.contains("nginx"));
//! ```

use std::fmt::Write as _;

/// One run: (percentile in 0..=1, latency in ms) points, as read from an `.hgrm` file.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;
/// Most nines the x axis shows (99.9999 %); the 100 % point is drawn at this position.
const NINES_MAX: f64 = 6.0;
/// Fewest nines shown, so that short runs still get a readable axis (up to 99.9 %).
const NINES_MIN: f64 = 3.0;
/// Latencies below this are drawn at this value (log scale cannot show 0).
const LATENCY_MS_FLOOR: f64 = 0.001;
/// Approximate width of one label character at font-size 13 (sizes the legend box).
const LEGEND_CHAR_WIDTH: f64 = 7.5;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn nines(quantile: f64) -> f64 {
    if quantile >= 1.0 {
        return f64::INFINITY;
    }
    -(1.0 - quantile).log10()
}

/// The axes' ranges and the mapping from data to picture coordinates.
struct Frame {
    /// Right end of the x axis, in nines.
    x_max: f64,
    /// Decades (log10 ms) at the bottom and top of the y axis.
    y_low: f64,
    y_high: f64,
}

const PLOT_WIDTH: f64 = WIDTH - LEFT - RIGHT;
const PLOT_HEIGHT: f64 = HEIGHT - TOP - BOTTOM;

impl Frame {
    fn fit(series: &[Series]) -> Frame {
        let all = series.iter().flat_map(|s| s.points.iter());
        let finite_nines = all
            .clone()
            .map(|&(q, _)| nines(q))
            .filter(|n| n.is_finite())
            .fold(0.0, f64::max);
        let values = all.map(|&(_, v)| v.max(LATENCY_MS_FLOOR));
        let (low, high) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (y_low, y_high) = if low.is_finite() {
            let (lo, hi) = (low.log10().floor(), high.log10().ceil());
            (lo, if hi > lo { hi } else { lo + 1.0 })
        } else {
            (-2.0, 1.0)
        };
        Frame {
            x_max: finite_nines.ceil().clamp(NINES_MIN, NINES_MAX),
            y_low,
            y_high,
        }
    }

    fn x_of(&self, quantile: f64) -> f64 {
        LEFT + nines(quantile).min(self.x_max) / self.x_max * PLOT_WIDTH
    }

    fn y_of(&self, ms: f64) -> f64 {
        let fraction = (ms.max(LATENCY_MS_FLOOR).log10() - self.y_low) / (self.y_high - self.y_low);
        TOP + PLOT_HEIGHT - fraction * PLOT_HEIGHT
    }
}

/// Renders the plot. Series without points are listed in the legend but draw no line.
pub fn render_svg(title: &str, series: &[Series]) -> String {
    let frame = Frame::fit(series);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="17">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    draw_axes(&mut svg, &frame);
    for (index, run) in series
        .iter()
        .enumerate()
        .filter(|(_, run)| !run.points.is_empty())
    {
        let mut path = String::new();
        for &(q, ms) in &run.points {
            let _ = write!(path, "{:.1},{:.1} ", frame.x_of(q), frame.y_of(ms));
        }
        let colour = COLOURS[index % COLOURS.len()];
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.trim_end()
        );
    }
    draw_legend(&mut svg, series);
    svg.push_str("</svg>\n");
    svg
}

/// Grid lines, tick labels (0 %, 90 %, 99 %, … and one per latency decade), frame, axis titles.
fn draw_axes(svg: &mut String, frame: &Frame) {
    let bottom = TOP + PLOT_HEIGHT;
    for n in 0..=(frame.x_max as usize) {
        let x = frame.x_of(1.0 - 10f64.powi(-(n as i32)));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}" stroke="#ddd"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bottom + 20.0,
            percent_label(n)
        );
    }
    for decade in (frame.y_low as i32)..=(frame.y_high as i32) {
        let ms = 10f64.powi(decade);
        let y = frame.y_of(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + PLOT_WIDTH
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 4.0,
            latency_label(ms)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Percentile</text>"#,
        LEFT + PLOT_WIDTH / 2.0,
        HEIGHT - 20.0
    );
    let middle = TOP + PLOT_HEIGHT / 2.0;
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{middle:.1}" text-anchor="middle" transform="rotate(-90 20 {middle:.1})">Latency (log scale)</text>"#
    );
}

/// The legend sits bottom-right, where latency-by-percentile curves rarely go (they rise to the
/// right), on a white box so that a line passing under it cannot hide a label.
fn draw_legend(svg: &mut String, series: &[Series]) {
    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let box_w = 50.0 + longest * LEGEND_CHAR_WIDTH;
    let box_h = 12.0 + series.len() as f64 * 20.0;
    let (box_x, box_y) = (
        LEFT + PLOT_WIDTH - box_w - 10.0,
        TOP + PLOT_HEIGHT - box_h - 10.0,
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{box_x:.1}" y="{box_y:.1}" width="{box_w:.1}" height="{box_h:.1}" fill="white" fill-opacity="0.9" stroke="#999"/>"##
    );
    for (index, run) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let y = box_y + 16.0 + index as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="3"/>"#,
            box_x + 10.0,
            box_x + 34.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            box_x + 40.0,
            y + 4.0,
            escape(&run.label)
        );
    }
}

fn percent_label(nines: usize) -> String {
    match nines {
        0 => "0%".to_string(),
        n => format!(
            "{}%",
            &format!(
                "{:.*}",
                n.saturating_sub(2),
                100.0 - 10f64.powi(2 - n as i32)
            )
        ),
    }
}

fn latency_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms} ms")
    } else {
        format!("{} µs", (ms * 1000.0).round())
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.lines()
            .filter(|l| l.starts_with("<polyline"))
            .map(|l| {
                let start = l.find("points=\"").unwrap() + 8;
                let end = start + l[start..].find('"').unwrap();
                l[start..end]
                    .split(' ')
                    .map(|pair| {
                        let (x, y) = pair.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn overlays_every_series_inside_the_plot_area() {
        let fast = Series {
            label: "tessera".into(),
            points: vec![
                (0.0, 0.03),
                (0.5, 0.05),
                (0.99, 0.2),
                (0.999, 0.9),
                (1.0, 4.0),
            ],
        };
        let slow = Series {
            label: "nginx <peer> & co".into(),
            points: vec![(0.0, 0.05), (0.5, 0.08), (0.99, 1.0), (1.0, 1000.0)],
        };
        let svg = render_svg("GET 4 KiB @ 1000/s", &[fast, slow]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        assert!(
            svg.contains("nginx &lt;peer&gt; &amp; co"),
            "labels are escaped"
        );
        assert!(svg.contains(">99.9%<") && svg.contains(">90%<") && svg.contains(">1 s<"));
        let lines = polyline_points(&svg);
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert!(
                line.windows(2).all(|w| w[0].0 <= w[1].0),
                "x grows with the percentile"
            );
            assert!(
                line.windows(2).all(|w| w[0].1 >= w[1].1),
                "higher latency is drawn higher"
            );
            for &(x, y) in line {
                assert!(
                    (LEFT..=WIDTH - RIGHT).contains(&x) && (TOP..=HEIGHT - BOTTOM).contains(&y),
                    "({x}, {y})"
                );
            }
        }
        // The slower series' maximum (1 s) is drawn above the faster one's (4 ms).
        assert!(lines[1].last().unwrap().1 < lines[0].last().unwrap().1);
    }

    #[test]
    fn percent_labels_count_nines() {
        let labels: Vec<String> = (0..=5).map(percent_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert_eq!(latency_label(0.01), "10 µs");
        assert_eq!(latency_label(100.0), "100 ms");
        assert_eq!(latency_label(10000.0), "10 s");
    }

    #[test]
    fn empty_input_still_renders_axes() {
        let svg = render_svg(
            "nothing",
            &[Series {
                label: "empty".into(),
                points: vec![],
            }],
        );
        assert!(svg.contains("Percentile") && svg.contains("empty"));
        assert!(polyline_points(&svg).is_empty());
    }
}
