//! Research aggregates (domain.md §8): grouping dimensions, the statistics of a group, the
//! Kaplan–Meier median, and small-cell suppression. Pure functions over plain numbers.

vocabulary!(
    /// What research results may be grouped and filtered by.
    Dimension {
        Indication = "indication",
        Route = "route",
        DoseBand = "dose_band",
        Sex = "sex",
        AgeBand = "age_band",
        Clinic = "clinic",
        Phase = "phase",
        AdherenceBand = "adherence_band",
        /// A session's number among its course's completed infusions, in bands.
        InfusionNumber = "infusion_number",
    }
);

vocabulary!(
    /// The band of an infusion's number in its course (issue 18): whether benefit lasts
    /// longer with repeated infusions.
    InfusionNumberBand {
        First = "1",
        Second = "2",
        Third = "3",
        From4To6 = "4_to_6",
        From7To12 = "7_to_12",
        From13 = "ge_13",
    }
);

impl InfusionNumberBand {
    pub fn of(number: u32) -> Self {
        match number {
            0 | 1 => Self::First,
            2 => Self::Second,
            3 => Self::Third,
            4..=6 => Self::From4To6,
            7..=12 => Self::From7To12,
            _ => Self::From13,
        }
    }
}

vocabulary!(
    /// The band of a course's measurement-plan adherence: `none` when nothing was due yet,
    /// then below 50 %, 50–80 %, and 80 % or more.
    AdherenceBand {
        None = "none",
        Below50 = "lt_50",
        From50To80 = "50_to_80",
        From80 = "ge_80",
    }
);

impl AdherenceBand {
    pub fn of(completed: usize, due: usize) -> Self {
        if due == 0 {
            return Self::None;
        }
        let share = completed as f64 / due as f64;
        if share < 0.5 {
            Self::Below50
        } else if share < 0.8 {
            Self::From50To80
        } else {
            Self::From80
        }
    }
}

vocabulary!(
    /// The band of a dose in mg/kg: < 0.5, 0.5–0.75, 0.75–1.0, ≥ 1.0.
    DoseBand {
        Below05 = "lt_0.5",
        From05To075 = "0.5_to_0.75",
        From075To1 = "0.75_to_1.0",
        From1 = "ge_1.0",
    }
);

impl DoseBand {
    pub fn of(mg_per_kg: f64) -> Self {
        if mg_per_kg < 0.5 {
            Self::Below05
        } else if mg_per_kg < 0.75 {
            Self::From05To075
        } else if mg_per_kg < 1.0 {
            Self::From075To1
        } else {
            Self::From1
        }
    }
}

/// A 10-year age band (`40-49`); ages over 89 are top-coded as `90+` (HIPAA Safe Harbor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgeBand {
    /// The band's lowest age: 0, 10, … 90.
    low: i32,
}

impl AgeBand {
    /// How many bands there are.
    pub const COUNT: usize = 10;

    /// The band at a given year.
    pub fn at(birth_year: i32, at_year: i32) -> Self {
        let age = (at_year - birth_year).max(0);
        Self {
            low: (age / 10 * 10).min(90),
        }
    }
}

impl std::fmt::Display for AgeBand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.low {
            90 => f.write_str("90+"),
            low => write!(f, "{low}-{}", low + 9),
        }
    }
}

impl std::str::FromStr for AgeBand {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let band = |low| Self { low };
        let parsed = match text.split_once('-') {
            _ if text == "90+" => Some(band(90)),
            Some((lo, hi)) => lo
                .parse::<i32>()
                .ok()
                .filter(|lo| {
                    lo % 10 == 0 && (0..90).contains(lo) && hi.parse::<i32>() == Ok(lo + 9)
                })
                .map(band),
            None => None,
        };
        parsed.ok_or_else(|| "must be a 10-year band such as 40-49, or 90+".to_owned())
    }
}

impl serde::Serialize for AgeBand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A proportion with what it was computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub numerator: usize,
    pub denominator: usize,
    /// Null when the denominator is 0.
    pub rate: Option<f64>,
}

pub fn rate(numerator: usize, denominator: usize) -> Rate {
    Rate {
        numerator,
        denominator,
        rate: (denominator > 0).then(|| round4(numerator as f64 / denominator as f64)),
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Mean and sample standard deviation (n − 1); SD is null below 2 values.
pub fn mean_sd(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(round4(mean)), sd.map(round4))
}

/// The median (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// One observation for Kaplan–Meier: a time and whether the event (wear-off) happened then
/// (false: censored, the benefit was still there).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub time: f64,
    pub event: bool,
}

/// The Kaplan–Meier median: the first time at which the survival curve falls to 0.5 or
/// below; null when it never does. At a time with both events and censorings, the events
/// come first (the censored are still at risk for them).
pub fn kaplan_meier_median(observations: &[Observation]) -> Option<f64> {
    let mut sorted = observations.to_vec();
    sorted.sort_by(|a, b| a.time.total_cmp(&b.time));
    let mut at_risk = sorted.len();
    let mut survival = 1.0;
    let mut i = 0;
    while i < sorted.len() {
        let time = sorted[i].time;
        let same: Vec<&Observation> = sorted[i..].iter().take_while(|o| o.time == time).collect();
        let events = same.iter().filter(|o| o.event).count();
        if events > 0 {
            survival *= 1.0 - events as f64 / at_risk as f64;
            if survival <= 0.5 + 1e-12 {
                return Some(time);
            }
        }
        at_risk -= same.len();
        i += same.len();
    }
    None
}

/// Which rows of one grouping are suppressed: those with fewer than `k` distinct patients,
/// and, where that leaves exactly one suppressed, the next smallest row too, so that no
/// suppressed figure can be recovered from a total.
pub fn suppressed(patients_per_row: &[usize], k: usize) -> Vec<bool> {
    let mut hidden: Vec<bool> = patients_per_row.iter().map(|n| *n < k).collect();
    if hidden.iter().filter(|h| **h).count() == 1 {
        let next = patients_per_row
            .iter()
            .enumerate()
            .filter(|(i, _)| !hidden[*i])
            .min_by_key(|(_, n)| **n)
            .map(|(i, _)| i);
        if let Some(i) = next {
            hidden[i] = true;
        }
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18, part 4: infusion numbers in the bands 1, 2, 3, 4–6, 7–12, 13+.
    #[test]
    fn infusion_numbers_fall_in_their_bands() {
        let cases = [
            (1, "1"),
            (2, "2"),
            (3, "3"),
            (4, "4_to_6"),
            (6, "4_to_6"),
            (7, "7_to_12"),
            (12, "7_to_12"),
            (13, "ge_13"),
            (200, "ge_13"),
        ];
        for (number, band) in cases {
            assert_eq!(InfusionNumberBand::of(number).as_str(), band, "{number}");
        }
    }

    fn obs(list: &[(f64, bool)]) -> Vec<Observation> {
        list.iter()
            .map(|(time, event)| Observation {
                time: *time,
                event: *event,
            })
            .collect()
    }

    /// Hand-computed curves. S(t) = Π (1 − d/n) over event times.
    #[test]
    fn kaplan_meier_medians() {
        // 4 events, no censoring: S = .75, .5 → median at the second time.
        assert_eq!(
            kaplan_meier_median(&obs(&[(2.0, true), (4.0, true), (6.0, true), (8.0, true)])),
            Some(4.0)
        );
        // Censored at 3 leaves 2 at risk: S(2) = .75, S(5) = .75 × (1 − 1/2) = .375.
        assert_eq!(
            kaplan_meier_median(&obs(&[
                (2.0, true),
                (3.0, false),
                (5.0, true),
                (9.0, false)
            ])),
            Some(5.0)
        );
        // Ties, events before censorings: at t = 3, 1 event and 1 censored among 4 at risk:
        // S(3) = .75; then 2 at risk; S(6) = .75 × 1/2 = .375.
        assert_eq!(
            kaplan_meier_median(&obs(&[
                (3.0, true),
                (3.0, false),
                (6.0, true),
                (7.0, false)
            ])),
            Some(6.0)
        );
        // Had the censoring at 3 come first, S(3) would be 1 − 1/3 = .667; the order matters
        // only through the risk set, which this pins: 2 events at 3 among 4 → S = .5 at once.
        assert_eq!(
            kaplan_meier_median(&obs(&[
                (3.0, true),
                (3.0, true),
                (3.0, false),
                (7.0, false)
            ])),
            Some(3.0)
        );
        // Never reaches 0.5.
        assert_eq!(
            kaplan_meier_median(&obs(&[
                (2.0, true),
                (3.0, false),
                (4.0, false),
                (5.0, false)
            ])),
            None
        );
        assert_eq!(kaplan_meier_median(&[]), None);
    }

    /// domain.md §8: dose bands and age bands.
    #[test]
    fn bands() {
        let doses = [
            (0.49, "lt_0.5"),
            (0.5, "0.5_to_0.75"),
            (0.749, "0.5_to_0.75"),
            (0.75, "0.75_to_1.0"),
            (0.99, "0.75_to_1.0"),
            (1.0, "ge_1.0"),
            (3.0, "ge_1.0"),
        ];
        for (dose, band) in doses {
            assert_eq!(DoseBand::of(dose).as_str(), band, "{dose}");
        }
        let ages = [
            (1990, "30-39"),
            (1996, "30-39"),
            (1997, "20-29"),
            (1937, "80-89"),
            (1936, "90+"),
            (1900, "90+"),
            (2026, "0-9"),
        ];
        for (born, band) in ages {
            let at = AgeBand::at(born, 2026);
            assert_eq!(at.to_string(), band, "{born}");
            assert_eq!(band.parse::<AgeBand>(), Ok(at), "{band} reads back");
        }
        for bad in ["", "40-48", "41-50", "90-99", "100+", "-10--1", "40"] {
            assert!(bad.parse::<AgeBand>().is_err(), "{bad}");
        }
    }

    #[test]
    fn adherence_bands() {
        let cases = [
            ((0, 0), "none"),
            ((4, 9), "lt_50"),
            ((1, 2), "50_to_80"),
            ((7, 9), "50_to_80"),
            ((4, 5), "ge_80"),
            ((5, 5), "ge_80"),
        ];
        for ((completed, due), band) in cases {
            assert_eq!(
                AdherenceBand::of(completed, due).as_str(),
                band,
                "{completed}/{due}"
            );
        }
    }

    /// domain.md §8: rows under k, and the complementary suppression of the next smallest.
    #[test]
    fn small_cells() {
        assert_eq!(suppressed(&[20, 15, 30], 11), [false, false, false]);
        assert_eq!(
            suppressed(&[20, 4, 30, 12], 11),
            [false, true, false, true],
            "one small row drags the next smallest"
        );
        assert_eq!(
            suppressed(&[20, 4, 30, 3], 11),
            [false, true, false, true],
            "two small rows hide each other"
        );
        assert_eq!(suppressed(&[11, 10], 11), [true, true]);
        assert_eq!(suppressed(&[5], 11), [true]);
    }

    #[test]
    fn summary_statistics() {
        assert_eq!(
            mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            (Some(5.0), Some(2.1381))
        );
        assert_eq!(mean_sd(&[3.0]), (Some(3.0), None));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(
            rate(1, 3),
            Rate {
                numerator: 1,
                denominator: 3,
                rate: Some(0.3333)
            }
        );
        assert_eq!(rate(0, 0).rate, None);
    }
}
