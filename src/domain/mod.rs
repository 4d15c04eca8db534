//! The clinic's rules, as types whose constructors refuse what the rules forbid. Pure: no I/O,
//! no framework types. Every number here comes from the specification's domain.md.

/// A closed set of names, stored and sent as the text given for each (on the wire, in the
/// contract and in the database alike). Generates the enum with serde and OpenAPI derives, `ALL`, `as_str`, `FromStr`, and its column mapping on every diesel
/// backend (a text column; a stored name outside the set reads back as an error, never as a
/// default). The mapping is a type-level statement of how the value is stored: no I/O here.
/// Each text is taken as a `tt`, not a `literal`: a `literal` fragment reaches the derives
/// wrapped, and utoipa's then ignores the rename (the contract said `below05` for `lt_0.5`).
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize, utoipa::ToSchema,
                 diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                text.parse().map_err(|_| {
                    format!("unreadable stored {}: {text:?}", stringify!($name)).into()
                })
            }
        }

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
pub mod audit;
pub mod durability;
pub mod egress;
pub mod events;
pub mod fhir;
pub mod flags;
pub mod ids;
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
pub mod webhooks;

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
