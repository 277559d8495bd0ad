//! `meridian-bench-plot RESULTS.json OUT_PREFIX` draws the PNG plots of `make bench`.
//!
//! It owns only drawing: the driver (`bench/bench.py`) measures, and writes a `plots` section
//! into its results JSON that says what to draw. Two kinds of chart:
//! - `latency`: one line per server through its p50, p90, p99, p99.9 and max (log scale, µs);
//! - `bars`: grouped bars, one group per scenario and one bar per server (e.g. lookups/s).
//!
//! Text needs a TrueType font. The crate does not ship one (we commit no third-party files):
//! it reads `$MERIDIAN_PLOT_FONT`, else the first DejaVu/Liberation/any `.ttf` under
//! /usr/share/fonts, and fails with a message naming the variable when there is none.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use serde_json::Value;
use std::error::Error;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Pixel size of every chart; large enough for five legend entries.
const CHART_SIZE_PX: (u32, u32) = (960, 560);
/// Percentile labels, in the order the driver writes the points.
const PERCENTILE_LABELS: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];
/// Fonts tried before searching /usr/share/fonts; the first that exists is used.
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
/// How deep the fallback font search descends under /usr/share/fonts.
const FONT_SEARCH_DEPTH_MAX: u32 = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: meridian-bench-plot RESULTS.json OUT_PREFIX  (writes OUT_PREFIX-<chart>.png)");
        std::process::exit(2);
    }
    match run(Path::new(&args[1]), &args[2]) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
        }
        Err(error) => {
            eprintln!("meridian-bench-plot: {error}");
            std::process::exit(1);
        }
    }
}

fn run(results_path: &Path, out_prefix: &str) -> Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string(results_path).map_err(|e| format!("cannot read {}: {e}", results_path.display()))?;
    let results: Value = serde_json::from_str(&text)?;
    load_font()?;
    let charts = results["plots"].as_array().ok_or("results JSON has no `plots` array")?;
    let mut written = Vec::new();
    for chart in charts {
        let name = chart["name"].as_str().ok_or("a plot has no `name`")?;
        let path = PathBuf::from(format!("{out_prefix}-{name}.png"));
        match chart["kind"].as_str() {
            Some("latency") => draw_latency(&path, chart)?,
            Some("bars") => draw_bars(&path, chart)?,
            other => return Err(format!("plot {name}: unknown kind {other:?}").into()),
        }
        written.push(path);
    }
    Ok(written)
}

fn load_font() -> Result<()> {
    let path = match std::env::var_os("MERIDIAN_PLOT_FONT") {
        Some(path) => PathBuf::from(path),
        None => FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| find_ttf(Path::new("/usr/share/fonts"), FONT_SEARCH_DEPTH_MAX))
            .ok_or("no TrueType font found under /usr/share/fonts; set MERIDIAN_PLOT_FONT=/path/to/font.ttf")?,
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read font {}: {e}", path.display()))?;
    // plotters keeps registered fonts for the life of the process, hence the 'static leak (once).
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a usable TrueType font", path.display()))?;
    Ok(())
}

fn find_ttf(dir: &Path, depth_left: u32) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    if let Some(ttf) = entries.iter().find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf"))) {
        return Some(ttf.clone());
    }
    if depth_left == 0 {
        return None;
    }
    entries.iter().filter(|p| p.is_dir()).find_map(|p| find_ttf(p, depth_left - 1))
}

fn series_color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(127, 127, 127),
    ];
    COLORS[index % COLORS.len()]
}

/// `{"title", "y_label", "series": [{"name", "values": [p50, p90, p99, p999, max]}]}`, in µs.
fn draw_latency(path: &Path, chart: &Value) -> Result<()> {
    let title = chart["title"].as_str().unwrap_or("latency");
    let series = parse_series(chart)?;
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| *v > 0.0).collect();
    let y_max = all.iter().copied().fold(1.0, f64::max) * 2.0;
    let y_min = (all.iter().copied().fold(f64::MAX, f64::min) / 2.0).max(1.0);

    let root = BitMapBackend::new(path, CHART_SIZE_PX).into_drawing_area();
    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0i32..(PERCENTILE_LABELS.len() as i32 - 1), (y_min..y_max).log_scale())?;
    ctx.configure_mesh()
        .x_labels(PERCENTILE_LABELS.len())
        .x_label_formatter(&|x| PERCENTILE_LABELS.get(*x as usize).copied().unwrap_or("").to_string())
        .y_desc(chart["y_label"].as_str().unwrap_or("latency, log scale"))
        .y_label_formatter(&|y| format_us(*y))
        .draw()?;
    for (index, (name, values)) in series.iter().enumerate() {
        let color = series_color(index);
        let points: Vec<(i32, f64)> =
            values.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(i, v)| (i as i32, *v)).collect();
        ctx.draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
        ctx.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `{"title", "y_label", "groups": [names], "series": [{"name", "values": [one per group]}]}`.
/// A missing value (null) leaves a gap, so a skipped peer is visible as absent, not as zero.
fn draw_bars(path: &Path, chart: &Value) -> Result<()> {
    let title = chart["title"].as_str().unwrap_or("throughput");
    let groups: Vec<String> = chart["groups"]
        .as_array()
        .ok_or("bars plot without `groups`")?
        .iter()
        .map(|g| g.as_str().unwrap_or("?").to_string())
        .collect();
    let series = parse_series(chart)?;
    let y_max = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(1.0, f64::max) * 1.15;
    let group_count = groups.len().max(1);

    let root = BitMapBackend::new(path, CHART_SIZE_PX).into_drawing_area();
    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..group_count as f64, 0f64..y_max)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(chart["y_label"].as_str().unwrap_or(""))
        .y_label_formatter(&|y| format_count(*y))
        .draw()?;
    // Group names under each group, drawn as text because the x axis is continuous.
    let label_style = TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (g, name) in groups.iter().enumerate() {
        let label = EmptyElement::at((g as f64 + 0.5, 0.0)) + Text::new(name.clone(), (0, 6), label_style.clone());
        ctx.draw_series(std::iter::once(label))?;
    }
    let bar_width = 0.8 / series.len().max(1) as f64;
    for (index, (name, values)) in series.iter().enumerate() {
        let color = series_color(index);
        let bars = values.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(g, v)| {
            let left = g as f64 + 0.1 + index as f64 * bar_width;
            Rectangle::new([(left, 0.0), (left + bar_width * 0.9, *v)], color.filled())
        });
        ctx.draw_series(bars)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Series as (name, values); null or missing values become 0 (not drawn).
fn parse_series(chart: &Value) -> Result<Vec<(String, Vec<f64>)>> {
    let series = chart["series"].as_array().ok_or("plot without `series`")?;
    Ok(series
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap_or("?").to_string();
            let values = s["values"].as_array().map(|v| v.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect());
            (name, values.unwrap_or_default())
        })
        .collect())
}

fn format_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.1}s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.1}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

fn format_count(n: f64) -> String {
    if n >= 1_000_000.0 {
        format!("{:.1}M", n / 1_000_000.0)
    } else if n >= 1000.0 {
        format!("{:.0}k", n / 1000.0)
    } else {
        format!("{n:.0}")
    }
}
