//! `streamnmf plot`: a model's dictionary as a heat map (atoms over features, in Hz when
//! the features are frequency bins), its codes over time when given, and its loss
//! history, in one PNG (plotters).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use ndarray::{Array2, Axis};
use plotters::prelude::*;

/// Options of `plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// The model file.
    pub model: PathBuf,
    /// Codes to draw over time (a table written by `transform --out` or `fit --codes-out`).
    #[arg(long)]
    pub codes: Option<PathBuf>,
    /// The PNG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Width and height, pixels.
    #[arg(long, default_value = "1200x900", value_parser = size)]
    pub size: (u32, u32),
}

fn size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT"))?;
    let p = |v: &str| v.parse::<u32>().ok().filter(|v| (200..=8000).contains(v));
    match (p(w), p(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("'{s}': sizes from 200 to 8000 pixels")),
    }
}

/// Fonts plotters can draw text with (ab_glyph needs one registered).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    let path = std::env::var_os("STREAMNMF_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONTS.iter().map(PathBuf::from))
        .find(|p| p.is_file());
    let Some(path) = path else {
        bail!(
            "no font to draw text with: install fonts-dejavu-core (apt-get install \
             fonts-dejavu-core) or point STREAMNMF_FONT at a .ttf file"
        );
    };
    let bytes: &'static [u8] = Box::leak(std::fs::read(&path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{}: not a usable font", path.display()))
}

/// A temporary file beside `out` for a PNG, and the file to rename it onto once complete
/// (`out`, its links followed; never a directory or a device).
fn png_temp(out: &Path) -> Result<(tempfile::NamedTempFile, PathBuf)> {
    let dest = streamnmf::persist::replaceable(out)?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".streamnmf-plot-").suffix(".png");
    {
        // As `File::create` does: 0666 less the umask.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder
        .tempfile_in(&dir)
        .with_context(|| format!("{}: cannot write there", dir.display()))?;
    Ok((tmp, dest))
}

/// Frequencies of features named like `"125.0 Hz"`, when all are.
fn frequencies(names: &[String]) -> Option<Vec<f64>> {
    names
        .iter()
        .map(|n| n.strip_suffix(" Hz").and_then(|v| v.parse().ok()))
        .collect()
}

/// A perceptual-ish colour ramp over [0, 1]: dark blue, teal, yellow.
fn ramp(t: f64) -> RGBColor {
    let stops = [
        (0.0, (20, 20, 60)),
        (0.5, (30, 140, 140)),
        (1.0, (250, 230, 80)),
    ];
    let t = t.clamp(0.0, 1.0);
    let (a, b) = if t < 0.5 {
        (stops[0], stops[1])
    } else {
        (stops[1], stops[2])
    };
    let u = (t - a.0) / (b.0 - a.0);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * u) as u8;
    RGBColor(
        mix(a.1 .0, b.1 .0),
        mix(a.1 .1, b.1 .1),
        mix(a.1 .2, b.1 .2),
    )
}

/// Each row scaled to its maximum, on a 60 dB logarithmic scale.
fn log_rows(m: &Array2<f64>) -> Array2<f64> {
    let mut out = m.clone();
    for mut r in out.rows_mut() {
        let max = r.iter().cloned().fold(0.0, f64::max);
        r.mapv_inplace(|v| {
            if max > 0.0 && v > 0.0 {
                1.0 + (v / max).log10() / 3.0
            } else {
                0.0
            }
        });
    }
    out
}

pub fn run(a: PlotArgs) -> Result<()> {
    streamnmf::persist::replaceable(&a.out)?;
    let model = crate::read_any_model(&a.model)?;
    let h = &model.h;
    let codes = match &a.codes {
        Some(p) => {
            let (w, names) = streamnmf::io::read_components(p)?;
            let keep: Vec<usize> = (0..names.len()).filter(|&j| names[j] != "id").collect();
            let w = w.select(Axis(1), &keep);
            if w.ncols() != h.nrows() {
                bail!(
                    "{}: {} code columns, the model has {} atoms",
                    p.display(),
                    w.ncols(),
                    h.nrows()
                );
            }
            Some(w)
        }
        None => None,
    };
    register_font()?;
    let (tmp, dest) = png_temp(&a.out)?;
    draw(tmp.path(), &a, &model, codes.as_ref()).with_context(|| a.out.display().to_string())?;
    tmp.persist(&dest)
        .map_err(|e| e.error)
        .with_context(|| a.out.display().to_string())?;
    note!("plot written to {}", a.out.display());
    Ok(())
}

fn draw(
    path: &Path,
    a: &PlotArgs,
    model: &crate::AnyModel,
    codes: Option<&Array2<f64>>,
) -> Result<()> {
    let (h, meta, params) = (&model.h, &model.meta, &model.params);
    let root = BitMapBackend::new(path, a.size).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(a.size.1 * 55 / 100);
    let (k, p) = h.dim();
    let hz = frequencies(&meta.feature_names);
    let title = format!(
        "{}: {} atoms, {} loss{}",
        a.model.display(),
        k,
        params.loss(),
        if meta.atom_labels.is_empty() {
            String::new()
        } else {
            let mut l = meta.atom_labels.clone();
            l.dedup();
            format!(" ({})", l.join(", "))
        }
    );
    // Atoms: x = atom, y = feature (Hz when known), colour = level relative to the atom's
    // peak.
    let y_max = hz
        .as_ref()
        .and_then(|f| f.last().copied())
        .unwrap_or(p as f64);
    let y_of = |j: usize| hz.as_ref().map_or(j as f64, |f| f[j]);
    let step = if p > 1 { y_of(1) - y_of(0) } else { 1.0 };
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..k as f64, 0f64..y_max + step)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("atom")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(if hz.is_some() {
            "frequency (Hz)"
        } else {
            "feature"
        })
        .draw()?;
    let levels = log_rows(h);
    chart.draw_series((0..k).flat_map(|i| {
        let levels = &levels;
        (0..p).map(move |j| {
            Rectangle::new(
                // A little overlap: no hairline gaps where rounding splits pixels.
                [(i as f64, y_of(j)), (i as f64 + 1.0, y_of(j) + step * 1.5)],
                ramp(levels[[i, j]]).filled(),
            )
        })
    }))?;
    // Activations over time, or the loss history.
    match codes {
        Some(w) => {
            let (t, _) = w.dim();
            // At most ~1000 columns: the maximum of each block of frames.
            let block = t.div_ceil(1000).max(1);
            let cols = t.div_ceil(block);
            let pooled = Array2::from_shape_fn((k, cols), |(i, c)| {
                (c * block..((c + 1) * block).min(t))
                    .map(|r| w[[r, i]])
                    .fold(0.0, f64::max)
            });
            let levels = log_rows(&pooled);
            let seconds = meta
                .spectrogram
                .map(|s| s.hop as f64 / s.sample_rate as f64);
            let x_max = seconds.map_or(t as f64, |s| t as f64 * s);
            let cw = x_max / cols as f64;
            let mut chart = ChartBuilder::on(&bottom)
                .caption("activations", ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..x_max, 0f64..k as f64)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(if seconds.is_some() { "time (s)" } else { "row" })
                .y_desc("atom")
                .y_label_formatter(&|v| format!("{v:.0}"))
                .draw()?;
            chart.draw_series((0..k).flat_map(|i| {
                let levels = &levels;
                (0..cols).map(move |c| {
                    Rectangle::new(
                        [
                            (c as f64 * cw, i as f64),
                            ((c + 1) as f64 * cw, i as f64 + 1.0),
                        ],
                        ramp(levels[[i, c]]).filled(),
                    )
                })
            }))?;
        }
        None => {
            let hist = &model.history;
            let (lo, hi) = hist
                .iter()
                .filter(|v| v.is_finite() && **v > 0.0)
                .fold((f64::MAX, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
            let (lo, hi) = if hi > 0.0 {
                (lo * 0.9, hi * 1.1)
            } else {
                (0.1, 1.0)
            };
            let mut chart = ChartBuilder::on(&bottom)
                .caption("loss per row, by pass", ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(1f64..(hist.len().max(2)) as f64, (lo..hi).log_scale())?;
            chart.configure_mesh().x_desc("pass").draw()?;
            chart.draw_series(LineSeries::new(
                hist.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)),
                &BLUE,
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Held-out loss (with one standard error) and visible-entry loss against rank, with the
/// picked rank marked, as a PNG at `out` (written whole, then renamed into place).
pub fn ranks(out: &Path, r: &streamnmf::rank::RankReport) -> Result<()> {
    register_font()?;
    let (tmp, dest) = png_temp(out)?;
    {
        let root = BitMapBackend::new(tmp.path(), (900, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        let lo = r
            .rows
            .iter()
            .map(|x| x.train_loss.min(x.heldout_loss - x.heldout_se))
            .fold(f64::MAX, f64::min)
            .max(1e-300);
        let hi = r
            .rows
            .iter()
            .map(|x| x.heldout_loss + x.heldout_se)
            .fold(0.0, f64::max);
        let kmax = r.rows.iter().map(|x| x.rank).max().unwrap_or(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("held-out loss by rank (picked {})", r.picked),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..kmax * 1.1, (lo * 0.8..hi * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("rank")
            .y_desc("loss per entry")
            .draw()?;
        let held: Vec<(f64, f64)> = r
            .rows
            .iter()
            .map(|x| (x.rank as f64, x.heldout_loss))
            .collect();
        chart
            .draw_series(LineSeries::new(held.clone(), &BLUE))?
            .label("hidden entries")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart.draw_series(r.rows.iter().map(|x| {
            let k = x.rank as f64;
            PathElement::new(
                vec![
                    (k, x.heldout_loss - x.heldout_se),
                    (k, x.heldout_loss + x.heldout_se),
                ],
                BLUE,
            )
        }))?;
        chart
            .draw_series(LineSeries::new(
                r.rows.iter().map(|x| (x.rank as f64, x.train_loss)),
                &RED,
            ))?
            .label("visible entries")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        if let Some(p) = r.rows.iter().find(|x| x.rank == r.picked) {
            chart.draw_series(std::iter::once(Circle::new(
                (p.rank as f64, p.heldout_loss),
                6,
                BLUE.filled(),
            )))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    tmp.persist(&dest)
        .map_err(|e| e.error)
        .with_context(|| out.display().to_string())?;
    Ok(())
}
