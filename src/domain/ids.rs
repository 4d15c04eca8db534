//! The identities of the clinic's records, one type each, so a session's id can never be
//! passed where a patient's is meant. Each is a UUID, sent and stored as its hyphenated text.

macro_rules! ids {
    ($($name:ident),+ $(,)?) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize, diesel::AsExpression, diesel::FromSqlRow)]
        #[serde(transparent)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new id: UUID version 4.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// The id numbered `n`, for tables of test cases.
            #[cfg(test)]
            pub fn numbered(n: u128) -> Self {
                Self(uuid::Uuid::from_u128(n))
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(text: &str) -> Result<Self, uuid::Error> {
                text.parse().map(Self)
            }
        }
    )+};
}

/// Calls the macro `$each` with every id type: the types are declared here and their columns
/// mapped in `store::columns` from this one list.
macro_rules! for_each_id {
    ($each:ident) => {
        $each!(
            ClinicId,
            UserId,
            PatientId,
            CourseId,
            SessionId,
            AssessmentId,
            SideEffectId,
            FlagId,
            InviteId,
            GrantId,
            AuditEventId,
            ConsentEventId,
            // An event of the outbox, told to the clinic's streams.
            EventId,
            RefreshTokenId,
            // The refresh tokens that rotate from one sign-in.
            TokenFamilyId,
            WebhookId,
            DeliveryId,
            // A clinic-wide FHIR Bulk Data export.
            BulkExportId
        );
    };
}
pub(crate) use for_each_id;

for_each_id!(ids);

impl EventId {
    /// A new event id: UUID version 7, increasing within this process, so the events one
    /// transaction writes (which share a change position on PostgreSQL) keep their order.
    pub fn next() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}
