//! The codes the service speaks HL7 FHIR R4 with, and the rules that turn a
//! `QuestionnaireResponse` from a FHIR-based app into an instrument's answers. Each code was
//! checked against the HL7, US Core and LOINC example resources; no offline tool can check
//! that a code exists, so the unit tests below pin every one. Instruments and kinds without a
//! verified code are coded in the service's own systems under [`SERVICE`].

use crate::domain::flags::{FlagKind, FlagLevel};
use crate::domain::instrument::Instrument;
use crate::domain::patient::Sex;
use crate::domain::side_effect::{Effect, Severity};
use crate::domain::treatment::{Route, SessionStatus};
use crate::domain::RuleBroken;

pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const UCUM: &str = "http://unitsofmeasure.org";
/// NCI Thesaurus, the system of the CTCAE grade codes.
pub const NCI_THESAURUS: &str = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl";
/// The Adverse Event Clinical Research R4 backport's grade extension.
pub const AE_GRADE: &str =
    "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade";
pub const US_CORE_QUESTIONNAIRE_RESPONSE: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-questionnaireresponse";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const ADVERSE_EVENT_SEVERITY: &str =
    "http://terminology.hl7.org/CodeSystem/adverse-event-severity";
pub const ADVERSE_EVENT_SERIOUSNESS: &str =
    "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness";
pub const ADVERSE_EVENT_OUTCOME: &str =
    "http://terminology.hl7.org/CodeSystem/adverse-event-outcome";
pub const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub const CONSENT_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/consentcategorycodes";
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// The system of an identifier whose value is itself a URI (`urn:uuid:…`).
pub const URI_IDENTIFIER: &str = "urn:ietf:rfc:3986";
/// The base of the service's own code systems and questionnaires.
pub const SERVICE: &str = "https://ketamine-outcomes.org/fhir";
pub const INSTRUMENT_SYSTEM: &str = "https://ketamine-outcomes.org/fhir/CodeSystem/instrument";
pub const FLAG_KIND_SYSTEM: &str = "https://ketamine-outcomes.org/fhir/CodeSystem/flag-kind";
pub const SIDE_EFFECT_SYSTEM: &str = "https://ketamine-outcomes.org/fhir/CodeSystem/side-effect";

vocabulary!(
    /// The FHIR resource types the service exports.
    ResourceType {
        Patient = "Patient",
        QuestionnaireResponse = "QuestionnaireResponse",
        Observation = "Observation",
        MedicationAdministration = "MedicationAdministration",
        AdverseEvent = "AdverseEvent",
        DetectedIssue = "DetectedIssue",
        Consent = "Consent",
    }
);

vocabulary!(
    /// Where a bulk export stands.
    ExportStatus { InProgress = "in_progress", Complete = "complete" }
);

/// The resource types a bulk export's `_type` asks for (comma-separated; all when absent),
/// each once, in the service's order.
pub fn resource_types(asked: Option<&str>) -> Result<Vec<ResourceType>, RuleBroken> {
    let Some(asked) = asked else {
        return Ok(ResourceType::ALL.to_vec());
    };
    let mut types = Vec::new();
    for name in asked.split(',').map(str::trim) {
        let kind: ResourceType = name
            .parse()
            .map_err(|rule: String| RuleBroken::new("_type", format!("{name:?}: {rule}")))?;
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    types.sort();
    Ok(types)
}

/// One code of one system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

const fn loinc(code: &'static str, display: &'static str) -> Code {
    Code {
        system: LOINC,
        code,
        display,
    }
}

const fn snomed(code: &'static str, display: &'static str) -> Code {
    Code {
        system: SNOMED,
        code,
        display,
    }
}

/// The answers of the PHQ-9 and GAD-7 items (LOINC answer list LL358-3), by item value.
pub const FREQUENCY_ANSWERS: [Code; 4] = [
    loinc("LA6568-5", "Not at all"),
    loinc("LA6569-3", "Several days"),
    loinc("LA6570-1", "More than half the days"),
    loinc("LA6571-9", "Nearly every day"),
];

const PHQ9_ITEMS: [Code; 9] = [
    loinc("44250-9", "Little interest or pleasure in doing things"),
    loinc("44255-8", "Feeling down, depressed, or hopeless"),
    loinc("44259-0", "Trouble falling or staying asleep, or sleeping too much"),
    loinc("44254-1", "Feeling tired or having little energy"),
    loinc("44251-7", "Poor appetite or overeating"),
    loinc("44258-2", "Feeling bad about yourself - or that you are a failure or have let yourself or your family down"),
    loinc("44252-5", "Trouble concentrating on things, such as reading the newspaper or watching television"),
    loinc("44253-3", "Moving or speaking so slowly that other people could have noticed. Or the opposite - being so fidgety or restless that you have been moving around a lot more than usual"),
    loinc("44260-8", "Thoughts that you would be better off dead, or of hurting yourself in some way"),
];

const GAD7_ITEMS: [Code; 7] = [
    loinc("69725-0", "Feeling nervous, anxious or on edge"),
    loinc("68509-9", "Not being able to stop or control worrying"),
    loinc("69733-4", "Worrying too much about different things"),
    loinc("69734-2", "Trouble relaxing"),
    loinc("69735-9", "Being so restless that it is hard to sit still"),
    loinc("69689-8", "Becoming easily annoyed or irritable"),
    loinc(
        "69736-7",
        "Feeling afraid as if something awful might happen",
    ),
];

const PAIN_ITEMS: [Code; 1] = [loinc(
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
)];

/// How an item is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// A coding of [`FREQUENCY_ANSWERS`].
    Frequency,
    /// An integer in the instrument's item range.
    Integer,
}

/// A questionnaire the service exchanges as a `QuestionnaireResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Questionnaire {
    pub instrument: Instrument,
    /// Its canonical URL, in `QuestionnaireResponse.questionnaire`.
    pub canonical: &'static str,
    /// Its items in the instrument's order; each `linkId` is the item's LOINC code.
    pub items: &'static [Code],
    pub answers: AnswerKind,
}

const QUESTIONNAIRES: [Questionnaire; 3] = [
    Questionnaire {
        instrument: Instrument::Phq9,
        canonical: "http://loinc.org/q/44249-1",
        items: &PHQ9_ITEMS,
        answers: AnswerKind::Frequency,
    },
    Questionnaire {
        instrument: Instrument::Gad7,
        canonical: "http://loinc.org/q/69737-5",
        items: &GAD7_ITEMS,
        answers: AnswerKind::Frequency,
    },
    // LOINC has no panel for the single pain question: the questionnaire is the service's.
    Questionnaire {
        instrument: Instrument::PainNrs,
        canonical: "https://ketamine-outcomes.org/fhir/Questionnaire/pain-nrs",
        items: &PAIN_ITEMS,
        answers: AnswerKind::Integer,
    },
];

impl Questionnaire {
    /// The questionnaire of an instrument, for the instruments exchanged as one.
    pub fn of(instrument: Instrument) -> Option<&'static Questionnaire> {
        QUESTIONNAIRES.iter().find(|q| q.instrument == instrument)
    }

    /// The questionnaire a canonical URL names, with or without a `|version`.
    pub fn named(canonical: &str) -> Option<&'static Questionnaire> {
        let url = canonical.split('|').next().unwrap_or_default();
        QUESTIONNAIRES.iter().find(|q| q.canonical == url)
    }

    /// Every canonical accepted, for the capability statement and the errors.
    pub fn canonicals() -> impl Iterator<Item = &'static str> {
        QUESTIONNAIRES.iter().map(|q| q.canonical)
    }
}

/// The code of an instrument's score `Observation`: its LOINC total where one exists.
pub fn score_code(instrument: Instrument) -> Code {
    match instrument.definition().loinc {
        Some(l) => Code {
            system: LOINC,
            code: l.total,
            display: instrument.definition().title,
        },
        None => Code {
            system: INSTRUMENT_SYSTEM,
            code: instrument.as_str(),
            display: instrument.definition().title,
        },
    }
}

/// The LOINC panel of an instrument, where one exists.
pub fn panel_code(instrument: Instrument) -> Option<Code> {
    let definition = instrument.definition();
    definition.loinc.and_then(|l| l.panel).map(|code| Code {
        system: LOINC,
        code,
        display: definition.title,
    })
}

/// Vital signs (the FHIR vital-signs profiles' codes).
pub const BLOOD_PRESSURE_PANEL: Code =
    loinc("85354-9", "Blood pressure panel with all children optional");
pub const SYSTOLIC: Code = loinc("8480-6", "Systolic blood pressure");
pub const DIASTOLIC: Code = loinc("8462-4", "Diastolic blood pressure");
pub const HEART_RATE: Code = loinc("8867-4", "Heart rate");
pub const OXYGEN_SATURATION: [Code; 2] = [
    loinc("2708-6", "Oxygen saturation in Arterial blood"),
    loinc(
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
    ),
];
/// The FHIR core vital-signs profiles.
pub const PROFILE_BLOOD_PRESSURE: &str = "http://hl7.org/fhir/StructureDefinition/bp";
pub const PROFILE_HEART_RATE: &str = "http://hl7.org/fhir/StructureDefinition/heartrate";
pub const PROFILE_OXYGEN_SATURATION: &str = "http://hl7.org/fhir/StructureDefinition/oxygensat";

/// The SNOMED CT code of a route.
pub fn route_code(route: Route) -> Code {
    match route {
        Route::Iv => snomed("47625008", "Intravenous route"),
        Route::Im => snomed("78421000", "Intramuscular route"),
        Route::Intranasal => snomed("46713006", "Nasal route"),
        Route::Oral => snomed("26643006", "Oral route"),
        Route::Sublingual => snomed("37839007", "Sublingual route"),
    }
}

/// A side effect's code: SNOMED CT where verified, else the service's own.
pub fn effect_codes(effect: Effect) -> Vec<Code> {
    let own = Code {
        system: SIDE_EFFECT_SYSTEM,
        code: effect.as_str(),
        display: effect.as_str(),
    };
    match effect {
        Effect::Nausea => vec![snomed("422587007", "Nausea"), own],
        Effect::HighBloodPressure => vec![snomed("38341003", "Hypertensive disorder"), own],
        _ => vec![own],
    }
}

/// `MedicationAdministration.status` of a session.
pub fn administration_status(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Completed => "completed",
        SessionStatus::StoppedEarly => "stopped",
        SessionStatus::Held | SessionStatus::Cancelled => "not-done",
    }
}

/// `Patient.gender`: FHIR's administrative gender has no intersex; it is `other`.
pub fn gender(sex: Sex) -> &'static str {
    match sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Intersex => "other",
        Sex::Unknown => "unknown",
    }
}

/// A side effect's CTCAE grade as the AE backport's grade extension codes it, with its number.
pub fn ctcae_grade(severity: Severity) -> (Code, u8) {
    let nci = |code, display| Code {
        system: NCI_THESAURUS,
        code,
        display,
    };
    match severity {
        Severity::Mild => (nci("C41338", "Grade 1 Mild Adverse Event"), 1),
        Severity::Moderate => (nci("C41339", "Grade 2 Moderate Adverse Event"), 2),
        Severity::Severe => (nci("C41340", "Grade 3 Severe Adverse Event"), 3),
        Severity::LifeThreatening => (
            nci(
                "C41337",
                "Grade 4 Life Threatening or Disabling Adverse Event",
            ),
            4,
        ),
    }
}

/// `AdverseEvent.severity` (mild, moderate, severe): a life-threatening effect is severe, and
/// serious besides.
pub fn adverse_event_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Mild => "mild",
        Severity::Moderate => "moderate",
        Severity::Severe | Severity::LifeThreatening => "severe",
    }
}

pub fn is_serious(severity: Severity) -> bool {
    severity == Severity::LifeThreatening
}

/// `DetectedIssue.severity` of a flag level.
pub fn issue_severity(level: FlagLevel) -> &'static str {
    match level {
        FlagLevel::Urgent => "high",
        FlagLevel::High => "moderate",
        FlagLevel::Info => "low",
    }
}

/// `DetectedIssue.code` of a flag kind, in the service's own system.
pub fn flag_code(kind: FlagKind) -> Code {
    Code {
        system: FLAG_KIND_SYSTEM,
        code: kind.as_str(),
        display: kind.as_str(),
    }
}

/// One answer of a `QuestionnaireResponse` item, as read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Coding {
        system: Option<String>,
        code: Option<String>,
    },
    Integer(i64),
    /// Any other `value[x]`, by its name.
    Other(String),
}

/// One answered item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemAnswers {
    /// Where it was in the body, such as `item[3]` or `item[0].item[2]`.
    pub at: String,
    pub link_id: String,
    pub answers: Vec<Answer>,
}

/// Items of the LOINC forms that no score counts, let be when an app sends them: how
/// difficult the problems made daily life (PHQ-9, GAD-7).
const UNSCORED: [&str; 1] = ["69722-7"];

/// The instrument's answers, in its item order, from the items of a `QuestionnaireResponse`
/// to `questionnaire`: every item answered exactly once with a value the instrument allows,
/// no item it does not have, no total (the server scores). Every broken rule is named, by
/// its place in the body.
pub fn answers_of(
    questionnaire: &Questionnaire,
    items: &[ItemAnswers],
) -> Result<Vec<i32>, Vec<RuleBroken>> {
    let definition = questionnaire.instrument.definition();
    let totals: Vec<&str> = [
        definition.loinc.map(|l| l.total),
        definition.loinc.and_then(|l| l.panel),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut values: Vec<Option<i32>> = vec![None; questionnaire.items.len()];
    let mut broken = Vec::new();
    for item in items
        .iter()
        .filter(|i| !UNSCORED.contains(&i.link_id.as_str()))
    {
        let link = format!("{}.linkId", item.at);
        if totals.contains(&item.link_id.as_str()) && questionnaire.answers == AnswerKind::Frequency
        {
            broken.push(RuleBroken::new(
                link,
                "is the total, which the server computes: send only the items",
            ));
            continue;
        }
        let Some(index) = questionnaire
            .items
            .iter()
            .position(|c| c.code == item.link_id)
        else {
            broken.push(RuleBroken::new(
                link,
                format!("is not an item of {}", questionnaire.canonical),
            ));
            continue;
        };
        if values[index].is_some() {
            broken.push(RuleBroken::new(link, "answers an item answered already"));
            continue;
        }
        let value = match item.answers.as_slice() {
            [one] => answer_value(questionnaire, one, &format!("{}.answer[0]", item.at)),
            _ => Err(RuleBroken::new(
                format!("{}.answer", item.at),
                "must hold exactly one answer",
            )),
        };
        match value {
            Ok(v) => values[index] = Some(v),
            Err(rule) => {
                values[index] = Some(definition.item_min);
                broken.push(rule);
            }
        }
    }
    for (code, value) in questionnaire.items.iter().zip(&values) {
        if value.is_none() {
            broken.push(RuleBroken::new(
                "item",
                format!("has no answer to item {} ({})", code.code, code.display),
            ));
        }
    }
    if broken.is_empty() {
        Ok(values.into_iter().flatten().collect())
    } else {
        Err(broken)
    }
}

fn answer_value(q: &Questionnaire, answer: &Answer, at: &str) -> Result<i32, RuleBroken> {
    let definition = q.instrument.definition();
    match (q.answers, answer) {
        (AnswerKind::Frequency, Answer::Coding { system, code }) => {
            if system.as_deref().is_some_and(|s| s != LOINC) {
                return Err(RuleBroken::new(
                    format!("{at}.valueCoding.system"),
                    format!("must be {LOINC}"),
                ));
            }
            let code = code.as_deref().unwrap_or_default();
            FREQUENCY_ANSWERS
                .iter()
                .position(|a| a.code == code)
                .map(|v| v as i32)
                .ok_or_else(|| {
                    let codes: Vec<_> = FREQUENCY_ANSWERS.iter().map(|a| a.code).collect();
                    RuleBroken::new(
                        format!("{at}.valueCoding.code"),
                        format!("must be one of {}", codes.join(", ")),
                    )
                })
        }
        (AnswerKind::Integer, Answer::Integer(v)) => i32::try_from(*v)
            .ok()
            .filter(|v| (definition.item_min..=definition.item_max).contains(v))
            .ok_or_else(|| {
                RuleBroken::new(
                    format!("{at}.valueInteger"),
                    format!(
                        "must be from {} to {}",
                        definition.item_min, definition.item_max
                    ),
                )
            }),
        (AnswerKind::Frequency, _) => Err(RuleBroken::new(
            at,
            "must be a valueCoding of the LOINC answer list LL358-3",
        )),
        (AnswerKind::Integer, _) => Err(RuleBroken::new(at, "must be a valueInteger")),
    }
}

/// An answer as the service sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Given {
    Coding(Code),
    Integer(i32),
}

/// The items of a `QuestionnaireResponse` that carry an instrument's answers, in order: each
/// item's code (its linkId) and its answer.
pub fn items_of(questionnaire: &Questionnaire, values: &[i32]) -> Vec<(Code, Given)> {
    let given = |v: i32| match questionnaire.answers {
        AnswerKind::Frequency => Given::Coding(FREQUENCY_ANSWERS[v.clamp(0, 3) as usize]),
        AnswerKind::Integer => Given::Integer(v),
    };
    let items = questionnaire.items.iter().copied();
    items.zip(values.iter().map(|v| given(*v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(at: usize, link: &str, answer: Answer) -> ItemAnswers {
        ItemAnswers {
            at: format!("item[{at}]"),
            link_id: link.into(),
            answers: vec![answer],
        }
    }

    fn coded(code: &str) -> Answer {
        Answer::Coding {
            system: Some(LOINC.into()),
            code: Some(code.into()),
        }
    }

    /// What an app reading the service's response sends back.
    fn read_back(given: Given) -> Answer {
        match given {
            Given::Coding(c) => coded(c.code),
            Given::Integer(v) => Answer::Integer(v.into()),
        }
    }

    fn phq9(values: [i32; 9]) -> Vec<ItemAnswers> {
        let q = Questionnaire::of(Instrument::Phq9).unwrap();
        items_of(q, &values)
            .into_iter()
            .enumerate()
            .map(|(i, (code, given))| item(i, code.code, read_back(given)))
            .collect()
    }

    /// Issue 19's table: every code, as the HL7 and US Core examples give it.
    #[test]
    fn the_codes_are_the_published_ones() {
        let phq9 = Questionnaire::of(Instrument::Phq9).unwrap();
        let codes: Vec<_> = phq9.items.iter().map(|c| c.code).collect();
        assert_eq!(
            codes,
            [
                "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
                "44253-3", "44260-8"
            ]
        );
        assert_eq!(phq9.canonical, "http://loinc.org/q/44249-1");
        let gad7 = Questionnaire::of(Instrument::Gad7).unwrap();
        let codes: Vec<_> = gad7.items.iter().map(|c| c.code).collect();
        assert_eq!(
            codes,
            ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
        );
        assert_eq!(gad7.canonical, "http://loinc.org/q/69737-5");
        let answers: Vec<_> = FREQUENCY_ANSWERS.iter().map(|a| a.code).collect();
        assert_eq!(answers, ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]);
        assert_eq!(panel_code(Instrument::Phq9).unwrap().code, "44249-1");
        assert_eq!(score_code(Instrument::Phq9).code, "44261-6");
        assert_eq!(
            Instrument::Phq9.definition().loinc.unwrap().item9,
            Some("44260-8")
        );
        assert_eq!(panel_code(Instrument::Gad7).unwrap().code, "69737-5");
        assert_eq!(score_code(Instrument::Gad7).code, "70274-6");
        assert_eq!(score_code(Instrument::PainNrs).code, "72514-3");
        assert_eq!(panel_code(Instrument::PainNrs), None);
        for own in [
            Instrument::Madrs,
            Instrument::Cadss,
            Instrument::Ybocs,
            Instrument::Pcl5,
            Instrument::DailyMood,
        ] {
            assert_eq!(score_code(own).system, INSTRUMENT_SYSTEM, "{own}");
            assert_eq!(score_code(own).code, own.as_str());
        }
        let routes: Vec<_> = Route::ALL.iter().map(|r| route_code(*r).code).collect();
        assert_eq!(
            routes,
            ["47625008", "78421000", "46713006", "26643006", "37839007"]
        );
        assert_eq!(effect_codes(Effect::Nausea)[0].code, "422587007");
        assert_eq!(effect_codes(Effect::HighBloodPressure)[0].code, "38341003");
        assert_eq!(effect_codes(Effect::Headache)[0].system, SIDE_EFFECT_SYSTEM);
        assert_eq!(
            (
                BLOOD_PRESSURE_PANEL.code,
                SYSTOLIC.code,
                DIASTOLIC.code,
                HEART_RATE.code
            ),
            ("85354-9", "8480-6", "8462-4", "8867-4")
        );
        assert_eq!(OXYGEN_SATURATION.map(|c| c.code), ["2708-6", "59408-5"]);
        let grades: Vec<_> = Severity::ALL.iter().map(|s| ctcae_grade(*s)).collect();
        assert_eq!(
            grades.iter().map(|(c, n)| (c.code, *n)).collect::<Vec<_>>(),
            [("C41338", 1), ("C41339", 2), ("C41340", 3), ("C41337", 4)]
        );
        assert_eq!(
            AE_GRADE,
            "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/ae-grade"
        );
    }

    #[test]
    fn a_bulk_export_asks_for_known_types_each_once() {
        assert_eq!(resource_types(None).unwrap().len(), 7);
        assert_eq!(
            resource_types(Some("Observation,Patient,Observation")),
            Ok(vec![ResourceType::Patient, ResourceType::Observation])
        );
        assert_eq!(
            resource_types(Some("Medication")).unwrap_err().field,
            "_type"
        );
        assert_eq!(resource_types(Some("")).unwrap_err().field, "_type");
    }

    #[test]
    fn the_value_sets_map_every_value() {
        let genders: Vec<_> = Sex::ALL.iter().map(|s| gender(*s)).collect();
        assert_eq!(genders, ["female", "male", "other", "unknown"]);
        let statuses: Vec<_> = SessionStatus::ALL
            .iter()
            .map(|s| administration_status(*s))
            .collect();
        assert_eq!(statuses, ["completed", "stopped", "not-done", "not-done"]);
        let severities: Vec<_> = Severity::ALL
            .iter()
            .map(|s| adverse_event_severity(*s))
            .collect();
        assert_eq!(severities, ["mild", "moderate", "severe", "severe"]);
        assert!(is_serious(Severity::LifeThreatening) && !is_serious(Severity::Severe));
        let levels: Vec<_> = FlagLevel::ALL.iter().map(|l| issue_severity(*l)).collect();
        assert_eq!(levels, ["high", "moderate", "low"]);
    }

    #[test]
    fn a_questionnaire_is_named_by_its_canonical_with_or_without_a_version() {
        let named = |c| Questionnaire::named(c).map(|q| q.instrument);
        assert_eq!(named("http://loinc.org/q/44249-1"), Some(Instrument::Phq9));
        assert_eq!(
            named("http://loinc.org/q/44249-1|2.76"),
            Some(Instrument::Phq9)
        );
        assert_eq!(named("http://loinc.org/q/69737-5"), Some(Instrument::Gad7));
        assert_eq!(named("http://loinc.org/q/44249"), None);
        assert_eq!(named(""), None);
    }

    /// What an app sends back is what the service sent: the items round-trip.
    #[test]
    fn the_items_sent_read_back_as_the_same_answers() {
        let values = [0, 1, 2, 3, 0, 1, 2, 3, 1];
        assert_eq!(
            answers_of(Questionnaire::of(Instrument::Phq9).unwrap(), &phq9(values)),
            Ok(values.to_vec())
        );
        let pain = Questionnaire::of(Instrument::PainNrs).unwrap();
        let items: Vec<_> = items_of(pain, &[7])
            .into_iter()
            .map(|(c, given)| item(0, c.code, read_back(given)))
            .collect();
        assert_eq!(answers_of(pain, &items), Ok(vec![7]));
    }

    /// Each refusal names the place in the body it concerns.
    #[test]
    fn every_broken_rule_is_named_at_its_place() {
        let q = Questionnaire::of(Instrument::Phq9).unwrap();
        let fields = |items: &[ItemAnswers]| -> Vec<String> {
            answers_of(q, items)
                .unwrap_err()
                .into_iter()
                .map(|b| b.field)
                .collect()
        };
        let mut items = phq9([1; 9]);
        items.pop();
        assert_eq!(fields(&items), ["item"], "item 9 missing");
        let mut items = phq9([1; 9]);
        items.push(item(9, "44261-6", Answer::Integer(9)));
        assert_eq!(fields(&items), ["item[9].linkId"], "a total");
        let mut items = phq9([1; 9]);
        items[2].answers = vec![coded("LA9999-9")];
        assert_eq!(fields(&items), ["item[2].answer[0].valueCoding.code"]);
        let mut items = phq9([1; 9]);
        items[3].answers = vec![Answer::Integer(2)];
        items[4].answers = vec![];
        assert_eq!(fields(&items), ["item[3].answer[0]", "item[4].answer"]);
        let mut items = phq9([1; 9]);
        items[0].answers = vec![Answer::Coding {
            system: Some(SNOMED.into()),
            code: Some("LA6568-5".into()),
        }];
        assert_eq!(fields(&items), ["item[0].answer[0].valueCoding.system"]);
        let mut items = phq9([1; 9]);
        items.push(item(9, "69722-7", coded("LA6568-5")));
        assert_eq!(
            answers_of(q, &items),
            Ok(vec![1; 9]),
            "the difficulty item is let be"
        );
        let mut items = phq9([1; 9]);
        items.push(item(9, "44250-9", coded("LA6568-5")));
        items.push(item(10, "12345-6", coded("LA6568-5")));
        assert_eq!(fields(&items), ["item[9].linkId", "item[10].linkId"]);
        let pain = Questionnaire::of(Instrument::PainNrs).unwrap();
        let out_of_range = [item(0, "72514-3", Answer::Integer(11))];
        assert_eq!(
            answers_of(pain, &out_of_range).unwrap_err()[0].field,
            "item[0].answer[0].valueInteger"
        );
    }
}
