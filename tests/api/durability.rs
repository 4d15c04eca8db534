//! A patient's personal durability (domain.md §6a) through the API, on both databases: the
//! domain's hand-computed figures from a record built through the API, too little data said
//! as such, the patient's own read, and no other clinic's.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{painted, Session, TestApp};

/// An instant the answer states.
fn instant(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .expect("an instant")
        .parse()
        .expect("RFC 3339")
}

const BASELINE: [u8; 9] = [3, 3, 3, 3, 2, 2, 2, 2, 0]; // 20
const NADIR: [u8; 9] = [1, 1, 1, 1, 1, 1, 1, 1, 0]; // 8
const HALF_LOST: [u8; 9] = [2, 2, 2, 2, 2, 2, 2, 1, 0]; // 15 ≥ 20 − 12/2
const STILL_BETTER: [u8; 9] = [2, 1, 1, 1, 1, 1, 1, 1, 0]; // 9

struct Record<'a> {
    app: &'a TestApp,
    clinician: &'a Session,
    patient: String,
    course: String,
}

impl Record<'_> {
    async fn phq9(&self, at: DateTime<Utc>, items: [u8; 9]) {
        let res = self
            .app
            .post_as(
                &format!("/v1/patients/{}/assessments", self.patient),
                &self.clinician.access_token,
                &json!({"instrument": "phq9", "taken_at": at.to_rfc3339(), "items": items}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }

    /// A completed infusion at `at`: baseline the day before, nadir the day after, and half
    /// the gain lost `wears_off_after` days after it (never, when `None`: still better 3 days
    /// after).
    async fn infusion(&self, at: DateTime<Utc>, wears_off_after: Option<i64>) {
        self.phq9(at - Duration::days(1), BASELINE).await;
        let res = self
            .app
            .post_as(
                &format!("/v1/patients/{}/sessions", self.patient),
                &self.clinician.access_token,
                &json!({"course_id": self.course, "route": "iv", "started_at": at.to_rfc3339(),
                    "dose_mg_per_kg": 0.5, "weight_kg": 70.0, "charge_cents": 40000}),
            )
            .await;
        assert_eq!(res.status(), 201);
        self.phq9(at + Duration::days(1), NADIR).await;
        match wears_off_after {
            Some(days) => self.phq9(at + Duration::days(days), HALF_LOST).await,
            None => self.phq9(at + Duration::days(3), STILL_BETTER).await,
        }
    }
}

/// A patient with a custom course planned on `planned` (days from today) and its infusions.
async fn record<'a>(app: &'a TestApp, clinician: &'a Session, planned: &[i64]) -> Record<'a> {
    let patient = app.new_patient(clinician).await;
    let today = Utc::now().date_naive();
    let dates: Vec<String> = planned
        .iter()
        .map(|d| (today + Duration::days(*d)).to_string())
        .collect();
    let res = app
        .post_as(
            &format!("/v1/patients/{patient}/courses"),
            &clinician.access_token,
            &json!({"indication": "treatment_resistant_depression", "protocol": "custom",
                "start_date": dates[0], "planned_dates": dates}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let course: Value = res.json().await.unwrap();
    Record {
        app,
        clinician,
        patient,
        course: course["id"].as_str().unwrap().to_owned(),
    }
}

/// Wear-offs after 5, 8 and 11 days, the latest still better 3 days on (censored); the next
/// planned infusion 10 days ahead: a personal median of 8 days, and a gap of about 10.
async fn four_infusions<'a>(app: &'a TestApp, clinician: &'a Session) -> Record<'a> {
    let r = record(app, clinician, &[-51, -36, -22, -8, 10]).await;
    let now = Utc::now() - Duration::hours(1);
    r.infusion(now - Duration::days(50), Some(5)).await;
    r.infusion(now - Duration::days(36), Some(8)).await;
    r.infusion(now - Duration::days(22), Some(11)).await;
    r.infusion(now - Duration::days(8), None).await;
    r
}

/// The patient's open `benefit_gap_expected` flags: (record id, detail), within 10 s of
/// `settled` holding (the sweep, every second in tests, raises and clears them).
async fn gap_flags(
    app: &TestApp,
    clinician: &Session,
    patient: &str,
    settled: impl Fn(&Vec<(String, String)>) -> bool,
) -> Vec<(String, String)> {
    crate::helpers::eventually(
        || async {
            let res = app
                .get_as(
                    &format!(
                        "/v1/flags?kind=benefit_gap_expected&status=open&patient_id={patient}"
                    ),
                    &clinician.access_token,
                )
                .await;
            let body: Value = res.json().await.unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    assert_eq!(f["level"], "info");
                    (
                        f["record_id"].as_str().unwrap().to_owned(),
                        f["detail"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        },
        settled,
    )
    .await
}

api_test!(
    a_gap_before_the_next_planned_infusion_is_flagged_and_cleared_as_the_record_changes,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let clinician = &harbour.clinician;
        let r = four_infusions(&app, clinician).await;
        let figures: Value = app
            .get_as(
                &format!("/v1/patients/{}/durability", r.patient),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let latest = figures["courses"][0]["latest_session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // §6a: a gap of about 10 days, above G = 3: one flag, on the latest infusion.
        // (While the infusions were recorded, an earlier one was the latest for a moment and may
        // have been flagged: the sweep moves the flag on.)
        let on_latest = |f: &Vec<(String, String)>| f.len() == 1 && f[0].0 == latest;
        let flagged = gap_flags(&app, clinician, &r.patient, on_latest).await;
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert_eq!(flagged[0].0, latest);
        assert!(
            flagged[0].1.contains("before the next planned infusion"),
            "{}",
            flagged[0].1
        );

        // An infusion today: the latest now wears off about 8 days on, 2 before the planned
        // one — within the margin, so the flag is cleared and none is raised.
        let res = app
            .post_as(
                &format!("/v1/patients/{}/sessions", r.patient),
                &clinician.access_token,
                &json!({"course_id": r.course, "route": "iv", "started_at": (Utc::now() - Duration::minutes(30)).to_rfc3339(),
                    "dose_mg_per_kg": 0.5, "weight_kg": 70.0}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let today: Value = res.json().await.unwrap();
        let cleared = gap_flags(&app, clinician, &r.patient, |f| f.is_empty()).await;
        assert_eq!(cleared, vec![], "the gap closed with the new infusion");

        // That infusion was recorded in error: corrected, the gap is back, flagged again.
        let res = app
            .delete_as(
                &format!("/v1/sessions/{}", today["id"].as_str().unwrap()),
                &clinician.access_token,
                &json!({"reason": "recorded on the wrong patient"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let again = gap_flags(&app, clinician, &r.patient, on_latest).await;
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].0, latest, "on the latest infusion that stands");
        let course: Value = app
            .get_as(
                &format!("/v1/patients/{}/durability", r.patient),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            course["courses"][0]["gap_expected"], true,
            "the read agrees"
        );
    }
);

api_test!(
    the_personal_figures_come_from_the_patients_own_infusions,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let ridge = app.clinic(&admin, "Ridge").await;
        let clinician = &harbour.clinician;
        let r = four_infusions(&app, clinician).await;

        let res = app
            .get_as(
                &format!("/v1/patients/{}/durability", r.patient),
                &clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert!(body["decision_support"]
            .as_str()
            .unwrap()
            .contains("not a prescription"));
        let course = &body["courses"][0];
        let statuses: Vec<(&str, f64)> = course["infusions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["status"].as_str().unwrap(),
                    i["durability_days"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [
                ("wore_off", 5.0),
                ("wore_off", 8.0),
                ("wore_off", 11.0),
                ("sustained", 3.0)
            ]
        );
        assert_eq!(course["infusions"][3]["infusion_number"], 4);
        // §6a: KM over 5, 8, 11 (events) and 3 (censored): S(5) = 2/3, S(8) = 1/3.
        assert_eq!(course["personal_median"]["days"], 8.0);
        // §6a: Theil–Sen of (1, 5), (2, 8), (3, 11): 3 days per infusion, on 3 sessions.
        assert_eq!(
            course["trend"],
            json!({"days_per_infusion": 3.0, "sessions": 3, "too_little_data": null})
        );
        // §6a: the latest is sustained: its start plus the median.
        let latest_start = instant(&course["infusions"][3]["started_at"]);
        let wear_off = instant(&course["expected_wear_off_at"]);
        assert_eq!(wear_off - latest_start, Duration::days(8));
        let next = (Utc::now().date_naive() + Duration::days(10))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(course["next_planned_at"], json!(next));
        let gap = course["expected_gap_days"].as_f64().unwrap();
        let expected = ((next - wear_off).num_minutes() as f64 / 1440.0 * 10.0).round() / 10.0;
        assert_eq!(gap, expected);
        assert!(gap > 3.0 && course["gap_expected"] == true, "{gap}");
        assert_eq!(course["suggested_interval_days"], 8);
        assert_eq!(
            body["exposure"],
            json!({"sessions_28_days": 2, "dose_mg_28_days": 70.0, "sessions_90_days": 4, "dose_mg_90_days": 140.0})
        );
        assert_eq!(body["charges_to_date_cents"], 160000);
        // 160 000 cents over (5 + 8 + 11 + 3) / 7 weeks.
        assert_eq!(body["charge_per_benefit_week_cents"], 41481.48);

        // The swimmer plot: a bar per infusion coloured by status, an arrow on the censored
        // one, the next planned infusion and the expected gap, and the decision-support line.
        let res = app
            .get_as(
                &format!("/v1/patients/{}/durability.svg", r.patient),
                &clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/svg+xml");
        let svg = res.text().await.unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(
            painted(&doc, "rect", "fill", "#FF7F0E"),
            3,
            "three bars that wore off"
        );
        assert_eq!(
            painted(&doc, "rect", "fill", "#2CA02C"),
            1,
            "one sustained bar"
        );
        assert_eq!(
            painted(&doc, "polygon", "fill", "#2CA02C"),
            1,
            "its open-ended arrow"
        );
        assert_eq!(
            painted(&doc, "rect", "fill", "#D62728"),
            1,
            "the expected gap"
        );
        assert!(
            painted(&doc, "polyline", "stroke", "#17BECF")
                + painted(&doc, "line", "stroke", "#17BECF")
                >= 1,
            "the next planned infusion"
        );
        let texts: String = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join("|");
        assert!(
            texts.contains(&format!("expected gap {gap:.1} d")),
            "{texts}"
        );
        assert!(
            texts.contains("next planned") && texts.contains("not a prescription"),
            "{texts}"
        );
        let width: f64 = doc
            .root_element()
            .attribute("width")
            .unwrap()
            .parse()
            .unwrap();
        assert!(width <= 640.0, "scales down to a phone's width");
        let res = app
            .get_as(
                &format!(
                    "/v1/patients/{}/durability.svg?course_id={}",
                    r.patient,
                    uuid::Uuid::new_v4()
                ),
                &clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 404, "a course that is not the patient's");

        // The patient reads their own; another clinic reads nothing.
        let phone = app.patient_app(clinician, &r.patient).await;
        let own: Value = app
            .get_as("/v1/me/durability", &phone.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(own["courses"][0]["personal_median"]["days"], 8.0);
        let res = app
            .get_as(
                &format!("/v1/patients/{}/durability", r.patient),
                &ridge.clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 404);
        let res = app
            .get_as("/v1/me/durability", &clinician.access_token)
            .await;
        assert_eq!(res.status(), 403);
    }
);

api_test!(
    too_little_data_is_said_rather_than_guessed,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let clinician = &harbour.clinician;
        let r = record(&app, clinician, &[-31, -16, 20]).await;
        let now = Utc::now() - Duration::hours(1);
        r.infusion(now - Duration::days(30), Some(6)).await;
        r.infusion(now - Duration::days(16), Some(7)).await;
        let body: Value = app
            .get_as(
                &format!("/v1/patients/{}/durability", r.patient),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let course = &body["courses"][0];
        assert_eq!(
            course["personal_median"],
            json!({"days": null, "longer_than_days": null, "too_little_data": {"have": 2, "need": 3}})
        );
        assert_eq!(
            course["trend"]["too_little_data"],
            json!({"have": 2, "need": 3})
        );
        // The latest wore off: its own wear-off stands without a median.
        let latest_start = instant(&course["infusions"][1]["started_at"]);
        let wear_off = instant(&course["expected_wear_off_at"]);
        assert_eq!(wear_off - latest_start, Duration::days(7));
        assert_eq!(course["suggested_interval_days"], Value::Null);
        // A patient with no infusion yet: every figure absent, none invented.
        let empty = record(&app, clinician, &[5]).await;
        let body: Value = app
            .get_as(
                &format!("/v1/patients/{}/durability", empty.patient),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let course = &body["courses"][0];
        assert_eq!(course["infusions"], json!([]));
        assert_eq!(course["expected_wear_off_at"], Value::Null);
        assert_eq!(course["expected_gap_days"], Value::Null);
        assert_eq!(body["charge_per_benefit_week_cents"], Value::Null);
    }
);
