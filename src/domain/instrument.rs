//! Questionnaires and their scoring (domain.md §5). Clients send item answers; the total, the
//! band and the severity used by outcome arithmetic are computed here and nowhere else.

use crate::domain::RuleBroken;

vocabulary!(
    /// A scored instrument.
    Instrument {
        Phq9 = "phq9",
        Gad7 = "gad7",
        Madrs = "madrs",
        Pcl5 = "pcl5",
        Ybocs = "ybocs",
        PainNrs = "pain_nrs",
        DailyMood = "daily_mood",
        Cadss = "cadss",
    }
);

vocabulary!(
    /// Who may submit an instrument.
    Rater { Patient = "patient", Clinician = "clinician" }
);

vocabulary!(
    /// Which way is better.
    Direction { LowerIsBetter = "lower_is_better", HigherIsBetter = "higher_is_better" }
);

/// How a fall from the course baseline counts as a response (domain.md §6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResponseRule {
    /// `sev ≤ B × (1 − fraction)`.
    PercentFall(f64),
    /// `B − sev ≥ points`.
    PointsFall(i32),
}

/// One band of totals, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub name: &'static str,
    pub min: i32,
    pub max: i32,
}

/// LOINC codes where they exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loinc {
    pub panel: Option<&'static str>,
    pub total: &'static str,
    pub item9: Option<&'static str>,
}

/// One row of the table in domain.md §5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Definition {
    pub instrument: Instrument,
    pub title: &'static str,
    pub rater: Rater,
    pub items: usize,
    pub item_min: i32,
    pub item_max: i32,
    pub bands: &'static [Band],
    /// A total at or below this is a remission.
    pub remission_max: Option<i32>,
    pub response: Option<ResponseRule>,
    /// Minimal important change, in points, for session benefit.
    pub mic: Option<i32>,
    pub direction: Direction,
    pub loinc: Option<Loinc>,
    /// False for `cadss`, which measures a side effect, not an outcome.
    pub is_outcome: bool,
}

const fn band(name: &'static str, min: i32, max: i32) -> Band {
    Band { name, min, max }
}

const PHQ9: Definition = Definition {
    instrument: Instrument::Phq9,
    title: "PHQ-9 depression",
    rater: Rater::Patient,
    items: 9,
    item_min: 0,
    item_max: 3,
    bands: &[
        band("minimal", 0, 4),
        band("mild", 5, 9),
        band("moderate", 10, 14),
        band("moderately_severe", 15, 19),
        band("severe", 20, 27),
    ],
    remission_max: Some(4),
    response: Some(ResponseRule::PercentFall(0.5)),
    mic: Some(5),
    direction: Direction::LowerIsBetter,
    loinc: Some(Loinc {
        panel: Some("44249-1"),
        total: "44261-6",
        item9: Some("44260-8"),
    }),
    is_outcome: true,
};

const GAD7: Definition = Definition {
    instrument: Instrument::Gad7,
    title: "GAD-7 anxiety",
    rater: Rater::Patient,
    items: 7,
    item_min: 0,
    item_max: 3,
    bands: &[
        band("minimal", 0, 4),
        band("mild", 5, 9),
        band("moderate", 10, 14),
        band("severe", 15, 21),
    ],
    remission_max: Some(4),
    response: Some(ResponseRule::PercentFall(0.5)),
    mic: Some(4),
    direction: Direction::LowerIsBetter,
    loinc: Some(Loinc {
        panel: Some("69737-5"),
        total: "70274-6",
        item9: None,
    }),
    is_outcome: true,
};

const MADRS: Definition = Definition {
    instrument: Instrument::Madrs,
    title: "MADRS depression",
    rater: Rater::Clinician,
    items: 10,
    item_min: 0,
    item_max: 6,
    bands: &[
        band("normal", 0, 6),
        band("mild", 7, 19),
        band("moderate", 20, 34),
        band("severe", 35, 60),
    ],
    remission_max: Some(10),
    response: Some(ResponseRule::PercentFall(0.5)),
    mic: Some(6),
    direction: Direction::LowerIsBetter,
    loinc: None,
    is_outcome: true,
};

const PCL5: Definition = Definition {
    instrument: Instrument::Pcl5,
    title: "PCL-5 PTSD",
    rater: Rater::Patient,
    items: 20,
    item_min: 0,
    item_max: 4,
    bands: &[
        band("below_threshold", 0, 32),
        band("probable_ptsd", 33, 80),
    ],
    remission_max: Some(32),
    response: Some(ResponseRule::PointsFall(10)),
    mic: Some(10),
    direction: Direction::LowerIsBetter,
    loinc: None,
    is_outcome: true,
};

const YBOCS: Definition = Definition {
    instrument: Instrument::Ybocs,
    title: "Y-BOCS OCD",
    rater: Rater::Clinician,
    items: 10,
    item_min: 0,
    item_max: 4,
    bands: &[
        band("subclinical", 0, 7),
        band("mild", 8, 15),
        band("moderate", 16, 23),
        band("severe", 24, 31),
        band("extreme", 32, 40),
    ],
    remission_max: Some(12),
    response: Some(ResponseRule::PercentFall(0.35)),
    mic: Some(5),
    direction: Direction::LowerIsBetter,
    loinc: None,
    is_outcome: true,
};

const PAIN_NRS: Definition = Definition {
    instrument: Instrument::PainNrs,
    title: "pain intensity 0-10",
    rater: Rater::Patient,
    items: 1,
    item_min: 0,
    item_max: 10,
    bands: &[
        band("none", 0, 0),
        band("mild", 1, 3),
        band("moderate", 4, 6),
        band("severe", 7, 10),
    ],
    remission_max: Some(3),
    response: Some(ResponseRule::PercentFall(0.3)),
    mic: Some(2),
    direction: Direction::LowerIsBetter,
    loinc: Some(Loinc {
        panel: None,
        total: "72514-3",
        item9: None,
    }),
    is_outcome: true,
};

const DAILY_MOOD: Definition = Definition {
    instrument: Instrument::DailyMood,
    title: "mood today, 10 = best",
    rater: Rater::Patient,
    items: 1,
    item_min: 0,
    item_max: 10,
    bands: &[],
    remission_max: None,
    response: None,
    mic: Some(2),
    direction: Direction::HigherIsBetter,
    loinc: None,
    is_outcome: true,
};

const CADSS: Definition = Definition {
    instrument: Instrument::Cadss,
    title: "dissociative states (CADSS)",
    rater: Rater::Clinician,
    items: 23,
    item_min: 0,
    item_max: 4,
    bands: &[],
    remission_max: None,
    response: None,
    mic: None,
    direction: Direction::LowerIsBetter,
    loinc: None,
    is_outcome: false,
};

impl Instrument {
    pub fn definition(self) -> &'static Definition {
        match self {
            Instrument::Phq9 => &PHQ9,
            Instrument::Gad7 => &GAD7,
            Instrument::Madrs => &MADRS,
            Instrument::Pcl5 => &PCL5,
            Instrument::Ybocs => &YBOCS,
            Instrument::PainNrs => &PAIN_NRS,
            Instrument::DailyMood => &DAILY_MOOD,
            Instrument::Cadss => &CADSS,
        }
    }
}

impl Definition {
    pub fn total_max(&self) -> i32 {
        self.items as i32 * self.item_max
    }

    pub fn band_of(&self, total: i32) -> Option<&'static str> {
        self.bands
            .iter()
            .find(|b| (b.min..=b.max).contains(&total))
            .map(|b| b.name)
    }

    /// Outcome arithmetic works on severity, where lower is always better: the total, or
    /// `10 − score` for `daily_mood`.
    pub fn severity(&self, total: i32) -> i32 {
        match self.direction {
            Direction::LowerIsBetter => total,
            Direction::HigherIsBetter => self.total_max() - total,
        }
    }
}

/// The remission cut-off of each instrument (deployment settings; defaults from domain.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemissionCutOffs([Option<i32>; 8]);

impl Default for RemissionCutOffs {
    fn default() -> Self {
        let mut cut_offs = [None; 8];
        for (i, instrument) in Instrument::ALL.iter().enumerate() {
            cut_offs[i] = instrument.definition().remission_max;
        }
        Self(cut_offs)
    }
}

impl RemissionCutOffs {
    /// A total at or below this is a remission; `None` for instruments without one.
    pub fn of(&self, instrument: Instrument) -> Option<i32> {
        Instrument::ALL
            .iter()
            .position(|i| *i == instrument)
            .and_then(|i| self.0[i])
    }

    /// Overrides one instrument's cut-off; refused outside its total range or where the
    /// instrument has no remission.
    pub fn with(mut self, instrument: Instrument, cut_off: i32) -> Result<Self, &'static str> {
        let def = instrument.definition();
        if def.remission_max.is_none() || !(0..=def.total_max()).contains(&cut_off) {
            return Err("must be a total within the instrument's range");
        }
        if let Some(i) = Instrument::ALL.iter().position(|i| *i == instrument) {
            self.0[i] = Some(cut_off);
        }
        Ok(self)
    }
}

/// A scored questionnaire: the answers as given, and what the server computed from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scored {
    pub instrument: Instrument,
    pub items: Vec<i32>,
    pub total: i32,
    pub band: Option<&'static str>,
}

impl Scored {
    /// Checks the item count and every item's range, then totals and bands.
    pub fn score(instrument: Instrument, items: &[i32]) -> Result<Self, Vec<RuleBroken>> {
        let def = instrument.definition();
        if items.len() != def.items {
            return Err(vec![RuleBroken::new(
                "items",
                format!("{} takes exactly {} answers", instrument, def.items),
            )]);
        }
        let out_of_range: Vec<RuleBroken> = items
            .iter()
            .enumerate()
            .filter(|(_, v)| !(def.item_min..=def.item_max).contains(*v))
            .map(|(i, _)| {
                RuleBroken::new(
                    format!("items.{i}"),
                    format!("must be from {} to {}", def.item_min, def.item_max),
                )
            })
            .collect();
        if !out_of_range.is_empty() {
            return Err(out_of_range);
        }
        let total = items.iter().sum();
        Ok(Self {
            instrument,
            items: items.to_vec(),
            total,
            band: def.band_of(total),
        })
    }

    pub fn severity(&self) -> i32 {
        self.instrument.definition().severity(self.total)
    }

    /// The answer to a 1-based item, as the flag rules name them.
    pub fn item(&self, number: usize) -> Option<i32> {
        self.items.get(number.checked_sub(1)?).copied()
    }
}

/// Whether a rater may submit an instrument: patients only their own kind; clinicians all.
pub fn may_submit(rater: Rater, instrument: Instrument) -> bool {
    rater == Rater::Clinician || instrument.definition().rater == Rater::Patient
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers of `len` items that add up to `total` within the item range.
    fn answers(def: &Definition, total: i32) -> Vec<i32> {
        let mut left = total;
        (0..def.items)
            .map(|_| {
                let v = left.min(def.item_max);
                left -= v;
                v
            })
            .collect()
    }

    /// domain.md §5: both ends of every band of every instrument.
    #[test]
    fn both_ends_of_every_band() {
        for instrument in Instrument::ALL {
            let def = instrument.definition();
            for b in def.bands {
                for total in [b.min, b.max] {
                    let scored = Scored::score(*instrument, &answers(def, total)).unwrap();
                    assert_eq!(
                        (scored.total, scored.band),
                        (total, Some(b.name)),
                        "{instrument} {total}"
                    );
                }
            }
            // The bands tile the whole range without a gap.
            if let (Some(first), Some(last)) = (def.bands.first(), def.bands.last()) {
                assert_eq!((first.min, last.max), (0, def.total_max()), "{instrument}");
                for pair in def.bands.windows(2) {
                    assert_eq!(pair[0].max + 1, pair[1].min, "{instrument}");
                }
            }
        }
    }

    /// domain.md §5: items × range and totals.
    #[test]
    fn item_counts_ranges_and_totals() {
        let table = [
            (Instrument::Phq9, 9, 3, 27),
            (Instrument::Gad7, 7, 3, 21),
            (Instrument::Madrs, 10, 6, 60),
            (Instrument::Pcl5, 20, 4, 80),
            (Instrument::Ybocs, 10, 4, 40),
            (Instrument::PainNrs, 1, 10, 10),
            (Instrument::DailyMood, 1, 10, 10),
            (Instrument::Cadss, 23, 4, 92),
        ];
        for (instrument, items, item_max, total_max) in table {
            let def = instrument.definition();
            assert_eq!(
                (def.items, def.item_min, def.item_max, def.total_max()),
                (items, 0, item_max, total_max)
            );
            assert!(
                Scored::score(instrument, &vec![0; items - 1]).is_err(),
                "too few answers"
            );
            assert!(
                Scored::score(instrument, &vec![0; items + 1]).is_err(),
                "too many answers"
            );
            let mut over = vec![0; items];
            over[items - 1] = item_max + 1;
            let err = Scored::score(instrument, &over).unwrap_err();
            assert_eq!(err[0].field, format!("items.{}", items - 1));
            let mut under = vec![0; items];
            under[0] = -1;
            assert!(Scored::score(instrument, &under).is_err());
        }
    }

    /// domain.md §5: remission cut-offs, response rules and minimal important changes.
    #[test]
    fn remission_response_and_mic() {
        use ResponseRule::*;
        let table = [
            (Instrument::Phq9, Some(4), Some(PercentFall(0.5)), Some(5)),
            (Instrument::Gad7, Some(4), Some(PercentFall(0.5)), Some(4)),
            (Instrument::Madrs, Some(10), Some(PercentFall(0.5)), Some(6)),
            (Instrument::Pcl5, Some(32), Some(PointsFall(10)), Some(10)),
            (
                Instrument::Ybocs,
                Some(12),
                Some(PercentFall(0.35)),
                Some(5),
            ),
            (
                Instrument::PainNrs,
                Some(3),
                Some(PercentFall(0.3)),
                Some(2),
            ),
            (Instrument::DailyMood, None, None, Some(2)),
            (Instrument::Cadss, None, None, None),
        ];
        for (instrument, remission, response, mic) in table {
            let def = instrument.definition();
            assert_eq!(
                (def.remission_max, def.response, def.mic),
                (remission, response, mic),
                "{instrument}"
            );
        }
    }

    /// domain.md §5: daily_mood is higher-is-better; its severity is 10 − score.
    #[test]
    fn severity_reverses_only_daily_mood() {
        assert_eq!(
            Scored::score(Instrument::DailyMood, &[8])
                .unwrap()
                .severity(),
            2
        );
        assert_eq!(
            Scored::score(Instrument::PainNrs, &[8]).unwrap().severity(),
            8
        );
        assert_eq!(
            Scored::score(Instrument::DailyMood, &[8]).unwrap().band,
            None
        );
    }

    /// domain.md §5: who may submit what.
    #[test]
    fn patients_may_not_submit_clinician_rated_instruments() {
        for instrument in Instrument::ALL {
            assert!(may_submit(Rater::Clinician, *instrument));
            let patient_may = !matches!(
                instrument,
                Instrument::Madrs | Instrument::Ybocs | Instrument::Cadss
            );
            assert_eq!(
                may_submit(Rater::Patient, *instrument),
                patient_may,
                "{instrument}"
            );
        }
    }

    #[test]
    fn item_numbers_are_one_based_as_the_flag_rules_name_them() {
        let scored = Scored::score(Instrument::Phq9, &[0, 0, 0, 0, 0, 0, 0, 0, 2]).unwrap();
        assert_eq!(scored.item(9), Some(2));
        assert_eq!(scored.item(0), None);
    }
}
