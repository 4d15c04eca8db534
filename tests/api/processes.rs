//! Two API processes on one PostgreSQL database (quality.md, Reliability): the sign-in throttle
//! and refresh-token state are shared because they live in the database.

use serde_json::json;

use crate::helpers::{Backend, TestDatabase, PASSWORD};
use crate::process::{clinic_with_patient, create_account, Process, SECRET};

async fn login(client: &reqwest::Client, server: &Process, password: &str) -> reqwest::Response {
    client
        .post(server.url("/v1/auth/login"))
        .json(&json!({"email": "admin@clinic.example", "password": password}))
        .send()
        .await
        .unwrap()
}

/// A fresh PostgreSQL database with its first administrator, and two API processes on it
/// sharing one signing key, as two processes behind a load balancer do.
fn two_processes() -> Option<(TestDatabase, Process, Process)> {
    two_processes_on(Backend::Postgres)
}

/// The same on either engine (two processes on one SQLite file share its locks).
fn two_processes_on(backend: Backend) -> Option<(TestDatabase, Process, Process)> {
    let database = TestDatabase::create(backend)?;
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let (one, two) = (Process::start(&env), Process::start(&env));
    Some((database, one, two))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_throttle_and_refresh_token_state() {
    let Some((_database, one, two)) = two_processes() else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
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
    let Some((_database, one, two)) = two_processes() else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let client = reqwest::Client::new();
    let (doc, patient) = clinic_with_patient(&client, &one).await;
    let post = |server: &Process, path: &str, token: &str, body: serde_json::Value| {
        client
            .post(server.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
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
    // Both processes sweep every second, each raising the missed slots; both read at once.
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

    let missed = |flags: &serde_json::Value| {
        let items = flags["items"].as_array().into_iter().flatten();
        items.filter(|f| f["kind"] == "missed_session").count()
    };
    let ask = || async { read(&one).await.unwrap().json().await.unwrap() };
    let flags: serde_json::Value = crate::helpers::eventually(ask, |f| missed(f) >= 6).await;
    let flags = flags["items"].as_array().unwrap();
    let count = |kind: &str| flags.iter().filter(|f| f["kind"] == kind).count();
    assert_eq!(count("suicidal_ideation"), 1);
    assert_eq!(
        count("missed_session"),
        6,
        "days 0, 2, 4, 7, 10 and 14 of 20, once each"
    );
}

/// Both processes under concurrent load at once: forty assessments, each raising suicidal
/// ideation and each sent through both processes simultaneously, eight pairs at a time, are
/// stored once and flagged once; a refresh token spent through both at once works once and
/// its family is then revoked; a burst of failed sign-ins across both engages one throttle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_load_two_processes_create_once_flag_once_and_spend_a_token_once() {
    use futures_util::StreamExt;
    let Some((_database, one, two)) = two_processes() else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let client = reqwest::Client::new();
    let (doc, patient) = clinic_with_patient(&client, &one).await;

    let path = format!("/v1/patients/{patient}/assessments");
    let send = |server: &Process, body: &serde_json::Value| {
        client
            .post(server.url(&path))
            .bearer_auth(&doc)
            .json(body)
            .send()
    };
    let bodies: Vec<serde_json::Value> = (0..40)
        .map(|_| json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9", "taken_at": chrono::Utc::now().to_rfc3339(), "items": [0, 0, 0, 0, 0, 0, 0, 0, 1]}))
        .collect();
    let (first, second) = (&one, &two);
    let pairs: Vec<(u16, u16)> = futures_util::stream::iter(&bodies)
        .map(|body| async move {
            let (a, b) = tokio::join!(send(first, body), send(second, body));
            (a.unwrap().status().as_u16(), b.unwrap().status().as_u16())
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for pair in &pairs {
        assert!(
            matches!(pair, (201, 200) | (200, 201)),
            "one process creates, the other replays: {pair:?}"
        );
    }
    let stored: serde_json::Value = client
        .get(one.url(&format!("{path}?limit=100")))
        .bearer_auth(&doc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["items"].as_array().unwrap().len(), 40);
    let flags: serde_json::Value = client
        .get(two.url("/v1/flags?kind=suicidal_ideation&limit=100"))
        .bearer_auth(&doc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        flags["items"].as_array().unwrap().len(),
        40,
        "one flag per assessment"
    );

    // One refresh token, spent through both processes at the same moment.
    let tokens: serde_json::Value = login(&client, &one, PASSWORD).await.json().await.unwrap();
    let refresh = json!({"refresh_token": tokens["refresh_token"]});
    let spend = |server: &Process| {
        client
            .post(server.url("/v1/auth/refresh"))
            .json(&refresh)
            .send()
    };
    let (a, b) = tokio::join!(spend(&one), spend(&two));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "the token is spent once");
    let winner = if a.status() == 200 { a } else { b };
    let rotated: serde_json::Value = winner.json().await.unwrap();
    let next = json!({"refresh_token": rotated["refresh_token"]});
    let after_reuse = client
        .post(two.url("/v1/auth/refresh"))
        .json(&next)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after_reuse.status(),
        401,
        "the reuse revoked the whole family"
    );

    // Ten failed sign-ins at once, half through each process, make one throttle.
    let failures = (0..10).map(|i| {
        let server = if i % 2 == 0 { &one } else { &two };
        login(&client, server, "not the password at all")
    });
    for res in futures_util::future::join_all(failures).await {
        assert!(matches!(res.status().as_u16(), 401 | 429));
    }
    assert_eq!(login(&client, &one, PASSWORD).await.status(), 429);
    assert_eq!(login(&client, &two, PASSWORD).await.status(), 429);
}

/// issue 12 (1): forty wrong passwords for one account at once, half through each process,
/// reach the password check at most five times; the rest are told to wait, and so is the
/// right password.
async fn guesses_across_two_processes_verify_at_most_five(backend: Backend) {
    let Some((_database, one, two)) = two_processes_on(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let guesses = (0..40).map(|i| {
        let server = if i % 2 == 0 { &one } else { &two };
        async move {
            // A connection of its own for each guess.
            let res = login(&reqwest::Client::new(), server, "not the password at all").await;
            (
                res.status().as_u16(),
                res.headers().contains_key("retry-after"),
            )
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let verified = answers.iter().filter(|(s, _)| *s == 401).count();
    assert!(
        (1..=5).contains(&verified),
        "{verified} guesses were checked: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| *a == (401, false) || *a == (429, true)),
        "{answers:?}"
    );
    let client = reqwest::Client::new();
    assert_eq!(login(&client, &one, PASSWORD).await.status(), 429);
    assert_eq!(login(&client, &two, PASSWORD).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_across_two_processes_on_postgres_verify_at_most_five() {
    guesses_across_two_processes_verify_at_most_five(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_across_two_processes_on_sqlite_verify_at_most_five() {
    guesses_across_two_processes_verify_at_most_five(Backend::Sqlite).await;
}

/// issue 13: one researcher's privacy budget is one budget across processes: eight distinct
/// aggregate queries sent at once through two processes are answered five times (30.5 of ε,
/// 6 each); the others are refused, and nothing was released for them.
async fn a_budget_holds_across_two_processes(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KO_JWT_SECRET", SECRET),
        ("KO_RESEARCH_EPSILON_BUDGET", "30.5"),
        ("KO_RESEARCH_EPSILON_PER_QUERY", "6"),
    ];
    create_account(&env, "researcher", "rosa@university.example", PASSWORD);
    let (one, two) = (Process::start(&env), Process::start(&env));
    let client = reqwest::Client::new();
    let tokens: serde_json::Value = client
        .post(one.url("/v1/auth/login"))
        .json(&json!({"email": "rosa@university.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let groupings = [
        "sex",
        "route",
        "phase",
        "indication",
        "age_band",
        "dose_band",
        "clinic",
        "sex,route",
    ];
    let queries = groupings.iter().enumerate().map(|(i, g)| {
        let server = if i % 2 == 0 { &one } else { &two };
        let (client, token) = (client.clone(), token.clone());
        async move {
            let res = client
                .get(server.url(&format!("/v1/research/outcomes?group_by={g}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(queries).await;
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(answered, 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 403)),
        "{statuses:?}"
    );
    let budget: serde_json::Value = client
        .get(two.url("/v1/research/budget"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(budget["queries"], 5);
    assert!(
        budget["epsilon_spent"].as_f64().unwrap() <= 30.5,
        "{budget}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_two_processes_on_postgres() {
    a_budget_holds_across_two_processes(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_two_processes_on_sqlite() {
    a_budget_holds_across_two_processes(Backend::Sqlite).await;
}
