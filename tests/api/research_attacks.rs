//! A motivated researcher in the aggregate tier (issue 13): the attacks that broke small-cell
//! suppression — differencing date ranges, subtracting a filtered answer from a total, the
//! lattice of every grouping, repeating a query to average its noise — each aimed at one
//! crafted patient, P. A distinguisher guesses, trial after trial, whether P is in the data
//! (P's research consent is flipped at random between trials, which is adding or removing
//! every record of one patient: the unit of privacy). Differential privacy bounds any
//! distinguisher's success at e^ε / (1 + e^ε) for the ε of what it reads; the tests allow
//! three standard errors of sampling on top. The same distinguisher against the controlled
//! tier's exact answers finds P every time: the attacks are real.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{Session, TestApp};

/// Other patients than P: enough that the cohort's groups clear the release threshold.
const OTHERS: usize = 30;

struct Cohort {
    clinician: Session,
    /// The crafted patient: the only intersex patient over 90, the only one with OCD, the only
    /// intranasal session, and the only session on its day.
    p: String,
    /// P's session time.
    p_at: chrono::DateTime<Utc>,
}

async fn patient(
    app: &TestApp,
    clinician: &Session,
    sex: &str,
    birth_year: i32,
    indication: &str,
) -> String {
    let body = json!({"birth_year": birth_year, "sex": sex, "indications": [indication], "research_consent": true});
    let res = app
        .post_as("/v1/patients", &clinician.access_token, &body)
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn session(
    app: &TestApp,
    clinician: &Session,
    patient: &str,
    indication: &str,
    route: &str,
    at: chrono::DateTime<Utc>,
) {
    let course =
        json!({"indication": indication, "start_date": (at - Duration::days(1)).date_naive()});
    let path = format!("/v1/patients/{patient}/courses");
    assert_eq!(
        app.post_as(&path, &clinician.access_token, &course)
            .await
            .status(),
        201
    );
    let body = json!({"route": route, "started_at": at.to_rfc3339(), "dose_mg_per_kg": 0.5, "weight_kg": 70});
    let path = format!("/v1/patients/{patient}/sessions");
    assert_eq!(
        app.post_as(&path, &clinician.access_token, &body)
            .await
            .status(),
        201
    );
}

async fn cohort(app: &TestApp, admin: &Session) -> Cohort {
    let clinician = app.clinic(admin, "Harbour").await.clinician;
    let now = Utc::now();
    for i in 0..OTHERS {
        let sex = if i % 2 == 0 { "female" } else { "male" };
        let id = patient(app, &clinician, sex, 1980, "treatment_resistant_depression").await;
        // Sessions 20 to 40 days ago: never on P's day (10 days ago).
        let at = now - Duration::days(20 + (i % 20) as i64);
        session(
            app,
            &clinician,
            &id,
            "treatment_resistant_depression",
            "iv",
            at,
        )
        .await;
    }
    let p = patient(app, &clinician, "intersex", 1930, "ocd").await;
    let p_at = now - Duration::days(10);
    session(app, &clinician, &p, "ocd", "intranasal", p_at).await;
    // P's one score: a trajectory of P alone, for the key scan to look for.
    let score = json!({"instrument": "phq9", "taken_at": (p_at + Duration::days(1)).to_rfc3339(), "items": [2, 2, 2, 2, 2, 2, 2, 2, 0]});
    let path = format!("/v1/patients/{p}/assessments");
    assert_eq!(
        app.post_as(&path, &clinician.access_token, &score)
            .await
            .status(),
        201
    );
    Cohort { clinician, p, p_at }
}

impl Cohort {
    /// Puts P in the data or takes them out (research consent).
    async fn set_p(&self, app: &TestApp, present: bool) {
        let res = app
            .patch(
                &format!("/v1/patients/{}", self.p),
                &self.clinician.access_token,
                None,
                &json!({"research_consent": present}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
}

async fn outcomes(app: &TestApp, researcher: &Session, query: &str) -> Value {
    let res = app
        .get_as(
            &format!("/v1/research/outcomes?{query}"),
            &researcher.access_token,
        )
        .await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

/// The patients of the one ungrouped row (0 when it was withheld).
fn patients(body: &Value) -> f64 {
    body["rows"][0]["patients"].as_f64().unwrap_or(0.0)
}

fn encode(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .replace('+', "%2B")
}

/// Runs `trials` of a distinguisher: P is present or not at random (a fair coin); `guess`
/// reads the answers and says whether P is present. Returns the share of right guesses.
async fn distinguish(
    app: &TestApp,
    cohort: &Cohort,
    trials: usize,
    mut attack: impl AsyncFnMut() -> bool,
) -> f64 {
    let mut right = 0;
    for _ in 0..trials {
        let present = rand::random::<bool>();
        cohort.set_p(app, present).await;
        right += usize::from(attack().await == present);
    }
    right as f64 / trials as f64
}

/// The success a distinguisher reading figures of total ε may reach, plus three standard
/// errors of `trials` Bernoulli draws.
fn bound(epsilon: f64, trials: usize) -> f64 {
    let p = epsilon.exp() / (1.0 + epsilon.exp());
    p + 3.0 * (p * (1.0 - p) / trials as f64).sqrt()
}

/// ε of one patient count under the default settings (the key selection's share; OpenDP's
/// map, stated by every answer as the query's spending, composes to the query's ε).
fn epsilon_of_patient_counts(app: &TestApp) -> f64 {
    let r = app.settings.research;
    // 15 statistics and the keys' two shares (research::private::outcomes).
    r.epsilon_per_query * 2.0 / 17.0
}

const ATTACK_BUDGET: &[(&str, &str)] = &[("KO_RESEARCH_EPSILON_BUDGET", "1000")];

api_test!(
    differencing_two_date_ranges_does_not_find_one_patient,
    overrides = ATTACK_BUDGET,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let cohort = cohort(&app, &admin).await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let before = format!("to={}", encode(cohort.p_at - Duration::hours(1)));
        let after = format!("to={}", encode(cohort.p_at + Duration::hours(1)));
        let trials = 80;
        let success = distinguish(&app, &cohort, trials, async || {
            let (a, b) = (
                outcomes(&app, &researcher, &before).await,
                outcomes(&app, &researcher, &after).await,
            );
            patients(&b) - patients(&a) >= 0.5
        })
        .await;
        let allowed = bound(2.0 * epsilon_of_patient_counts(&app), trials);
        eprintln!(
            "date ranges: the distinguisher was right {success} of the time (bound {allowed})"
        );
        assert!(
            success <= allowed,
            "the distinguisher was right {success} of the time (bound {allowed})"
        );

        // Against exact answers the same attack never misses.
        let controlled = app.controlled_researcher(&admin).await;
        let exact = distinguish(&app, &cohort, 10, async || {
            let (a, b) = (
                outcomes(&app, &controlled, &before).await,
                outcomes(&app, &controlled, &after).await,
            );
            patients(&b) - patients(&a) >= 0.5
        })
        .await;
        assert_eq!(exact, 1.0, "the attack works on exact answers");
    }
);

api_test!(
    subtracting_a_filtered_answer_from_a_total_does_not_find_one_patient,
    overrides = ATTACK_BUDGET,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let cohort = cohort(&app, &admin).await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let trials = 80;
        let success = distinguish(&app, &cohort, trials, async || {
            let total = outcomes(&app, &researcher, "").await;
            let iv = outcomes(&app, &researcher, "route=iv").await;
            patients(&total) - patients(&iv) >= 0.5
        })
        .await;
        let allowed = bound(2.0 * epsilon_of_patient_counts(&app), trials);
        eprintln!(
            "complement: the distinguisher was right {success} of the time (bound {allowed})"
        );
        assert!(
            success <= allowed,
            "right {success} of the time (bound {allowed})"
        );
    }
);

api_test!(
    the_lattice_of_groupings_never_shows_a_lone_patients_key,
    overrides = ATTACK_BUDGET,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let cohort = cohort(&app, &admin).await;
        cohort.set_p(&app, true).await;
        let aggregate = app.sign_in_new(&admin, "researcher", None).await;
        let controlled = app.controlled_researcher(&admin).await;
        let dims = [
            "indication",
            "route",
            "dose_band",
            "sex",
            "age_band",
            "clinic",
            "phase",
        ];
        // Every grouping of one and two dimensions, and all of them at once.
        let mut groupings: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        for (i, a) in dims.iter().enumerate() {
            for b in &dims[i + 1..] {
                groupings.push(format!("{a},{b}"));
            }
        }
        groupings.push(dims.join(","));
        // Trajectories group by the patient's own dimensions only.
        let patients_own = ["sex", "age_band", "indication", "sex,age_band,indication"];
        let queries = groupings
            .iter()
            .flat_map(|g| ["outcomes", "side-effects"].map(|path| format!("{path}?group_by={g}")));
        let queries = queries.chain(
            patients_own
                .iter()
                .map(|g| format!("trajectories?instrument=phq9&group_by={g}")),
        );
        // In either tier: no response shows a key of a group P stands alone in.
        for query in queries {
            for researcher in [&aggregate, &controlled] {
                let res = app
                    .get_as(&format!("/v1/research/{query}"), &researcher.access_token)
                    .await;
                assert_eq!(res.status(), 200, "{query}");
                let body: Value = res.json().await.unwrap();
                for row in body["rows"].as_array().unwrap() {
                    let group = &row["group"];
                    for (dim, p_value) in [
                        ("sex", "intersex"),
                        ("age_band", "90+"),
                        ("indication", "ocd"),
                        ("route", "intranasal"),
                    ] {
                        assert_ne!(group[dim], p_value, "P's key was released: {group}");
                    }
                }
                assert!(body["withheld_groups"].is_u64(), "{body}");
            }
        }
    }
);

api_test!(
    repeating_a_query_returns_the_same_release_and_spends_nothing,
    |app| async move {
        let admin = app.sign_in_admin().await;
        cohort(&app, &admin).await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let first = outcomes(&app, &researcher, "group_by=sex").await;
        let spent = first["privacy"]["epsilon_spent"].as_f64().unwrap();
        assert!(
            (spent - app.settings.research.epsilon_per_query).abs() < 1e-5,
            "{}",
            first["privacy"]
        );
        assert_eq!(first["privacy"]["repeated"], false);
        for _ in 0..10 {
            // The same canonical query, its parameters in another order and spelling.
            let again = outcomes(&app, &researcher, "group_by=sex&wear_off_days=7").await;
            assert_eq!(
                again["rows"], first["rows"],
                "the same release: nothing to average"
            );
            assert_eq!(again["privacy"]["epsilon_spent"], 0.0);
            assert_eq!(again["privacy"]["repeated"], true);
        }
        let budget: Value = app
            .get_as("/v1/research/budget", &researcher.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(budget["queries"], 1);
        assert!(
            (budget["epsilon_spent"].as_f64().unwrap() - spent).abs() < 1e-5,
            "{budget}"
        );
        assert_eq!(budget["tier"], "aggregate");
    }
);

api_test!(
    a_query_that_would_overspend_is_refused_with_what_is_left,
    overrides = &[
        ("KO_RESEARCH_EPSILON_BUDGET", "13"),
        ("KO_RESEARCH_EPSILON_PER_QUERY", "6")
    ],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        for query in ["group_by=sex", "group_by=route"] {
            outcomes(&app, &researcher, query).await;
        }
        let res = app
            .get_as(
                "/v1/research/outcomes?group_by=phase",
                &researcher.access_token,
            )
            .await;
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], "/problems/privacy-budget");
        assert!(
            (body["epsilon_remaining"].as_f64().unwrap() - 1.0).abs() < 1e-4,
            "{body}"
        );
        assert_eq!(body["epsilon_needed"], 6.0);
        assert!(body["renews_at"].as_str().is_some());
        // A query answered before is still answered: it costs nothing.
        assert_eq!(
            app.get_as(
                "/v1/research/outcomes?group_by=sex",
                &researcher.access_token
            )
            .await
            .status(),
            200
        );
        // An administrator sees the spending.
        let spending: Value = app
            .get_as("/v1/research-budgets", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        let mine = spending
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["researcher_id"] == researcher.user_id.as_str())
            .unwrap();
        assert_eq!(mine["queries"], 2);
    }
);
