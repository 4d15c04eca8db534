//! Accounts: who may sign in, with what role, and what a password must be.

use std::fmt;

use crate::domain::RuleBroken;

vocabulary!(
    /// What an account may do (api.md, Roles).
    Role {
        /// Accounts, clinics and the audit trail; no clinical records.
        Admin = "admin",
        /// The clinical records of their own clinic.
        Clinician = "clinician",
        /// Their own record, through the app.
        Patient = "patient",
        /// De-identified research endpoints only.
        Researcher = "researcher",
    }
);

impl Role {
    /// Clinicians and patients act within one clinic; the others within none.
    pub fn belongs_to_a_clinic(self) -> bool {
        matches!(self, Role::Clinician | Role::Patient)
    }

    /// Whether a staff account of this role may be made with (or without) a clinic: a
    /// clinician needs one, an administrator or researcher has none, and a patient's account
    /// comes only from an invite.
    pub fn staff_account(self, has_clinic: bool) -> Result<Self, RuleBroken> {
        match (self, self.belongs_to_a_clinic(), has_clinic) {
            (Role::Patient, _, _) => Err(RuleBroken::new(
                "role",
                "patients get their accounts through an invite",
            )),
            (_, true, false) => Err(RuleBroken::new("clinic_id", "is required for this role")),
            (_, false, true) => Err(RuleBroken::new("clinic_id", "must be absent for this role")),
            _ => Ok(self),
        }
    }
}

/// An email address, normalised so that one person has one account: trimmed, NFKC-normalised
/// and lower-cased (so a fullwidth `ａｎａ@…` is `ana@…`), with no invisible, formatting or
/// control characters (zero-width spaces, soft hyphens, bidirectional overrides, NUL), which
/// would make a second account that looks like the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

/// Why a text is not an email address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailRule {
    /// It holds invisible, formatting or control characters.
    Invisible,
    /// It does not have the shape of an address.
    NotAnAddress,
}

impl EmailRule {
    pub fn message(self) -> &'static str {
        match self {
            Self::Invisible => "must not contain invisible, formatting or control characters",
            Self::NotAnAddress => "must be an email address",
        }
    }
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailRule> {
        let email = normalise(raw);
        if email.chars().any(is_invisible) {
            return Err(EmailRule::Invisible);
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(EmailRule::NotAnAddress);
        };
        let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '@');
        let dotted = domain.split('.').count() >= 2 && domain.split('.').all(|p| !p.is_empty());
        if email.len() > 254 || !plain(local) || !plain(domain) || !dotted {
            return Err(EmailRule::NotAnAddress);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NFKC, lower case, NFKC again: lower-casing can undo the normal form (`İ` becomes `i` and a
/// combining dot), and comparing needs one spelling of each address.
fn normalise(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = raw.trim().nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// Characters that do not show, or change how others show.
fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::PrivateUse
            | G::Surrogate
            | G::Unassigned
    )
}

/// A password that meets the rules of api.md: 12 to 128 characters, not common or easily
/// guessed, and no composition rules.
pub struct Password(String);

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Which rule a refused password broke.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordRule {
    TooShort,
    TooLong,
    TooCommon,
}

impl PasswordRule {
    pub fn message(&self) -> &'static str {
        match self {
            Self::TooShort => "must be at least 12 characters",
            Self::TooLong => "must be at most 128 characters",
            Self::TooCommon => {
                "is too common or too easily guessed; choose a longer, less predictable passphrase"
            }
        }
    }
}

impl Password {
    /// Checks a new password; `context` holds words the password must not lean on (the email).
    pub fn parse(raw: &str, context: &[&str]) -> Result<Self, PasswordRule> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(PasswordRule::TooShort);
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(PasswordRule::TooLong);
        }
        // zxcvbn matches against its bundled lists (30 000 common passwords, names, words) and
        // keyboard patterns; below score 3 a password falls to an offline guessing attack.
        if (zxcvbn::zxcvbn(raw, context).score() as u8) < 3 {
            return Err(PasswordRule::TooCommon);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// api.md, Roles: a clinician belongs to a clinic, administrators and researchers to
    /// none, and patients join only through an invite.
    #[test]
    fn which_staff_accounts_may_be_made() {
        let field = |r: Result<Role, RuleBroken>| r.map_err(|b| b.field);
        let cases = [
            (Role::Clinician, true, Ok(Role::Clinician)),
            (Role::Clinician, false, Err("clinic_id")),
            (Role::Admin, false, Ok(Role::Admin)),
            (Role::Admin, true, Err("clinic_id")),
            (Role::Researcher, false, Ok(Role::Researcher)),
            (Role::Researcher, true, Err("clinic_id")),
            (Role::Patient, true, Err("role")),
            (Role::Patient, false, Err("role")),
        ];
        for (role, clinic, expected) in cases {
            assert_eq!(
                field(role.staff_account(clinic)),
                expected.map_err(String::from),
                "{role} with clinic {clinic}"
            );
        }
    }

    /// issue 12 (9): look-alike spellings of one address are that address, or refused.
    #[test]
    fn look_alike_emails_are_one_address_or_refused() {
        let same = [
            "ａｎａ@ｃｌｉｎｉｃ.ｅｘａｍｐｌｅ",
            "ANA@CLINIC.EXAMPLE",
            "ana@clinic.example",
        ];
        for raw in same {
            assert_eq!(
                Email::parse(raw).unwrap().as_str(),
                "ana@clinic.example",
                "{raw}"
            );
        }
        for invisible in [
            '\u{200b}', '\u{ad}', '\u{202e}', '\u{0}', '\u{2066}', '\u{feff}', '\u{e000}',
        ] {
            let raw = format!("an{invisible}a@clinic.example");
            assert_eq!(Email::parse(&raw), Err(EmailRule::Invisible), "{raw:?}");
        }
        // Letters of other scripts stay what they are: an address may be internationalised.
        assert_eq!(
            Email::parse("José@Clínica.example").unwrap().as_str(),
            "josé@clínica.example"
        );
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ana@Clinic.Example ").unwrap().as_str(),
            "ana@clinic.example"
        );
        for bad in [
            "",
            "ana",
            "@clinic.example",
            "ana@",
            "ana@clinic",
            "a na@clinic.example",
            "a@b@c.d",
            "ana@clinic..example",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    /// api.md, Authentication: 12 to 128 characters, not common, no composition rules.
    #[test]
    fn password_rules_of_the_api_contract() {
        let cases: &[(&str, Result<(), PasswordRule>)] = &[
            ("short-one", Err(PasswordRule::TooShort)),
            ("elevenchars", Err(PasswordRule::TooShort)),
            ("password1234", Err(PasswordRule::TooCommon)),
            ("qwertyuiopasdf", Err(PasswordRule::TooCommon)),
            ("123456789012", Err(PasswordRule::TooCommon)),
            ("iloveyou1234", Err(PasswordRule::TooCommon)),
            ("lantern orbit kettle", Ok(())),
            ("tiny grey heron wades", Ok(())),
        ];
        for (raw, expected) in cases {
            assert_eq!(&Password::parse(raw, &[]).map(drop), expected, "{raw}");
        }
        let long = "lantern orbit kettle ".repeat(7);
        assert_eq!(
            Password::parse(&long, &[]).map(drop),
            Err(PasswordRule::TooLong)
        );
        let exactly_128: String = "lantern orbit kettle ".repeat(7)[..128].to_owned();
        assert!(Password::parse(&exactly_128, &[]).is_ok());
    }

    #[test]
    fn a_password_built_on_the_email_is_refused() {
        assert_eq!(
            Password::parse("ana.moreno@clinic.example", &["ana.moreno@clinic.example"]).map(drop),
            Err(PasswordRule::TooCommon)
        );
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(*role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
