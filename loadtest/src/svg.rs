//! A hand-written SVG latency-percentile plot: log-scaled percentile axis from 0 to 99.99
//! (one decade per nine), linear latency axis in milliseconds, one polyline per series, legend.

use std::fmt::Write as _;

/// Plot width in SVG user units.
const WIDTH: f64 = 900.0;
/// Plot height in SVG user units.
const HEIGHT: f64 = 520.0;
/// Left margin: room for the latency tick labels.
const LEFT: f64 = 80.0;
/// Right margin.
const RIGHT: f64 = 30.0;
/// Top margin: room for the title.
const TOP: f64 = 50.0;
/// Bottom margin: room for the percentile tick labels.
const BOTTOM: f64 = 60.0;
/// Nines shown on the x axis: 0, 90, 99, 99.9, 99.99.
const NINES: u32 = 4;
/// Line colours, cycled per series.
const COLOURS: [&str; 6] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// One line on the plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Drawn dashed (used for time-to-first-token lines).
    pub dashed: bool,
    /// (percentile 0..100, latency ms) points, percentile ascending.
    pub points: Vec<(f64, f64)>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Position on the x axis (0..=NINES) of a percentile: `log10(1 / (1 - p))`, capped.
fn nines(p: f64) -> f64 {
    let max = f64::from(NINES);
    if p >= 100.0 {
        return max;
    }
    (-(1.0 - p / 100.0).log10()).clamp(0.0, max)
}

/// A "nice" axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

/// Render the plot.
pub fn render(title: &str, series: &[Series]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_max = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let x = |p: f64| LEFT + nines(p) / f64::from(NINES) * plot_w;
    let y = |ms: f64| TOP + plot_h - (ms / y_max).clamp(0.0, 1.0) * plot_h;

    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Grid and tick labels.
    for i in 0..=NINES {
        let p = 100.0 * (1.0 - 10f64.powi(-(i as i32)));
        let gx = x(p);
        let label = match i {
            0 => "0".to_owned(),
            _ => format!("{}", (p * 100.0).round() / 100.0),
        };
        let _ = writeln!(
            out,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{:.1}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    for i in 0..=5u32 {
        let v = y_max * f64::from(i) / 5.0;
        let gy = y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{:.1}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 8.0,
            gy + 4.0,
            trim_float(v)
        );
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency (ms)</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // Series and legend.
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS.get(i % COLOURS.len()).unwrap_or(&"black");
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let mut points = String::new();
        for (p, ms) in &s.points {
            if p.is_finite() && ms.is_finite() {
                let _ = write!(points, "{:.1},{:.1} ", x(*p), y(*ms));
            }
        }
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
            points.trim_end()
        );
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let lx = LEFT + 14.0;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// A minimal XML well-formedness check: every tag closes in order, attributes are quoted,
    /// and text holds no raw `<` or `&` outside entities.
    fn well_formed(doc: &str) -> Result<usize, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = doc;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open])?;
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or("close without open")?;
                if top != name.trim() {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let body = tag.trim_end_matches('/');
                let name = body.split_whitespace().next().ok_or("empty tag")?;
                if !body.matches('"').count().is_multiple_of(2) {
                    return Err(format!("odd quotes in <{body}>"));
                }
                elements += 1;
                if !self_closing {
                    stack.push(name.to_owned());
                }
            }
            rest = &rest[close + 1..];
        }
        check_text(rest)?;
        if stack.is_empty() {
            Ok(elements)
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    fn check_text(t: &str) -> Result<(), String> {
        let mut rest = t;
        while let Some(i) = rest.find('&') {
            let semi = rest[i..].find(';').ok_or("bare &")?;
            let ent = &rest[i + 1..i + semi];
            if !["amp", "lt", "gt", "quot", "apos"].contains(&ent) {
                return Err(format!("unknown entity {ent}"));
            }
            rest = &rest[i + semi + 1..];
        }
        Ok(())
    }

    #[test]
    fn plot_is_well_formed_with_both_series() {
        let series = vec![
            Series {
                name: "target <gateway> & co".into(),
                dashed: false,
                points: vec![(0.0, 0.2), (90.0, 0.4), (99.0, 0.9), (99.99, 3.0)],
            },
            Series {
                name: "compare".into(),
                dashed: true,
                points: vec![(0.0, 0.1), (90.0, 0.2), (99.0, 0.5), (99.99, 1.0)],
            },
        ];
        let svg = render("latency \"by\" percentile", &series);
        let elements = well_formed(&svg).unwrap();
        assert!(elements > 10);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("target &lt;gateway&gt; &amp; co"));
        assert!(svg.contains(">compare<"));
        assert!(svg.contains("stroke-dasharray"));
        // The p99.99 point of the first series sits at the right edge and at the top (3 ms
        // rounds the axis up to 5 ms, so it is 60% of the height up).
        let right = LEFT + (WIDTH - LEFT - RIGHT);
        let top = TOP + (HEIGHT - TOP - BOTTOM) * 0.4;
        assert!(svg.contains(&format!("{right:.1},{top:.1}")), "{svg}");
    }

    #[test]
    fn checker_catches_breakage() {
        assert!(well_formed("<a><b></a>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
        assert!(well_formed("<a x=\"1></a>").is_err());
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(0.12), 0.2);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 4.0);
        assert_eq!(nines(0.0), 0.0);
        assert_eq!(trim_float(2.5), "2.5");
        assert_eq!(trim_float(2.0), "2");
        let empty = render("t", &[]);
        assert!(well_formed(&empty).is_ok());
    }
}
