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
