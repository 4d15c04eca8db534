//! A clinic to test clinical records in: its clinician, patients, courses, sessions and a
//! patient's app account, built through the API.

use serde_json::{json, Value};

use crate::helpers::{Session, TestApp};

/// A clinic's signed-in clinician.
pub struct Clinic {
    pub clinician: Session,
}

impl TestApp {
    pub async fn post_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.post(path, Some(token), body).await
    }

    pub async fn delete_as(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates a clinic and signs in a clinician of it.
    pub async fn clinic(&self, admin: &Session, name: &str) -> Clinic {
        let id = self.create_clinic(admin, name).await;
        let clinician = self.sign_in_new(admin, "clinician", Some(&id)).await;
        Clinic { clinician }
    }

    /// Registers a patient with a depression indication and returns the id.
    pub async fn new_patient(&self, clinician: &Session) -> String {
        let body = json!({"birth_year": 1980, "sex": "female", "indications": ["treatment_resistant_depression"], "research_consent": true});
        let res = self
            .post_as("/v1/patients", &clinician.access_token, &body)
            .await;
        assert_eq!(res.status(), 201, "patient created");
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Plans a standard course starting on `start_date` (YYYY-MM-DD).
    pub async fn new_course(&self, clinician: &Session, patient: &str, start_date: &str) -> String {
        let body =
            json!({"indication": "treatment_resistant_depression", "start_date": start_date});
        let res = self
            .post_as(
                &format!("/v1/patients/{patient}/courses"),
                &clinician.access_token,
                &body,
            )
            .await;
        assert_eq!(res.status(), 201, "course created");
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Records a PHQ-9 five minutes ago, every item 1 but item 9 (thoughts of self-harm) at
    /// `item9`; its id.
    pub async fn phq9_answering(&self, clinician: &Session, patient: &str, item9: u8) -> String {
        let res = self
            .post_as(
                &format!("/v1/patients/{patient}/assessments"),
                &clinician.access_token,
                &json!({"instrument": "phq9", "taken_at": minutes_from_now(-5),
                    "items": [1, 1, 1, 1, 1, 1, 1, 1, item9]}),
            )
            .await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Records a completed session at `started_at` (RFC 3339).
    pub async fn new_session(
        &self,
        clinician: &Session,
        patient: &str,
        started_at: &str,
    ) -> String {
        let body = json!({"route": "iv", "started_at": started_at, "dose_mg_per_kg": 0.5, "weight_kg": 70.0});
        let res = self
            .post_as(
                &format!("/v1/patients/{patient}/sessions"),
                &clinician.access_token,
                &body,
            )
            .await;
        assert_eq!(res.status(), 201, "session created");
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A researcher with the controlled tier: an administrator's grant for a year.
    pub async fn controlled_researcher(&self, admin: &Session) -> Session {
        let researcher = self.sign_in_new(admin, "researcher", None).await;
        let grant = json!({"researcher_id": researcher.user_id, "purpose": "A study under a data-use agreement",
            "reference": "DUA-TEST-1", "expires_at": days_from_now(365)});
        let res = self
            .post_as("/v1/research-grants", &admin.access_token, &grant)
            .await;
        assert_eq!(res.status(), 201, "grant created");
        researcher
    }

    /// Issues an invite for the patient and registers their app account with it.
    pub async fn patient_app(&self, clinician: &Session, patient: &str) -> Session {
        let invite: Value = self
            .post_as(
                &format!("/v1/patients/{patient}/invites"),
                &clinician.access_token,
                &json!(null),
            )
            .await
            .json()
            .await
            .unwrap();
        let email = format!("patient-{}@example.org", uuid::Uuid::new_v4().simple());
        let body = json!({"invite_code": invite["invite_code"], "email": email, "password": crate::helpers::PASSWORD});
        let res = self.post("/v1/auth/register", None, &body).await;
        assert_eq!(res.status(), 201, "registered");
        self.sign_in(&email, crate::helpers::PASSWORD).await
    }
}

/// An instant `minutes` from now, in RFC 3339.
pub fn minutes_from_now(minutes: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
}

/// An instant `days` from now, in RFC 3339.
pub fn days_from_now(days: i64) -> String {
    minutes_from_now(days * 24 * 60)
}
