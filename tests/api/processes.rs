//! Two API processes on one PostgreSQL database (quality.md, Reliability): the sign-in throttle
//! and refresh-token state are shared because they live in the database.

use serde_json::json;

use crate::helpers::{Backend, TestDatabase, PASSWORD};
use crate::process::{create_account, Process};

const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

async fn login(client: &reqwest::Client, server: &Process, password: &str) -> reqwest::Response {
    client
        .post(server.url("/v1/auth/login"))
        .json(&json!({"email": "admin@clinic.example", "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_throttle_and_refresh_token_state() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let (one, two) = (Process::start(&env), Process::start(&env));
    let client = reqwest::Client::new();

    // A refresh token spent through one process is refused by the other.
    let tokens: serde_json::Value = login(&client, &one, PASSWORD).await.json().await.unwrap();
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let spent = client
        .post(one.url("/v1/auth/refresh"))
        .json(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), 200);
    let replayed = client
        .post(two.url("/v1/auth/refresh"))
        .json(&refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);

    // Failed sign-ins through both add up to one throttle.
    for i in 0..5 {
        let server = if i % 2 == 0 { &one } else { &two };
        assert_eq!(
            login(&client, server, "not the password at all")
                .await
                .status(),
            401
        );
    }
    assert_eq!(login(&client, &one, PASSWORD).await.status(), 429);
    assert_eq!(login(&client, &two, PASSWORD).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_to_raise_the_same_flags_leave_one_each() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let (one, two) = (Process::start(&env), Process::start(&env));
    let client = reqwest::Client::new();
    let token = |res: serde_json::Value| res["access_token"].as_str().unwrap().to_owned();
    let admin = token(login(&client, &one, PASSWORD).await.json().await.unwrap());
    let post = |server: &Process, path: &str, token: &str, body: serde_json::Value| {
        client
            .post(server.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let clinic: serde_json::Value = post(&one, "/v1/clinics", &admin, json!({"name": "Harbour"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = json!({"email": "doc@clinic.example", "password": PASSWORD, "role": "clinician", "clinic_id": clinic["id"]});
    post(&one, "/v1/users", &admin, body).await.unwrap();
    let signed_in: serde_json::Value = client
        .post(one.url("/v1/auth/login"))
        .json(&json!({"email": "doc@clinic.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let doc = token(signed_in);
    let patient: serde_json::Value = post(
        &one,
        "/v1/patients",
        &doc,
        json!({"birth_year": 1980, "sex": "male", "indications": ["major_depression"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let patient = patient["id"].as_str().unwrap().to_owned();
    let start = (chrono::Utc::now() - chrono::Duration::days(20)).date_naive();
    post(
        &one,
        &format!("/v1/patients/{patient}/courses"),
        &doc,
        json!({"indication": "major_depression", "start_date": start}),
    )
    .await
    .unwrap();

    // The same assessment, raising suicidal ideation, through both processes at once.
    let assessment = json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9", "taken_at": chrono::Utc::now().to_rfc3339(), "items": [0, 0, 0, 0, 0, 0, 0, 0, 2]});
    let path = format!("/v1/patients/{patient}/assessments");
    let (a, b) = tokio::join!(
        post(&one, &path, &doc, assessment.clone()),
        post(&two, &path, &doc, assessment)
    );
    assert!(a.unwrap().status().is_success() && b.unwrap().status().is_success());
    // Both processes read the worklist at once, each raising the missed slots.
    let read = |server: &Process| {
        client
            .get(server.url("/v1/flags?limit=500"))
            .bearer_auth(&doc)
            .send()
    };
    let (a, b) = tokio::join!(read(&one), read(&two));
    assert_eq!(
        (a.unwrap().status().as_u16(), b.unwrap().status().as_u16()),
        (200, 200)
    );

    let flags: serde_json::Value = read(&one).await.unwrap().json().await.unwrap();
    let flags = flags["items"].as_array().unwrap();
    let count = |kind: &str| flags.iter().filter(|f| f["kind"] == kind).count();
    assert_eq!(count("suicidal_ideation"), 1);
    assert_eq!(
        count("missed_session"),
        6,
        "days 0, 2, 4, 7, 10 and 14 of 20, once each"
    );
}
