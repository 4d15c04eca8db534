//! `ketamine-outcomes demo`: a deterministic synthetic clinic, written through the API itself
//! (in process), so every record passes the same rules, audit and evaluation as real ones.
//!
//! The same seed gives the same clinic relative to the day it is run: patients across the
//! indications on the standard schedule, responders, non-responders and patients whose benefit
//! wears off within days, side effects that resolve and some that persist, every flag kind,
//! and mixed research consent. Beside it, a research cohort: a few hundred consenting
//! patients over three clinics on the standard induction, so that a researcher's first
//! aggregate query has groups large enough to release.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, App};
use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::accounts;
use crate::config::Settings;
use crate::domain::instrument::Instrument;
use crate::domain::patient::Indication;
use crate::domain::schedule::INDUCTION_DAY_OFFSETS;
use crate::startup::{self, SharedState, StartupError};
use crate::sweep;

/// How a synthetic patient's scores behave after each infusion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Course {
    /// Improves and stays improved.
    Responder,
    /// Improves for a few days, then loses it before the next infusion.
    WearsOff,
    /// Barely moves.
    NonResponder,
}

/// One sign-in the demo prints.
pub struct SignIn {
    pub role: &'static str,
    pub email: String,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Account(#[from] accounts::AccountError),
    #[error("the demo clinic could not be written: {method} {path} answered {status}: {body}")]
    Refused {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
}

const PATIENTS: usize = 40;
/// Consenting patients of the research cohort, by default.
pub const COHORT: usize = 300;
const SEXES: [&str; 6] = ["female", "male", "female", "male", "intersex", "unknown"];
const CHARGES_CENTS: [i64; 3] = [35_000, 40_000, 45_000];
const SEDATION: [&str; 4] = ["none", "mild", "mild", "moderate"];
const WORDS: [&str; 24] = [
    "harbour", "lantern", "orbit", "kettle", "meadow", "copper", "violet", "tundra", "pepper",
    "glacier", "saffron", "walnut", "cobalt", "prairie", "juniper", "falcon", "marble", "thistle",
    "ember", "willow", "quartz", "heron", "lagoon", "cinder",
];

fn passphrase(rng: &mut StdRng) -> String {
    (0..4)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
        + &format!(" {}", rng.gen_range(10..99))
}

/// Fills the database and returns one sign-in per role.
pub fn run(settings: &Settings, seed: u64, cohort: usize) -> Result<Vec<SignIn>, DemoError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let db = startup::open_database(settings, &settings.database_url)?;
    db.migrate().map_err(StartupError::from)?;
    let admin = SignIn {
        role: "admin",
        email: format!("admin.{seed}@demo.example"),
        password: passphrase(&mut rng),
    };
    accounts::create_staff_account(&db, settings, &admin.email, "admin", None, &admin.password)?;
    let (state, audit) = SharedState::new(db.clone(), settings)?;
    let clinical = settings.clinical;
    actix_web::rt::System::new().block_on(async move {
        let audit = audit.start();
        let filled: Result<Vec<SignIn>, DemoError> = async {
        let app = test::init_service(App::new().configure(|cfg| state.configure(cfg))).await;
        let client = Client { app: &app };
        let mut sign_ins = vec![];
        let admin_token = client.sign_in(&admin.email, &admin.password).await?;
        let clinic = client.send(Method::POST, "/v1/clinics", &admin_token, json!({"name": format!("Demo Ketamine Clinic {seed}"),
            "crisis_message": "If you are thinking about harming yourself, call 988 (Suicide & Crisis Lifeline) or 911 now, or the clinic's 24-hour line."})).await?;
        let clinic_id = clinic["id"].as_str().unwrap_or_default().to_owned();
        let staff = |role: &'static str, rng: &mut StdRng| SignIn { role, email: format!("{role}.{seed}@demo.example"), password: passphrase(rng) };
        let clinician = staff("clinician", &mut rng);
        let researcher = staff("researcher", &mut rng);
        client.send(Method::POST, "/v1/users", &admin_token, json!({"email": clinician.email, "password": clinician.password, "role": "clinician", "clinic_id": clinic_id})).await?;
        client.send(Method::POST, "/v1/users", &admin_token, json!({"email": researcher.email, "password": researcher.password, "role": "researcher"})).await?;
        let token = client.sign_in(&clinician.email, &clinician.password).await?;

        let today = Utc::now().duration_trunc(Duration::days(1)).unwrap_or_else(|_| Utc::now());
        let mut first_patient = None;
        for i in 0..PATIENTS {
            let patient = synthesize(&client, &token, &mut rng, i, today).await?;
            first_patient.get_or_insert(patient);
        }
        durability_patterns(&client, &token, today).await?;
        research_cohort(&client, (&admin_token, &token), &mut rng, seed, cohort, today).await?;
        let patient = first_patient.unwrap_or_default();
        let invite = client.send(Method::POST, &format!("/v1/patients/{patient}/invites"), &token, Value::Null).await?;
        let phone = SignIn { role: "patient", email: format!("patient.{seed}@demo.example"), password: passphrase(&mut rng) };
        client.send(Method::POST, "/v1/auth/register", "", json!({"invite_code": invite["invite_code"], "email": phone.email, "password": phone.password})).await?;
        // The flags that time has raised are on the worklist before anyone signs in — or, when
        // a server on the same database is sweeping right now, within its sweep interval.
        if sweep::once(&db, clinical).await.map_err(StartupError::from)?.is_none() {
            tracing::info!("a running server is sweeping: its next sweep raises the demo's time flags");
        }
        sign_ins.extend([admin, clinician, researcher, phone]);
        Ok(sign_ins)
        }
        .await;
        audit.finish().await;
        filled
    })
}

/// How long each of six infusions lasted, in days, for the three patients whose personal
/// durability the demo shows (domain.md §6a): lengthening, shortening and flat.
pub const DURABILITY_PATTERNS: [(&str, [i64; 6]); 3] = [
    ("DEMO-LENGTHENS", [4, 6, 8, 10, 12, 14]),
    ("DEMO-SHORTENS", [14, 12, 10, 8, 6, 4]),
    ("DEMO-FLAT", [9, 9, 9, 9, 9, 9]),
];

/// Three patients on a custom course of six infusions 16 days apart, the last 10 days ago,
/// each lasting as [`DURABILITY_PATTERNS`] says (a PHQ-9 of 20 the day before, 8 the day
/// after, 15 — half the gain lost — when it wears off, or 9, still better, 8 days on when that
/// has not come yet), and one more infusion planned for tomorrow: only the shortening
/// patient's benefit is expected to have faded days before it (an expected gap).
async fn durability_patterns<S, B>(
    client: &Client<'_, S>,
    token: &str,
    today: DateTime<Utc>,
) -> Result<(), DemoError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let phq9 = |total: i32| {
        let mut items = answers(8, 3, total);
        items.push(0);
        items
    };
    for (reference, lasted) in DURABILITY_PATTERNS {
        let patient = client
            .send(Method::POST, "/v1/patients", token, json!({"external_ref": reference, "birth_year": 1979,
                "sex": "female", "indications": [Indication::TreatmentResistantDepression], "research_consent": false}))
            .await?;
        let patient = patient["id"].as_str().unwrap_or_default().to_owned();
        let first = today - Duration::days(10 + 16 * 5) + Duration::hours(9);
        let infusions: Vec<DateTime<Utc>> =
            (0..6).map(|k| first + Duration::days(16 * k)).collect();
        let mut planned: Vec<String> = infusions
            .iter()
            .map(|t| t.date_naive().to_string())
            .collect();
        planned.push((today + Duration::days(1)).date_naive().to_string());
        let course = client
            .send(
                Method::POST,
                &format!("/v1/patients/{patient}/courses"),
                token,
                json!({
                "indication": Indication::TreatmentResistantDepression, "protocol": "custom",
                "start_date": planned[0], "planned_dates": planned}),
            )
            .await?;
        let assessments = format!("/v1/patients/{patient}/assessments");
        let score = |at: DateTime<Utc>, total| json!({"instrument": "phq9", "taken_at": at.to_rfc3339(), "items": phq9(total)});
        for (at, days) in infusions.iter().zip(lasted) {
            client
                .send(
                    Method::POST,
                    &assessments,
                    token,
                    score(*at - Duration::days(1), 20),
                )
                .await?;
            client
                .send(
                    Method::POST,
                    &format!("/v1/patients/{patient}/sessions"),
                    token,
                    json!({
                    "course_id": course["id"], "route": "iv", "started_at": at.to_rfc3339(),
                    "dose_mg_per_kg": 0.5, "weight_kg": 68, "charge_cents": 40_000}),
                )
                .await?;
            client
                .send(
                    Method::POST,
                    &assessments,
                    token,
                    score(*at + Duration::days(1), 8),
                )
                .await?;
            let wears_off = *at + Duration::days(days);
            let (at, total) = if wears_off < today {
                (wears_off, 15)
            } else {
                (*at + Duration::days(8), 9)
            };
            client
                .send(Method::POST, &assessments, token, score(at, total))
                .await?;
        }
    }
    Ok(())
}

/// The research cohort: `count` consenting patients spread over the demo clinic and two more,
/// each with one course of the standard induction, a baseline, and scores the day after and
/// the day before each next infusion.
async fn research_cohort<S, B>(
    client: &Client<'_, S>,
    (admin_token, demo_token): (&str, &str),
    rng: &mut StdRng,
    seed: u64,
    count: usize,
    today: DateTime<Utc>,
) -> Result<(), DemoError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    if count == 0 {
        return Ok(());
    }
    let mut tokens = vec![demo_token.to_owned()];
    for name in ["Riverside", "Northgate"] {
        let clinic = client
            .send(
                Method::POST,
                "/v1/clinics",
                admin_token,
                json!({"name": format!("{name} Ketamine Clinic {seed}")}),
            )
            .await?;
        let email = format!("clinician.{}.{seed}@demo.example", name.to_lowercase());
        let password = passphrase(rng);
        client.send(Method::POST, "/v1/users", admin_token, json!({"email": email, "password": password, "role": "clinician", "clinic_id": clinic["id"]})).await?;
        tokens.push(client.sign_in(&email, &password).await?);
    }
    let indications = [
        Indication::TreatmentResistantDepression,
        Indication::MajorDepression,
        Indication::Anxiety,
        Indication::Ptsd,
    ];
    for i in 0..count {
        let token = &tokens[i % tokens.len()];
        let indication = indications[rng.gen_range(0..indications.len())];
        let patient = client
            .send(
                Method::POST,
                "/v1/patients",
                token,
                json!({
                    "birth_year": rng.gen_range(1950..2004),
                    "sex": if rng.gen_bool(0.5) { "female" } else { "male" },
                    "indications": [indication],
                    "research_consent": true,
                }),
            )
            .await?;
        let patient = patient["id"].as_str().unwrap_or_default().to_owned();
        let start = today - Duration::days(rng.gen_range(35..120));
        client
            .send(
                Method::POST,
                &format!("/v1/patients/{patient}/courses"),
                token,
                json!({"indication": indication, "start_date": start.date_naive()}),
            )
            .await?;
        let def = indication.default_instrument().definition();
        let top = def.total_max();
        let score = |at: DateTime<Utc>, total: i32| json!({"instrument": def.instrument, "taken_at": at.to_rfc3339(), "items": answers(def.items, def.item_max, total.clamp(0, top))});
        let assessments = format!("/v1/patients/{patient}/assessments");
        let baseline = (f64::from(top) * rng.gen_range(0.6..0.8)).round() as i32;
        client
            .send(
                Method::POST,
                &assessments,
                token,
                score(start - Duration::hours(14), baseline),
            )
            .await?;
        let route = if rng.gen_bool(0.3) {
            "intranasal"
        } else {
            "iv"
        };
        let (dose, benefit, lasts) = (
            if route == "iv" { 0.5 } else { 1.0 },
            rng.gen_bool(0.65),
            rng.gen_bool(0.6),
        );
        let days = INDUCTION_DAY_OFFSETS;
        for (n, day) in days.iter().enumerate() {
            let at = start + Duration::days(*day) + Duration::hours(9);
            client
                .send(
                    Method::POST,
                    &format!("/v1/patients/{patient}/sessions"),
                    token,
                    json!({
                        "route": route, "started_at": at.to_rfc3339(), "dose_mg_per_kg": dose,
                        "weight_kg": f64::from(rng.gen_range(520..1100)) / 10.0,
                        "charge_cents": CHARGES_CENTS[rng.gen_range(0..CHARGES_CENTS.len())],
                    }),
                )
                .await?;
            let next = days.get(n + 1).map_or(at + Duration::days(6), |d| {
                start + Duration::days(*d) + Duration::hours(9)
            });
            let low = if benefit {
                baseline / 2 - rng.gen_range(0..3)
            } else {
                baseline - rng.gen_range(0..3)
            };
            let later = if lasts {
                low + rng.gen_range(0..2)
            } else {
                baseline - rng.gen_range(0..2)
            };
            for (when, total) in [
                (at + Duration::days(1), low),
                (next - Duration::hours(2), later),
            ] {
                if when < today {
                    client
                        .send(Method::POST, &assessments, token, score(when, total))
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// An in-process client of the API.
struct Client<'a, S> {
    app: &'a S,
}

impl<S, B> Client<'_, S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Result<Value, DemoError> {
        let mut req = test::TestRequest::default()
            .method(method.clone())
            .uri(path)
            .peer_addr(([127, 0, 0, 1], 0).into());
        if !token.is_empty() {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        if !body.is_null() {
            req = req.set_json(body);
        }
        let res = test::call_service(self.app, req.to_request()).await;
        let status = res.status();
        let bytes = test::read_body(res).await;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes).into_owned();
            return Err(DemoError::Refused {
                method,
                path: path.to_owned(),
                status,
                body,
            });
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn sign_in(&self, email: &str, password: &str) -> Result<String, DemoError> {
        let tokens = self
            .send(
                Method::POST,
                "/v1/auth/login",
                "",
                json!({"email": email, "password": password}),
            )
            .await?;
        Ok(tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }
}

/// Answers of `items` items, each at most `max`, adding up to `total`.
fn answers(items: usize, max: i32, total: i32) -> Vec<i32> {
    let mut left = total;
    (0..items)
        .map(|_| {
            let v = left.min(max);
            left -= v;
            v
        })
        .collect()
}

/// One patient's history, from their first infusion up to today. The index decides the
/// patient's kind, so that every flag appears at least once whatever the seed.
async fn synthesize<S, B>(
    client: &Client<'_, S>,
    token: &str,
    rng: &mut StdRng,
    i: usize,
    today: DateTime<Utc>,
) -> Result<String, DemoError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let indications = [
        Indication::TreatmentResistantDepression,
        Indication::MajorDepression,
        Indication::BipolarDepression,
        Indication::Anxiety,
        Indication::Ptsd,
        Indication::Ocd,
        Indication::Fibromyalgia,
        Indication::ComplexRegionalPainSyndrome,
    ];
    let indication = indications[i % indications.len()];
    let kind = [Course::Responder, Course::WearsOff, Course::NonResponder][i % 3];
    let risk_factors = match i {
        4 => json!([{"factor": "psychosis", "note": "single episode, 2015"}]),
        7 => json!([{"factor": "hypertension", "note": "treated"}]),
        _ => json!([]),
    };
    let patient = client
        .send(
            Method::POST,
            "/v1/patients",
            token,
            json!({
                "external_ref": format!("DEMO-{:04}", i + 1),
                "birth_year": rng.gen_range(1950..2004),
                "sex": SEXES[rng.gen_range(0..SEXES.len())],
                "indications": [indication],
                "risk_factors": risk_factors,
                "research_consent": rng.gen_bool(0.75),
            }),
        )
        .await?;
    let patient_id = patient["id"].as_str().unwrap_or_default().to_owned();
    let start = today - Duration::days(rng.gen_range(12..150));
    let skips_slots = i == 5;
    client
        .send(
            Method::POST,
            &format!("/v1/patients/{patient_id}/courses"),
            token,
            json!({"indication": indication, "start_date": start.date_naive()}),
        )
        .await?;
    let instrument = indication.default_instrument();
    let def = instrument.definition();
    let (items, item_max, top) = (def.items, def.item_max, def.total_max());
    let baseline = (f64::from(top) * rng.gen_range(0.62..0.8)).round() as i32;
    let score = |at: DateTime<Utc>, total: i32, item9: bool| {
        let total = total.clamp(0, top);
        let a = if instrument == Instrument::Phq9 {
            // Item 9 (thoughts of self-harm) stays 0 unless this score is meant to raise the flag.
            let item9 = i32::from(item9);
            let mut a = answers(8, item_max, total - item9);
            a.push(item9);
            a
        } else {
            answers(items, item_max, total)
        };
        json!({"instrument": instrument, "taken_at": at.to_rfc3339(), "items": a})
    };
    let assessments = format!("/v1/patients/{patient_id}/assessments");
    let assess = |body: Value| client.send(Method::POST, &assessments, token, body);
    let hour = |h: i64| Duration::hours(h);
    assess(score(start - hour(14), baseline, false)).await?;

    let mut days: Vec<i64> = INDUCTION_DAY_OFFSETS.to_vec();
    let interval = if kind == Course::WearsOff { 18 } else { 28 };
    while days.last().copied().unwrap_or(0) + interval < (today - start).num_days() {
        days.push(days.last().copied().unwrap_or(0) + interval);
    }
    if skips_slots {
        days.retain(|d| *d != 2 && *d != 4);
    }
    let starts: Vec<DateTime<Utc>> = days
        .iter()
        .map(|d| start + Duration::days(*d) + hour(9))
        .filter(|t| *t < today)
        .collect();
    for (n, at) in starts.iter().enumerate() {
        let special = |which: usize| i == which && n == 1;
        let pre = if special(8) {
            json!({"systolic": 168, "diastolic": 102, "heart_rate": 88, "spo2": 98})
        } else {
            json!({"systolic": rng.gen_range(112..148), "diastolic": rng.gen_range(68..92), "heart_rate": rng.gen_range(60..92), "spo2": rng.gen_range(95..100)})
        };
        let peak_systolic = if special(9) {
            186
        } else {
            rng.gen_range(125..170)
        };
        let route = if i % 11 == 10 {
            "intranasal"
        } else if i % 7 == 6 {
            "im"
        } else {
            "iv"
        };
        let dose = match route {
            "intranasal" => 1.0,
            "im" => 0.6,
            _ => [0.5, 0.5, 0.5, 0.75][rng.gen_range(0..4)],
        };
        let session = client
            .send(Method::POST, &format!("/v1/patients/{patient_id}/sessions"), token, json!({
                "route": route,
                "started_at": at.to_rfc3339(),
                "ended_at": (*at + Duration::minutes(40)).to_rfc3339(),
                "dose_mg_per_kg": dose,
                "weight_kg": f64::from(rng.gen_range(520..1100)) / 10.0,
                "charge_cents": CHARGES_CENTS[rng.gen_range(0..CHARGES_CENTS.len())],
                "pre": pre,
                "readings": [{"minutes_after_start": 40, "systolic": peak_systolic, "diastolic": rng.gen_range(80..100), "heart_rate": rng.gen_range(70..110), "spo2": rng.gen_range(94..100)}],
                "post": {"systolic": rng.gen_range(115..150), "diastolic": rng.gen_range(70..92), "heart_rate": rng.gen_range(60..95), "spo2": rng.gen_range(95..100)},
                "monitoring_minutes": 120,
                "sedation": SEDATION[rng.gen_range(0..SEDATION.len())],
            }))
            .await?;
        let session_id = session["id"].as_str().unwrap_or_default().to_owned();
        side_effects(
            client,
            token,
            rng,
            &patient_id,
            &session_id,
            i,
            n,
            *at,
            today,
        )
        .await?;

        // Scores until the next infusion: the course's kind decides the shape.
        let next = starts.get(n + 1).copied().unwrap_or(today);
        let progress = (n as f64 / 6.0).min(1.0);
        let low = match kind {
            Course::Responder => (f64::from(baseline) * (0.55 - 0.3 * progress)) as i32,
            Course::WearsOff => (f64::from(baseline) * 0.35) as i32,
            Course::NonResponder => baseline - rng.gen_range(0..3),
        };
        // One patient's fourth infusion (day 7, the next three days later) goes without a
        // follow-up score, so that the missed-follow-up flag shows whatever the hour the demo
        // is made at.
        let follow_up_days: &[i64] = if i == 2 && n == 3 {
            &[]
        } else {
            &[1, 3, 6, 10, 14]
        };
        for day in follow_up_days {
            let at = *at + Duration::days(*day) - hour(1);
            if at >= next || at >= today {
                break;
            }
            let total = match kind {
                Course::WearsOff if *day >= 3 => baseline - rng.gen_range(0..3),
                Course::NonResponder => baseline - rng.gen_range(0..3),
                _ => low + rng.gen_range(0..3),
            };
            assess(score(at, total, i == 0 && n == 2 && *day == 1)).await?;
        }
        if instrument != Instrument::DailyMood
            && n % 2 == 0
            && at.checked_add_signed(hour(30)).is_some_and(|t| t < today)
        {
            let mood = match kind {
                Course::NonResponder => rng.gen_range(2..5),
                _ => rng.gen_range(5..9),
            };
            assess(json!({"instrument": "daily_mood", "taken_at": (*at + hour(30)).to_rfc3339(), "items": [mood]})).await?;
        }
    }
    Ok(patient_id)
}

/// Side effects of one infusion: the usual transient ones, and, for a few patients, the ones
/// a clinician must see.
#[allow(clippy::too_many_arguments)]
async fn side_effects<S, B>(
    client: &Client<'_, S>,
    token: &str,
    rng: &mut StdRng,
    patient_id: &str,
    session_id: &str,
    i: usize,
    n: usize,
    at: DateTime<Utc>,
    today: DateTime<Utc>,
) -> Result<(), DemoError>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let path = format!("/v1/patients/{patient_id}/side-effects");
    let report = |effect: &str,
                  severity: &str,
                  minutes: i64,
                  resolved_after: Option<i64>,
                  note: Option<&str>| {
        let onset = at + Duration::minutes(minutes);
        let resolved = resolved_after
            .map(|m| onset + Duration::minutes(m))
            .filter(|r| *r < today);
        json!({"session_id": session_id, "effect": effect, "severity": severity, "onset_at": onset.to_rfc3339(),
               "resolved_at": resolved.map(|r| r.to_rfc3339()), "note": note})
    };
    if rng.gen_bool(0.6) {
        let effect = [
            "dissociation",
            "nausea",
            "dizziness",
            "altered_time_perception",
            "headache",
            "blurry_vision",
        ][rng.gen_range(0..6)];
        client
            .send(
                Method::POST,
                &path,
                token,
                report(effect, "mild", 10, Some(rng.gen_range(30..180)), None),
            )
            .await?;
    }
    let special = match (i, n) {
        (10, 1) => Some(report(
            "bladder_symptoms",
            "moderate",
            600,
            None,
            Some("urgency and frequency for two days"),
        )),
        (11, 1) => Some(report(
            "craving",
            "moderate",
            2880,
            None,
            Some("asks for extra sessions"),
        )),
        (12, 1) => Some(report("mania_symptoms", "severe", 1440, Some(4320), None)),
        (13, 0) => Some(report(
            "other",
            "life_threatening",
            25,
            Some(40),
            Some("laryngospasm, resolved with positioning"),
        )),
        (14, 0) => Some(report("nausea", "moderate", 30, None, None)),
        _ => None,
    };
    if let Some(body) = special {
        client.send(Method::POST, &path, token, body).await?;
    }
    Ok(())
}
