//! Sign-in, refresh rotation and reuse detection, sign-out, password change, disabled
//! accounts, the throttle and the sameness of failed sign-ins (issue: identity and access).

use serde_json::json;

use crate::api_test;
use crate::helpers::{problem, TestApp, PASSWORD};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/v1/auth/refresh", None, &json!({"refresh_token": token}))
        .await
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let admin = app.sign_in_admin().await;
    let page: serde_json::Value = app
        .get_as("/v1/audit-events?limit=500", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

api_test!(
    sign_in_returns_a_bearer_pair_and_me_describes_the_caller,
    |app| async move {
        let res = app.login("ADMIN@clinic.example ", PASSWORD).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        let me: serde_json::Value = app
            .get_as("/v1/me", body["access_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], "admin@clinic.example");
        assert_eq!(me["role"], "admin");
        assert_eq!(me["clinic_id"], serde_json::Value::Null);
    }
);

api_test!(
    refresh_rotates_and_a_reused_token_revokes_its_family,
    |app| async move {
        let session = app.sign_in_admin().await;
        let res = refresh(&app, &session.refresh_token).await;
        assert_eq!(res.status(), 200);
        let second: serde_json::Value = res.json().await.unwrap();
        let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second_refresh, session.refresh_token);
        assert_eq!(
            app.get_as("/v1/me", second["access_token"].as_str().unwrap())
                .await
                .status(),
            200
        );

        // The first token is spent: presenting it again is a replay.
        let (status, _, body) = problem(refresh(&app, &session.refresh_token).await).await;
        assert_eq!(status, 401);
        assert_eq!(body["type"], "/problems/unauthorized");
        // ...and the replay revoked the whole family, including the legitimate newer token.
        assert_eq!(refresh(&app, &second_refresh).await.status(), 401);
        assert!(audit_actions(&app)
            .await
            .contains(&"refresh_token_reused".to_owned()));

        // Another sign-in is a new family and unaffected.
        let fresh = app.sign_in_admin().await;
        assert_eq!(refresh(&app, &fresh.refresh_token).await.status(), 200);
    }
);

api_test!(logout_revokes_the_family, |app| async move {
    let session = app.sign_in_admin().await;
    let res = app
        .post(
            "/v1/auth/logout",
            Some(&session.access_token),
            &json!({"refresh_token": session.refresh_token}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(refresh(&app, &session.refresh_token).await.status(), 401);
    assert!(audit_actions(&app).await.contains(&"logout".to_owned()));
});

api_test!(
    a_password_change_revokes_every_session_of_the_user,
    |app| async move {
        let one = app.sign_in_admin().await;
        let two = app.sign_in_admin().await;
        let new_password = "tiny grey heron wades";
        let res = app
            .post(
                "/v1/me/password",
                Some(&one.access_token),
                &json!({"current_password": PASSWORD, "new_password": new_password}),
            )
            .await;
        assert_eq!(res.status(), 204);
        assert_eq!(refresh(&app, &one.refresh_token).await.status(), 401);
        assert_eq!(refresh(&app, &two.refresh_token).await.status(), 401);
        assert_eq!(app.login(&one.email, PASSWORD).await.status(), 401);
        assert_eq!(app.login(&one.email, new_password).await.status(), 200);
    }
);

api_test!(
    a_password_change_needs_the_current_password_and_a_good_new_one,
    |app| async move {
        let session = app.sign_in_admin().await;
        let cases = [
            (
                json!({"current_password": "wrong wrong wrong", "new_password": "tiny grey heron wades"}),
                "current_password",
            ),
            (
                json!({"current_password": PASSWORD, "new_password": "short"}),
                "new_password",
            ),
            (
                json!({"current_password": PASSWORD, "new_password": "password1234"}),
                "new_password",
            ),
        ];
        for (body, field) in cases {
            let (status, _, problem) = problem(
                app.post("/v1/me/password", Some(&session.access_token), &body)
                    .await,
            )
            .await;
            assert_eq!(status, 422, "{body}");
            assert_eq!(problem["errors"][0]["field"], field);
        }
        assert_eq!(
            refresh(&app, &session.refresh_token).await.status(),
            200,
            "nothing changed"
        );
    }
);

api_test!(a_disabled_account_loses_access_at_once, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.create_clinic(&admin, "Harbour").await;
    let clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
    assert_eq!(
        app.get_as("/v1/me", &clinician.access_token).await.status(),
        200
    );

    let res = app
        .patch(
            &format!("/v1/users/{}", clinician.user_id),
            &admin.access_token,
            None,
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get_as("/v1/me", &clinician.access_token).await.status(),
        401,
        "the access token stops working"
    );
    assert_eq!(
        refresh(&app, &clinician.refresh_token).await.status(),
        401,
        "refresh tokens are revoked"
    );
    assert_eq!(
        app.login(&clinician.email, PASSWORD).await.status(),
        401,
        "and it cannot sign in"
    );
});

api_test!(
    an_unknown_email_and_a_wrong_password_get_the_same_answer,
    |app| async move {
        let (unknown_status, unknown_type, unknown) = problem(
            app.login("nobody@clinic.example", "lantern orbit kettle")
                .await,
        )
        .await;
        let (wrong_status, wrong_type, wrong) =
            problem(app.login(&app.admin.email, "lantern orbit kettlf").await).await;
        assert_eq!(unknown_status, 401);
        assert_eq!((unknown_status, unknown_type), (wrong_status, wrong_type));
        assert_eq!(unknown, wrong, "identical bodies");
    }
);

api_test!(
    five_failures_throttle_the_account_even_for_the_right_password,
    |app| async move {
        for _ in 0..5 {
            assert_eq!(
                app.login(&app.admin.email, "not the password at all")
                    .await
                    .status(),
                401
            );
        }
        let res = app.login(&app.admin.email, PASSWORD).await;
        assert_eq!(res.status(), 429);
        let retry_after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry_after), "{retry_after}");
        let (_, content_type, body) = problem(res).await;
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 429);
        let failures = audit_actions_after_wait(&app).await;
        assert_eq!(failures, 5, "every failed sign-in is audited");
    }
);

/// Counts `login_failed` events without signing in as the throttled admin.
async fn audit_actions_after_wait(app: &TestApp) -> usize {
    let db = app.database();
    db.run(|conn| {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let c: Count = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'login_failed'",
        )
        .get_result(conn)?;
        Ok::<_, ketamine_outcomes::store::StoreError>(c.n as usize)
    })
    .await
    .unwrap()
}

api_test!(
    one_persons_typos_do_not_lock_out_colleagues_at_the_same_address,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let colleague = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        for _ in 0..6 {
            app.login(&admin.email, "not the password at all").await;
        }
        assert_eq!(app.login(&admin.email, PASSWORD).await.status(), 429);
        assert_eq!(app.login(&colleague.email, PASSWORD).await.status(), 200);
    }
);

api_test!(
    the_address_limit_engages_across_accounts,
    overrides = &[("KO_LOGIN_ADDRESS_LIMIT", "10")],
    |app| async move {
        for i in 0..10 {
            let res = app
                .login(
                    &format!("guess{i}@clinic.example"),
                    "not the password at all",
                )
                .await;
            assert_eq!(res.status(), 401);
        }
        let res = app.login(&app.admin.email, PASSWORD).await;
        assert_eq!(
            res.status(),
            429,
            "the address is throttled, whatever the account"
        );
        assert!(res.headers().contains_key("retry-after"));
    }
);

api_test!(
    two_instances_share_one_throttle_and_one_token_state,
    |app| async move {
        let other = app.second_instance().await;
        for i in 0..5 {
            let instance = if i % 2 == 0 { &app } else { &other };
            assert_eq!(
                instance
                    .login(&app.admin.email, "not the password at all")
                    .await
                    .status(),
                401
            );
        }
        assert_eq!(app.login(&app.admin.email, PASSWORD).await.status(), 429);
        assert_eq!(other.login(&app.admin.email, PASSWORD).await.status(), 429);
    }
);

api_test!(
    a_refresh_token_spent_on_one_instance_is_refused_on_the_other,
    |app| async move {
        let other = app.second_instance().await;
        let session = app.sign_in_admin().await;
        assert_eq!(refresh(&app, &session.refresh_token).await.status(), 200);
        assert_eq!(refresh(&other, &session.refresh_token).await.status(), 401);
    }
);

api_test!(
    concurrent_refreshes_of_one_token_succeed_at_most_once,
    |app| async move {
        let other = app.second_instance().await;
        let session = app.sign_in_admin().await;
        let (a, b) = tokio::join!(
            refresh(&app, &session.refresh_token),
            refresh(&other, &session.refresh_token)
        );
        let successes = [a.status(), b.status()]
            .iter()
            .filter(|s| s.as_u16() == 200)
            .count();
        assert!(successes <= 1, "a refresh token is single use");
    }
);

async fn login_from(app: &TestApp, forwarded_for: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": "nobody@clinic.example", "password": password}))
        .send()
        .await
        .unwrap()
}

api_test!(
    a_forged_forwarded_for_does_not_escape_the_address_limit,
    overrides = &[("KO_LOGIN_ADDRESS_LIMIT", "10")],
    |app| async move {
        for i in 0..10 {
            login_from(&app, &format!("198.51.100.{i}"), "not the password at all").await;
        }
        assert_eq!(
            login_from(&app, "198.51.100.77", "not the password at all")
                .await
                .status(),
            429,
            "the header is not trusted"
        );
    }
);

api_test!(
    behind_a_trusted_proxy_each_client_has_its_own_address_limit,
    overrides = &[
        ("KO_LOGIN_ADDRESS_LIMIT", "10"),
        ("KO_TRUSTED_PROXIES", "127.0.0.1")
    ],
    |app| async move {
        for _ in 0..10 {
            login_from(&app, "203.0.113.9, 198.51.100.1", "not the password at all").await;
        }
        assert_eq!(
            login_from(&app, "198.51.100.1", "x").await.status(),
            429,
            "that client is throttled"
        );
        assert_eq!(
            app.login(&app.admin.email, PASSWORD).await.status(),
            200,
            "the proxy itself is not"
        );
    }
);
