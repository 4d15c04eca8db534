//! Whose clinical records a caller may touch. Every clinical query takes a scope, so a record
//! outside it is simply not found (404), never forbidden (which would reveal that it exists).

use crate::domain::ids::{ClinicId, PatientId};

/// The clinical scope of a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A clinician: every patient of one clinic.
    Clinic(ClinicId),
    /// A patient: their own record only.
    Patient(PatientId),
}

/// Narrows a boxed query that includes `patients` to the scope.
macro_rules! in_scope {
    ($query:expr, $scope:expr) => {
        match $scope {
            $crate::store::scope::Scope::Clinic(clinic) => {
                $query.filter($crate::store::schema::patients::clinic_id.eq(*clinic))
            }
            $crate::store::scope::Scope::Patient(patient) => {
                $query.filter($crate::store::schema::patients::id.eq(*patient))
            }
        }
    };
}
