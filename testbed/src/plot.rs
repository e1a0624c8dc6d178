//! `testbed bench --plot FILE.svg`: a hand-written SVG of one run, in two panels: (a) the
//! latency of each enrollment against when it started (one dot each, failures in red), (b)
//! the distribution of the successful enrollments' latencies, with p50 and p99 marked.

use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One enrollment of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When it started, in seconds since the load started.
    pub start_s: f64,
    /// How long it took (with its retries), in milliseconds.
    pub latency_ms: f64,
    pub ok: bool,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 760.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const OK_COLOUR: &str = "#1f77b4";
const FAILED_COLOUR: &str = "#d62728";

/// The path of one run's plot when an invocation makes several: `parts` (the values that vary
/// between its runs) added before the `.svg`, e.g. `lat.svg` and `["coaps", "c8"]` give
/// `lat-coaps-c8.svg`.
pub fn run_path(base: &Path, parts: &[String]) -> PathBuf {
    if parts.is_empty() {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map_or_else(|| "bench".into(), |n| n.to_string_lossy().into_owned());
    let (stem, ext) = match name.strip_suffix(".svg") {
        Some(stem) => (stem, ".svg"),
        None => (name.as_str(), ""),
    };
    base.with_file_name(format!("{stem}-{}{ext}", parts.join("-")))
}

/// Write the plot of `samples` to `path`.
pub fn write(path: &Path, title: &str, samples: &[Sample]) -> Result<()> {
    std::fs::write(path, svg(title, samples))
        .with_context(|| format!("writing the plot {}", path.display()))
}

/// The SVG document of `samples` under `title`.
pub fn svg(title: &str, samples: &[Sample]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    scatter(&mut s, samples, 60.0, 280.0);
    histogram(&mut s, samples, 430.0, 260.0);
    s.push_str("</svg>\n");
    s
}

/// Panel (a): latency against start time, one circle per sample.
fn scatter(s: &mut String, samples: &[Sample], top: f64, height: f64) {
    let end = samples
        .iter()
        .map(|p| p.start_s + p.latency_ms / 1000.0)
        .fold(0.0, f64::max);
    let slowest = samples.iter().map(|p| p.latency_ms).fold(0.0, f64::max);
    let x = Axis::new(end, LEFT, WIDTH - RIGHT);
    let y = Axis::new(slowest, top + height, top);
    frame(
        s,
        &x,
        &y,
        "(a) latency of each enrollment, by when it started",
        "time since the load started (s)",
        "latency (ms)",
    );
    for p in samples {
        let colour = if p.ok { OK_COLOUR } else { FAILED_COLOUR };
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}" fill-opacity="0.6"/>"#,
            x.at(p.start_s),
            y.at(p.latency_ms)
        );
    }
    let failed = samples.iter().filter(|p| !p.ok).count();
    for (i, (label, colour)) in [
        (format!("ok ({})", samples.len() - failed), OK_COLOUR),
        (format!("failed ({failed})"), FAILED_COLOUR),
    ]
    .iter()
    .enumerate()
    {
        let ly = top + 10.0 + 16.0 * i as f64;
        let lx = WIDTH - RIGHT - 110.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="8" height="8" fill="{colour}"/><text x="{}" y="{}">{label}</text>"#,
            ly - 8.0,
            lx + 14.0,
            ly
        );
    }
}

/// Panel (b): a histogram of the successful enrollments' latencies, p50 and p99 marked.
fn histogram(s: &mut String, samples: &[Sample], top: f64, height: f64) {
    let mut ok: Vec<f64> = samples
        .iter()
        .filter(|p| p.ok)
        .map(|p| p.latency_ms)
        .collect();
    ok.sort_by(f64::total_cmp);
    let x = Axis::new(ok.last().copied().unwrap_or(0.0), LEFT, WIDTH - RIGHT);
    let bins = ((ok.len() as f64).sqrt().ceil() as usize).clamp(1, 50);
    let bin = x.max / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in &ok {
        let i = ((v / bin) as usize).min(bins - 1);
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    let y = Axis::new(
        counts.iter().copied().max().unwrap_or(0) as f64,
        top + height,
        top,
    );
    frame(
        s,
        &x,
        &y,
        "(b) latency distribution of the successful enrollments",
        "latency (ms)",
        "enrollments",
    );
    for (i, &c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        let (x0, x1) = (x.at(i as f64 * bin), x.at((i + 1) as f64 * bin));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{OK_COLOUR}" fill-opacity="0.7" stroke="white" stroke-width="0.5"/>"#,
            y.at(c as f64),
            x1 - x0,
            y.at(0.0) - y.at(c as f64)
        );
    }
    if ok.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no successful enrollments</text>"#,
            WIDTH / 2.0,
            top + height / 2.0
        );
        return;
    }
    for (i, (name, q)) in [("p50", 0.50), ("p99", 0.99)].into_iter().enumerate() {
        let v = crate::bench::percentile(&ok, q);
        let px = x.at(v);
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{}" stroke="black" stroke-dasharray="4 3"/><text x="{:.1}" y="{}">{name} {v:.1} ms</text>"#,
            top + height,
            px + 4.0,
            top + 12.0 + 14.0 * i as f64
        );
    }
}

/// A panel's title, axes, ticks and axis labels.
fn frame(s: &mut String, x: &Axis, y: &Axis, title: &str, x_label: &str, y_label: &str) {
    let (top, bottom) = (y.to, y.from);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="14">{}</text>"#,
        top - 10.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        r#"<path d="M{LEFT} {top} V{bottom} H{}" fill="none" stroke="black"/>"#,
        x.to
    );
    for v in x.ticks() {
        let px = x.at(v);
        let _ = writeln!(
            s,
            r#"<line x1="{px:.1}" y1="{bottom}" x2="{px:.1}" y2="{}" stroke="black"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            bottom + 5.0,
            bottom + 18.0,
            x.label(v)
        );
    }
    for v in y.ticks() {
        let py = y.at(v);
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}" stroke="black"/><line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 5.0,
            x.to,
            LEFT - 8.0,
            py + 4.0,
            y.label(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (LEFT + x.to) / 2.0,
        bottom + 36.0,
        escape(x_label)
    );
    let (lx, ly) = (LEFT - 55.0, (top + bottom) / 2.0);
    let _ = writeln!(
        s,
        r#"<text x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        escape(y_label)
    );
}

/// A linear axis from 0 to a round maximum at or above the data's, drawn from pixel `from`
/// (value 0) to pixel `to`.
struct Axis {
    max: f64,
    step: f64,
    from: f64,
    to: f64,
}

impl Axis {
    fn new(data_max: f64, from: f64, to: f64) -> Self {
        let data_max = if data_max > 0.0 { data_max } else { 1.0 };
        let raw = data_max / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        let max = (data_max / step).ceil() * step;
        Self {
            max,
            step,
            from,
            to,
        }
    }

    fn at(&self, v: f64) -> f64 {
        self.from + (self.to - self.from) * v / self.max
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = (self.max / self.step).round() as usize;
        (0..=n).map(|i| i as f64 * self.step)
    }

    fn label(&self, v: f64) -> String {
        let decimals = if self.step >= 1.0 {
            0
        } else {
            (-self.step.log10()).ceil() as usize
        };
        format!("{v:.decimals$}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether `xml` is well-formed as far as this module writes it: tags nest and close, one root,
/// no stray `<` or `&` in text. For the tests, where no XML parser is at hand.
pub fn check_tags(xml: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = xml;
    while let Some(i) = rest.find('<') {
        check_text(rest.get(..i).unwrap_or(""))?;
        let tag_end = rest
            .get(i..)
            .and_then(|t| t.find('>'))
            .ok_or("a tag is not closed")?;
        let tag = rest.get(i + 1..i + tag_end).unwrap_or("");
        rest = rest.get(i + tag_end + 1..).unwrap_or("");
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if tag.matches('"').count() % 2 != 0 || tag.contains('<') {
            return Err(format!("a malformed tag: <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(o) if o == name.trim() => {}
                o => return Err(format!("</{name}> closes {o:?}")),
            }
            continue;
        }
        if open.is_empty() {
            roots += 1;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        if name.is_empty() {
            return Err(format!("a tag without a name: <{tag}>"));
        }
        if !tag.ends_with('/') {
            open.push(name);
        }
    }
    check_text(rest)?;
    if !open.is_empty() {
        return Err(format!("unclosed: {open:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let entity = text.get(i..).and_then(|t| t.split_once(';')).map(|e| e.0);
        if !matches!(entity, Some("&amp" | "&lt" | "&gt" | "&quot" | "&apos")) {
            return Err(format!("a stray & in {text:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        (0..30)
            .map(|i| Sample {
                start_s: f64::from(i) * 0.1,
                latency_ms: 20.0 + f64::from(i % 7) * 3.5,
                ok: i % 10 != 3,
            })
            .collect()
    }

    #[test]
    fn the_plot_is_well_formed_with_a_dot_per_sample_and_its_labels() {
        let samples = samples();
        let svg = svg("bench <https> & co", &samples);
        check_tags(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<circle ").count(), samples.len());
        assert_eq!(
            svg.matches(FAILED_COLOUR).count(),
            3 + 1,
            "3 dots and the legend"
        );
        for label in [
            "latency (ms)",
            "time since the load started (s)",
            "enrollments",
            "bench &lt;https&gt; &amp; co",
            "ok (27)",
            "failed (3)",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        let ok: Vec<f64> = {
            let mut v: Vec<f64> = samples
                .iter()
                .filter(|p| p.ok)
                .map(|p| p.latency_ms)
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let p50 = crate::bench::percentile(&ok, 0.5);
        let p99 = crate::bench::percentile(&ok, 0.99);
        assert!(svg.contains(&format!(">p50 {p50:.1} ms<")), "p50");
        assert!(svg.contains(&format!(">p99 {p99:.1} ms<")), "p99");
        // xmllint (Debian libxml2-utils), where installed, parses it as XML.
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &svg).expect("write");
        if let Ok(out) = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg(file.path())
            .output()
        {
            assert!(
                out.status.success(),
                "xmllint: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn no_samples_or_only_failures_still_plot() {
        for samples in [
            vec![],
            vec![Sample {
                start_s: 0.0,
                latency_ms: 5.0,
                ok: false,
            }],
        ] {
            let svg = svg("empty", &samples);
            check_tags(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
            assert!(svg.contains("no successful enrollments"));
            assert!(!svg.contains("NaN") && !svg.contains("=\"inf"), "{svg}");
        }
    }

    #[test]
    fn the_tag_check_catches_what_it_should() {
        assert!(check_tags("<a><b/></a>").is_ok());
        assert!(check_tags("<a><b></a>").is_err());
        assert!(check_tags("<a/><a/>").is_err());
        assert!(check_tags("<a>x & y</a>").is_err());
        assert!(check_tags("<a x=\"1></a>").is_err());
    }

    #[test]
    fn several_runs_get_their_values_before_the_extension() {
        let base = Path::new("out/lat.svg");
        assert_eq!(run_path(base, &[]), PathBuf::from("out/lat.svg"));
        assert_eq!(
            run_path(base, &["coaps".into(), "c8".into()]),
            PathBuf::from("out/lat-coaps-c8.svg")
        );
        assert_eq!(
            run_path(Path::new("lat"), &["c1".into()]),
            PathBuf::from("lat-c1")
        );
    }

    #[test]
    fn axes_end_on_round_numbers() {
        let a = Axis::new(87.0, 0.0, 100.0);
        assert_eq!((a.max, a.step), (100.0, 20.0));
        let a = Axis::new(0.42, 0.0, 100.0);
        assert!((a.max - 0.5).abs() < 1e-9 && (a.step - 0.1).abs() < 1e-9);
        assert_eq!(a.label(0.3), "0.3");
        assert_eq!(Axis::new(0.0, 0.0, 1.0).max, 1.0);
    }
}
