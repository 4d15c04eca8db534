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
