//! The clinic's rules, as types whose constructors refuse what the rules forbid. Pure: no I/O,
//! no framework types. Every number here comes from the specification's domain.md.

/// A closed set of names, stored and sent as snake_case text. Generates the enum with serde
/// and OpenAPI derives, `ALL`, `as_str` and `FromStr`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("must be one of {}", names.join(", "))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod account;
pub mod flags;
pub mod instrument;
pub mod outcomes;
pub mod patient;
pub mod plan;
pub mod privacy;
pub mod research;
pub mod schedule;
pub mod side_effect;
pub mod text;
pub mod throttle;
pub mod time;
pub mod treatment;

/// A broken rule, naming the field (a dotted path) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleBroken {
    pub field: String,
    pub rule: String,
}

impl RuleBroken {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}
