//! What a clinician must see (domain.md §7): each flag kind, its level, and the rule that
//! raises it. The thresholds that clinics set differently are a [`Thresholds`] value.

use chrono::{DateTime, Duration, Utc};

use crate::domain::ids::SessionId;
use crate::domain::instrument::{Instrument, Scored};
use crate::domain::side_effect::{Effect, Severity};
use crate::domain::treatment::VitalSigns;

vocabulary!(
    /// The kinds of flag.
    FlagKind {
        SuicidalIdeation = "suicidal_ideation",
        HypertensiveResponse = "hypertensive_response",
        LifeThreateningSideEffect = "life_threatening_side_effect",
        Contraindication = "contraindication",
        PreSessionHypertension = "pre_session_hypertension",
        BladderSymptoms = "bladder_symptoms",
        DependenceRisk = "dependence_risk",
        ManiaSymptoms = "mania_symptoms",
        PersistentSideEffect = "persistent_side_effect",
        WearsOffWithinDays = "wears_off_within_days",
        MissedSession = "missed_session",
        MissedFollowUp = "missed_follow_up",
        /// A clinic's webhook did not accept this record's event after every attempt; the
        /// endpoint is disabled until an administrator enables it again.
        WebhookFailed = "webhook_failed",
        /// The latest infusion's benefit is expected to fade more than the deployment's
        /// margin before the next planned infusion (domain.md §6a).
        BenefitGapExpected = "benefit_gap_expected",
    }
);

vocabulary!(
    /// How soon a clinician must look.
    FlagLevel { Urgent = "urgent", High = "high", Info = "info" }
);

vocabulary!(
    /// Where a flag stands.
    FlagStatus { Open = "open", Acknowledged = "acknowledged" }
);

vocabulary!(
    /// The kind of record a flag is about; a planned slot is a course's planned infusion day.
    FlaggedRecord {
        Assessment = "assessment",
        Session = "session",
        SideEffect = "side_effect",
        Course = "course",
        PlannedSlot = "planned_slot",
    }
);

impl FlagKind {
    pub fn level(self) -> FlagLevel {
        use FlagKind::*;
        match self {
            SuicidalIdeation | HypertensiveResponse | LifeThreateningSideEffect => {
                FlagLevel::Urgent
            }
            Contraindication
            | PreSessionHypertension
            | BladderSymptoms
            | DependenceRisk
            | ManiaSymptoms => FlagLevel::High,
            PersistentSideEffect | WearsOffWithinDays | MissedSession | MissedFollowUp
            | WebhookFailed | BenefitGapExpected => FlagLevel::Info,
        }
    }
}

impl FlagLevel {
    /// The worklist's order: urgent first.
    pub fn rank(self) -> i32 {
        match self {
            FlagLevel::Urgent => 0,
            FlagLevel::High => 1,
            FlagLevel::Info => 2,
        }
    }
}

/// Blood-pressure thresholds (deployment settings; defaults from domain.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub pre_systolic: i32,
    pub pre_diastolic: i32,
    pub post_systolic: i32,
    pub post_diastolic: i32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            pre_systolic: 160,
            pre_diastolic: 100,
            post_systolic: 180,
            post_diastolic: 110,
        }
    }
}

/// A flag a record raises, with a line saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raised {
    pub kind: FlagKind,
    pub detail: String,
}

fn raised(kind: FlagKind, detail: impl Into<String>) -> Raised {
    Raised {
        kind,
        detail: detail.into(),
    }
}

/// A PHQ-9 with item 9 ≥ 1, or a MADRS with item 10 ≥ 4.
pub fn assessment_flags(scored: &Scored) -> Vec<Raised> {
    let (item, min) = match scored.instrument {
        Instrument::Phq9 => (9, 1),
        Instrument::Madrs => (10, 4),
        _ => return vec![],
    };
    match scored.item(item) {
        Some(answer) if answer >= min => {
            vec![raised(
                FlagKind::SuicidalIdeation,
                format!("{} item {item} answered {answer}", scored.instrument),
            )]
        }
        _ => vec![],
    }
}

fn over(v: &VitalSigns, systolic: i32, diastolic: i32) -> bool {
    v.systolic.is_some_and(|s| s >= systolic) || v.diastolic.is_some_and(|d| d >= diastolic)
}

fn bp(v: &VitalSigns) -> String {
    let show = |x: Option<i32>| x.map_or("?".to_owned(), |x| x.to_string());
    format!("{}/{}", show(v.systolic), show(v.diastolic))
}

/// What a session's vital signs and the patient's risk factors raise.
pub fn session_flags(
    pre: &VitalSigns,
    post_dose: &[VitalSigns],
    thresholds: Thresholds,
    has_contraindication: bool,
) -> Vec<Raised> {
    let mut flags = Vec::new();
    if over(pre, thresholds.pre_systolic, thresholds.pre_diastolic) {
        flags.push(raised(
            FlagKind::PreSessionHypertension,
            format!("pre-session blood pressure {}", bp(pre)),
        ));
    }
    if let Some(high) = post_dose
        .iter()
        .find(|v| over(v, thresholds.post_systolic, thresholds.post_diastolic))
    {
        flags.push(raised(
            FlagKind::HypertensiveResponse,
            format!("post-dose blood pressure {}", bp(high)),
        ));
    }
    if has_contraindication {
        flags.push(raised(
            FlagKind::Contraindication,
            "session for a patient with a contraindication",
        ));
    }
    flags
}

/// What a side-effect report raises.
pub fn side_effect_flags(effect: Effect, severity: Severity) -> Vec<Raised> {
    let mut flags = Vec::new();
    if severity == Severity::LifeThreatening {
        flags.push(raised(
            FlagKind::LifeThreateningSideEffect,
            format!("{effect} reported as life-threatening"),
        ));
    }
    match effect {
        Effect::BladderSymptoms => flags.push(raised(
            FlagKind::BladderSymptoms,
            "bladder symptoms reported",
        )),
        Effect::Craving => flags.push(raised(FlagKind::DependenceRisk, "craving reported")),
        Effect::ManiaSymptoms => {
            flags.push(raised(FlagKind::ManiaSymptoms, "mania symptoms reported"))
        }
        _ => {}
    }
    flags
}

/// After a session, the follow-up the measurement plan needs must come within this time.
pub const FOLLOW_UP_GRACE: Duration = Duration::days(3);

/// A session whose post-infusion follow-up goes missing: no score of the primary instrument
/// in (start, start + 3 days]. The flag, with the first instant it is due — a microsecond
/// (the stored precision) past `FOLLOW_UP_GRACE` after the start —, or `None` when a score
/// followed the session up.
pub fn missed_follow_up(
    started_at: DateTime<Utc>,
    scores: &[DateTime<Utc>],
) -> Option<(DateTime<Utc>, Raised)> {
    let due_by = started_at + FOLLOW_UP_GRACE;
    let followed_up = scores.iter().any(|t| *t > started_at && *t <= due_by);
    (!followed_up).then(|| {
        let flag = raised(
            FlagKind::MissedFollowUp,
            "no follow-up score in the 3 days after the session",
        );
        (due_by + Duration::microseconds(1), flag)
    })
}

/// A completed session, for the dependence rules.
#[derive(Clone, Debug)]
pub struct CompletedSession {
    pub id: SessionId,
    pub started_at: DateTime<Utc>,
    /// After its course's induction.
    pub maintenance: bool,
}

/// The sessions that show a dependence risk by frequency: the session that makes more than
/// 3 completed sessions in 7 days, and the session that closes the second of two consecutive
/// maintenance intervals shorter than 21 days. `sessions` are in time order; the result pairs
/// each flagged session's id with its flag.
pub fn dependence_by_frequency(sessions: &[CompletedSession]) -> Vec<(SessionId, Raised)> {
    let mut flagged = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let in_week = sessions[..=i]
            .iter()
            .filter(|o| o.started_at > s.started_at - Duration::days(7))
            .count();
        if in_week > 3 {
            flagged.push((s.id, format!("{in_week} completed sessions within 7 days")));
        }
        let short = |a: &CompletedSession, b: &CompletedSession| {
            b.maintenance && b.started_at - a.started_at < Duration::days(21)
        };
        if i >= 2 && short(&sessions[i - 2], &sessions[i - 1]) && short(&sessions[i - 1], s) {
            flagged.push((
                s.id,
                "two consecutive maintenance intervals shorter than 21 days".into(),
            ));
        }
    }
    flagged.dedup_by(|a, b| a.0 == b.0);
    flagged
        .into_iter()
        .map(|(id, detail)| (id, raised(FlagKind::DependenceRisk, detail)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// domain.md §7: the level of every kind.
    #[test]
    fn levels() {
        use FlagKind::*;
        let urgent = [
            SuicidalIdeation,
            HypertensiveResponse,
            LifeThreateningSideEffect,
        ];
        let high = [
            Contraindication,
            PreSessionHypertension,
            BladderSymptoms,
            DependenceRisk,
            ManiaSymptoms,
        ];
        for kind in FlagKind::ALL {
            let expected = if urgent.contains(kind) {
                FlagLevel::Urgent
            } else if high.contains(kind) {
                FlagLevel::High
            } else {
                FlagLevel::Info
            };
            assert_eq!(kind.level(), expected, "{kind}");
        }
    }

    /// domain.md §7: PHQ-9 item 9 ≥ 1; MADRS item 10 ≥ 4.
    #[test]
    fn suicidal_ideation() {
        let phq9 =
            |item9| Scored::score(Instrument::Phq9, &[0, 0, 0, 0, 0, 0, 0, 0, item9]).unwrap();
        assert!(assessment_flags(&phq9(0)).is_empty());
        assert_eq!(
            assessment_flags(&phq9(1))[0].kind,
            FlagKind::SuicidalIdeation
        );
        let madrs = |item10| {
            Scored::score(Instrument::Madrs, &[6, 6, 6, 6, 6, 6, 6, 6, 6, item10]).unwrap()
        };
        assert!(assessment_flags(&madrs(3)).is_empty());
        assert_eq!(assessment_flags(&madrs(4)).len(), 1);
        assert!(assessment_flags(&Scored::score(Instrument::Gad7, &[3; 7]).unwrap()).is_empty());
    }

    fn vitals(s: i32, d: i32) -> VitalSigns {
        VitalSigns {
            systolic: Some(s),
            diastolic: Some(d),
            ..Default::default()
        }
    }

    fn kinds(flags: Vec<Raised>) -> Vec<FlagKind> {
        flags.into_iter().map(|f| f.kind).collect()
    }

    /// domain.md §7: 160/100 before, 180/110 after (during monitoring or at discharge).
    #[test]
    fn blood_pressure_thresholds() {
        use FlagKind::*;
        let t = Thresholds::default();
        assert_eq!(
            kinds(session_flags(
                &vitals(159, 99),
                &[vitals(179, 109)],
                t,
                false
            )),
            []
        );
        assert_eq!(
            kinds(session_flags(&vitals(160, 80), &[], t, false)),
            [PreSessionHypertension]
        );
        assert_eq!(
            kinds(session_flags(&vitals(120, 100), &[], t, false)),
            [PreSessionHypertension]
        );
        assert_eq!(
            kinds(session_flags(
                &vitals(120, 80),
                &[vitals(150, 90), vitals(180, 90)],
                t,
                false
            )),
            [HypertensiveResponse]
        );
        assert_eq!(
            kinds(session_flags(
                &vitals(120, 80),
                &[vitals(150, 110)],
                t,
                false
            )),
            [HypertensiveResponse]
        );
        assert_eq!(
            kinds(session_flags(&VitalSigns::default(), &[], t, true)),
            [Contraindication]
        );
        let strict = Thresholds {
            pre_systolic: 150,
            ..t
        };
        assert_eq!(
            kinds(session_flags(&vitals(150, 80), &[], strict, false)),
            [PreSessionHypertension]
        );
    }

    /// domain.md §7: side-effect flags.
    #[test]
    fn side_effects() {
        use FlagKind::*;
        assert_eq!(
            kinds(side_effect_flags(Effect::Nausea, Severity::Severe)),
            []
        );
        assert_eq!(
            kinds(side_effect_flags(Effect::Nausea, Severity::LifeThreatening)),
            [LifeThreateningSideEffect]
        );
        assert_eq!(
            kinds(side_effect_flags(Effect::BladderSymptoms, Severity::Mild)),
            [BladderSymptoms]
        );
        assert_eq!(
            kinds(side_effect_flags(Effect::Craving, Severity::Mild)),
            [DependenceRisk]
        );
        assert_eq!(
            kinds(side_effect_flags(
                Effect::ManiaSymptoms,
                Severity::LifeThreatening
            )),
            [LifeThreateningSideEffect, ManiaSymptoms]
        );
    }

    fn sessions(days: &[(f64, bool)]) -> Vec<CompletedSession> {
        days.iter()
            .enumerate()
            .map(|(i, (d, maintenance))| CompletedSession {
                id: SessionId::numbered(i as u128),
                started_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap()
                    + Duration::seconds((d * 86_400.0) as i64),
                maintenance: *maintenance,
            })
            .collect()
    }

    fn flagged(days: &[(f64, bool)]) -> Vec<SessionId> {
        dependence_by_frequency(&sessions(days))
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// The measurement plan's `missed_follow_up` (info, raised by time like domain.md §7's
    /// `missed_session`): no primary-instrument score within 3 days after a completed
    /// session, due once the 3 days have passed.
    #[test]
    fn missed_follow_up_after_three_days() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = |d: f64| start + Duration::seconds((d * 86_400.0) as i64);
        let missed = |scores: &[DateTime<Utc>]| {
            missed_follow_up(start, scores).map(|(from, flag)| (from, flag.kind))
        };
        assert_eq!(
            missed(&[]),
            Some((
                day(3.0) + Duration::microseconds(1),
                FlagKind::MissedFollowUp
            )),
            "due the microsecond after 3 days"
        );
        assert_eq!(missed(&[day(3.0)]), None, "a score on day 3 counts");
        assert!(
            missed(&[day(0.0), day(3.5)]).is_some(),
            "neither at the start nor after day 3"
        );
    }

    /// domain.md §7: more than 3 completed sessions in any 7 days; two consecutive
    /// maintenance intervals shorter than 21 days.
    #[test]
    fn dependence_by_frequency_rules() {
        let induction = [
            (0.0, false),
            (2.0, false),
            (4.0, false),
            (7.0, false),
            (10.0, false),
            (14.0, false),
            (21.0, false),
            (28.0, false),
        ];
        assert!(
            flagged(&induction).is_empty(),
            "the standard induction is not a dependence risk"
        );
        assert_eq!(
            flagged(&[(0.0, false), (2.0, false), (4.0, false), (6.9, false)]),
            [SessionId::numbered(3)]
        );
        let mut monthly = induction.to_vec();
        monthly.extend([(56.0, true), (84.0, true), (112.0, true)]);
        assert!(flagged(&monthly).is_empty());
        let mut shortening = induction.to_vec();
        shortening.extend([(48.0, true), (68.0, true), (88.0, true)]);
        assert_eq!(
            flagged(&shortening),
            [SessionId::numbered(9), SessionId::numbered(10)],
            "each second short interval in a row raises it"
        );
        let mut one_short = induction.to_vec();
        one_short.extend([(48.0, true), (75.0, true)]);
        assert!(
            flagged(&one_short).is_empty(),
            "one short interval is not two"
        );
    }
}
