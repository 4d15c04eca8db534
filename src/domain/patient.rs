//! Patients (domain.md §1): the minimum identifying data, indications, risk factors.

use crate::domain::instrument::Instrument;
use crate::domain::RuleBroken;

vocabulary!(
    /// Sex as recorded by the clinic.
    Sex { Female = "female", Male = "male", Intersex = "intersex", Unknown = "unknown" }
);

vocabulary!(
    /// What ketamine is given for.
    Indication {
        MajorDepression = "major_depression",
        TreatmentResistantDepression = "treatment_resistant_depression",
        BipolarDepression = "bipolar_depression",
        Anxiety = "anxiety",
        Ocd = "ocd",
        Ptsd = "ptsd",
        Fibromyalgia = "fibromyalgia",
        ComplexRegionalPainSyndrome = "complex_regional_pain_syndrome",
        PostOperativePain = "post_operative_pain",
        OtherChronicPain = "other_chronic_pain",
        Other = "other",
    }
);

impl Indication {
    /// The course's primary instrument unless the clinic chooses another (domain.md §2).
    pub fn default_instrument(self) -> Instrument {
        use Indication::*;
        match self {
            MajorDepression | TreatmentResistantDepression | BipolarDepression | Other => {
                Instrument::Phq9
            }
            Anxiety => Instrument::Gad7,
            Ocd => Instrument::Ybocs,
            Ptsd => Instrument::Pcl5,
            Fibromyalgia | ComplexRegionalPainSyndrome | PostOperativePain | OtherChronicPain => {
                Instrument::PainNrs
            }
        }
    }
}

vocabulary!(
    /// Conditions that make ketamine risky (domain.md §1).
    RiskFactor {
        Psychosis = "psychosis",
        CurrentMania = "current_mania",
        RaisedIntracranialPressure = "raised_intracranial_pressure",
        Pregnancy = "pregnancy",
        PriorAdverseReactionToKetamine = "prior_adverse_reaction_to_ketamine",
        Hypertension = "hypertension",
        CardiovascularDisease = "cardiovascular_disease",
        SubstanceUseDisorder = "substance_use_disorder",
    }
);

vocabulary!(
    /// How serious a risk factor is.
    RiskClass { Contraindication = "contraindication", Caution = "caution" }
);

impl RiskFactor {
    pub fn class(self) -> RiskClass {
        use RiskFactor::*;
        match self {
            Psychosis
            | CurrentMania
            | RaisedIntracranialPressure
            | Pregnancy
            | PriorAdverseReactionToKetamine => RiskClass::Contraindication,
            Hypertension | CardiovascularDisease | SubstanceUseDisorder => RiskClass::Caution,
        }
    }
}

/// A year of birth: not before 1900 and not after the current year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BirthYear(i32);

impl BirthYear {
    pub fn parse(year: i32, current_year: i32) -> Result<Self, RuleBroken> {
        if !(1900..=current_year).contains(&year) {
            return Err(RuleBroken::new(
                "birth_year",
                format!("must be from 1900 to {current_year}"),
            ));
        }
        Ok(Self(year))
    }
    pub fn get(self) -> i32 {
        self.0
    }
}

/// One or more distinct indications.
pub fn indications(list: &[Indication]) -> Result<Vec<Indication>, RuleBroken> {
    let mut sorted = list.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Err(RuleBroken::new(
            "indications",
            "must name at least one indication",
        ));
    }
    if sorted.len() != list.len() {
        return Err(RuleBroken::new(
            "indications",
            "must not repeat an indication",
        ));
    }
    Ok(list.to_vec())
}

/// A clinic's own reference: 1–64 printable characters.
pub fn external_ref(raw: &str) -> Result<String, RuleBroken> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 64 || trimmed.chars().any(char::is_control) {
        return Err(RuleBroken::new(
            "external_ref",
            "must be 1 to 64 printable characters",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// domain.md §2: default primary instrument by indication.
    #[test]
    fn default_instruments_by_indication() {
        let table = [
            (Indication::MajorDepression, Instrument::Phq9),
            (Indication::TreatmentResistantDepression, Instrument::Phq9),
            (Indication::BipolarDepression, Instrument::Phq9),
            (Indication::Anxiety, Instrument::Gad7),
            (Indication::Ocd, Instrument::Ybocs),
            (Indication::Ptsd, Instrument::Pcl5),
            (Indication::Fibromyalgia, Instrument::PainNrs),
            (Indication::ComplexRegionalPainSyndrome, Instrument::PainNrs),
            (Indication::PostOperativePain, Instrument::PainNrs),
            (Indication::OtherChronicPain, Instrument::PainNrs),
        ];
        for (indication, instrument) in table {
            assert_eq!(indication.default_instrument(), instrument, "{indication}");
        }
    }

    /// domain.md §1: the risk-factor table.
    #[test]
    fn risk_factor_classes() {
        let contraindications: Vec<_> = RiskFactor::ALL
            .iter()
            .filter(|r| r.class() == RiskClass::Contraindication)
            .map(|r| r.as_str())
            .collect();
        assert_eq!(
            contraindications,
            [
                "psychosis",
                "current_mania",
                "raised_intracranial_pressure",
                "pregnancy",
                "prior_adverse_reaction_to_ketamine"
            ]
        );
        assert_eq!(RiskFactor::ALL.len() - contraindications.len(), 3);
    }

    #[test]
    fn birth_year_and_indication_rules() {
        assert!(BirthYear::parse(1899, 2026).is_err());
        assert!(BirthYear::parse(1900, 2026).is_ok());
        assert!(BirthYear::parse(2026, 2026).is_ok());
        assert!(BirthYear::parse(2027, 2026).is_err());
        assert!(indications(&[]).is_err());
        assert!(indications(&[Indication::Ocd, Indication::Ocd]).is_err());
        assert_eq!(
            indications(&[Indication::Ptsd]).unwrap(),
            [Indication::Ptsd]
        );
        assert!(external_ref(" ").is_err());
        assert!(external_ref(&"x".repeat(65)).is_err());
        assert_eq!(external_ref(" MRN-0042 ").unwrap(), "MRN-0042");
    }
}
