//! Drawings: a patient's score over time, as SVG (plotters, its SVG backend and its built-in
//! text layout, so no system font and no C library is involved).

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use crate::domain::instrument::Definition;

/// What a trajectory shows.
pub struct Trajectory<'a> {
    pub instrument: &'a Definition,
    /// Scores (time, total), oldest first.
    pub scores: Vec<(DateTime<Utc>, i32)>,
    /// Completed sessions' starts.
    pub infusions: Vec<DateTime<Utc>>,
    /// Where benefit wore off: the score that lost half the gain.
    pub wear_offs: Vec<(DateTime<Utc>, i32)>,
}

const SCORE: RGBColor = RGBColor(31, 119, 180);
const INFUSION: RGBColor = RGBColor(148, 103, 189);
const WEAR_OFF: RGBColor = RGBColor(214, 39, 40);
/// Light band fills, from best to worst.
const BANDS: [RGBColor; 5] = [
    RGBColor(230, 245, 230),
    RGBColor(245, 245, 215),
    RGBColor(252, 232, 205),
    RGBColor(250, 215, 205),
    RGBColor(240, 200, 200),
];

/// Renders the trajectory as an SVG document 640 × 400, which scales down to a phone's width.
pub fn trajectory_svg(t: &Trajectory<'_>) -> Result<String, String> {
    let mut svg = String::new();
    draw(t, &mut svg).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn days(from: DateTime<Utc>, at: DateTime<Utc>) -> f64 {
    (at - from).num_seconds() as f64 / 86_400.0
}

fn draw(t: &Trajectory<'_>, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let times = t
        .scores
        .iter()
        .map(|(at, _)| *at)
        .chain(t.infusions.iter().copied());
    let start = times.clone().min().unwrap_or_else(Utc::now);
    let end = times.max().unwrap_or(start);
    let span = days(start, end).max(7.0);
    let top = t.instrument.total_max();
    let root = SVGBackend::with_string(svg, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{} over time", t.instrument.title),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(-0.5..span + 0.5, 0.0..f64::from(top))?;
    chart
        .configure_mesh()
        .x_desc(format!("days since {}", start.format("%Y-%m-%d")))
        .y_desc("score")
        .label_style(("sans-serif", 16))
        .disable_mesh()
        .draw()?;

    for (i, band) in t.instrument.bands.iter().enumerate() {
        let (low, high) = (f64::from(band.min) - 0.5, f64::from(band.max) + 0.5);
        let fill = BANDS[i.min(BANDS.len() - 1)];
        chart.draw_series(std::iter::once(Rectangle::new(
            [(-0.5, low.max(0.0)), (span + 0.5, high.min(f64::from(top)))],
            fill.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            band.name.replace('_', " "),
            (span * 0.02, high.min(f64::from(top)) - 0.2),
            ("sans-serif", 13),
        )))?;
    }
    for (i, at) in t.infusions.iter().enumerate() {
        let x = days(start, *at);
        let series = chart.draw_series(LineSeries::new(
            vec![(x, 0.0), (x, f64::from(top))],
            INFUSION.stroke_width(2),
        ))?;
        if i == 0 {
            series.label("infusion").legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], INFUSION.stroke_width(2))
            });
        }
    }
    let line: Vec<(f64, f64)> = t
        .scores
        .iter()
        .map(|(at, total)| (days(start, *at), f64::from(*total)))
        .collect();
    chart
        .draw_series(LineSeries::new(line.clone(), SCORE.stroke_width(3)))?
        .label("score")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], SCORE.stroke_width(3)));
    chart.draw_series(line.iter().map(|p| Circle::new(*p, 4, SCORE.filled())))?;
    chart
        .draw_series(t.wear_offs.iter().map(|(at, total)| {
            TriangleMarker::new((days(start, *at), f64::from(*total)), 9, WEAR_OFF.filled())
        }))?
        .label("wore off")
        .legend(|(x, y)| TriangleMarker::new((x + 8, y), 7, WEAR_OFF.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Research trajectories: one curve of weekly mean severity per unsuppressed group.
pub fn research_curves(
    instrument: &Definition,
    rows: &[crate::research::TrajectoryRow],
) -> Result<String, String> {
    let mut svg = String::new();
    draw_curves(instrument, rows, &mut svg).map_err(|e| e.to_string())?;
    Ok(svg)
}

const PALETTE: [RGBColor; 6] = [
    SCORE,
    WEAR_OFF,
    INFUSION,
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

fn draw_curves(
    instrument: &Definition,
    rows: &[crate::research::TrajectoryRow],
    svg: &mut String,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut curves: std::collections::BTreeMap<String, Vec<(f64, f64)>> =
        std::collections::BTreeMap::new();
    for row in rows {
        let label = if row.group.is_empty() {
            "all".to_owned()
        } else {
            row.group
                .values()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
                .replace('_', " ")
        };
        if let Some(mean) = row.mean {
            curves
                .entry(label)
                .or_default()
                .push((row.week as f64, mean));
        }
    }
    let top = f64::from(instrument.total_max());
    let root = SVGBackend::with_string(svg, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: mean severity by week", instrument.title),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..52.0, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("weeks since first session")
        .y_desc("mean severity")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (label, points)) in curves.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(3)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(())
}

/// What a swimmer plot of one course's infusions shows (domain.md §6a).
pub struct Swimmers {
    /// Each completed infusion, oldest first.
    pub bars: Vec<SwimmerBar>,
    pub expected_wear_off: Option<DateTime<Utc>>,
    pub next_planned: Option<DateTime<Utc>>,
    /// Days from the expected wear-off to the next planned infusion.
    pub gap_days: Option<f64>,
    /// The line every chart of these figures carries.
    pub caption: &'static str,
}

/// One infusion: from its start for its durability, open-ended when censored.
pub struct SwimmerBar {
    pub number: u32,
    pub start: DateTime<Utc>,
    pub status: crate::domain::outcomes::BenefitStatus,
    pub durability_days: Option<f64>,
    pub censored: bool,
}

const WORE_OFF_BAR: RGBColor = RGBColor(255, 127, 14);
const SUSTAINED_BAR: RGBColor = RGBColor(44, 160, 44);
const NO_BENEFIT: RGBColor = RGBColor(127, 127, 127);
const PLANNED: RGBColor = RGBColor(23, 190, 207);
const GAP: RGBColor = RGBColor(214, 39, 40);

/// Renders the swimmer plot as an SVG document 640 × 400, which scales down to a phone's
/// width: one bar per infusion from its start to its wear-off, an arrow where the benefit
/// was still there at the last score, the next planned infusion and the expected gap.
pub fn swimmers_svg(s: &Swimmers) -> Result<String, String> {
    let mut svg = String::new();
    draw_swimmers(s, &mut svg).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw_swimmers(s: &Swimmers, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    use crate::domain::outcomes::BenefitStatus;
    let start = s.bars.first().map_or_else(crate::clock::now, |b| b.start);
    let ends = s
        .bars
        .iter()
        .map(|b| days(start, b.start) + b.durability_days.unwrap_or(0.0));
    let marks = [s.expected_wear_off, s.next_planned].into_iter().flatten();
    let span = ends
        .chain(marks.map(|at| days(start, at)))
        .fold(7.0, f64::max);
    let rows = s.bars.len().max(1) as f64;
    let root = SVGBackend::with_string(svg, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (chart_area, footer) = root.split_vertically(372);
    let mut chart = ChartBuilder::on(&chart_area)
        .caption("How long each infusion lasted", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(-0.5..span * 1.08 + 0.5, 0.4..rows + 0.6)?;
    chart
        .configure_mesh()
        .x_desc(format!("days since {}", start.format("%Y-%m-%d")))
        .y_desc("infusion")
        .y_labels(s.bars.len().clamp(1, 12))
        .label_style(("sans-serif", 16))
        .disable_mesh()
        .draw()?;
    let arrow = span * 0.025;
    for (row, bar) in s.bars.iter().enumerate() {
        let y = row as f64 + 1.0;
        let x0 = days(start, bar.start);
        let colour = match bar.status {
            BenefitStatus::WoreOff => WORE_OFF_BAR,
            BenefitStatus::Sustained => SUSTAINED_BAR,
            _ => NO_BENEFIT,
        };
        match bar.durability_days.filter(|_| bar.status.has_benefit()) {
            Some(d) => {
                let x1 = x0 + d;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, y - 0.28), (x1, y + 0.28)],
                    colour.filled(),
                )))?;
                if bar.censored {
                    chart.draw_series(std::iter::once(Polygon::new(
                        vec![(x1, y - 0.28), (x1 + arrow, y), (x1, y + 0.28)],
                        colour.filled(),
                    )))?;
                }
            }
            None => {
                chart.draw_series(std::iter::once(Circle::new((x0, y), 5, colour.filled())))?;
            }
        }
    }
    if let (Some(wear_off), Some(next), Some(gap)) =
        (s.expected_wear_off, s.next_planned, s.gap_days)
    {
        if gap > 0.0 {
            let (x0, x1) = (days(start, wear_off), days(start, next));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.45), (x1, rows + 0.55)],
                GAP.mix(0.18).filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("expected gap {gap:.1} d"),
                (x0, rows + 0.5),
                ("sans-serif", 14).into_font().color(&GAP),
            )))?;
        }
    }
    if let Some(next) = s.next_planned {
        let x = days(start, next);
        chart.draw_series(DashedLineSeries::new(
            vec![(x, 0.4), (x, rows + 0.6)],
            6,
            4,
            PLANNED.stroke_width(2),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            "next planned",
            (x, 0.55),
            ("sans-serif", 14).into_font().color(&PLANNED),
        )))?;
    }
    footer.draw(&Text::new(
        s.caption,
        (12, 6),
        ("sans-serif", 12).into_font().color(&BLACK.mix(0.7)),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instrument::Instrument;

    #[test]
    fn an_empty_history_still_draws() {
        let t = Trajectory {
            instrument: Instrument::Phq9.definition(),
            scores: vec![],
            infusions: vec![],
            wear_offs: vec![],
        };
        let svg = trajectory_svg(&t).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("PHQ-9 depression over time"));
    }
}
