//! Clinics, accounts and the audit trail, as an administrator uses them.

use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{problem, PASSWORD};

api_test!(
    a_clinic_create_is_idempotent_by_client_id,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let id = uuid::Uuid::new_v4();
        let body =
            json!({"id": id, "name": "Harbour Ketamine Clinic", "crisis_message": "Call 988 now."});
        let first = app
            .post("/v1/clinics", Some(&admin.access_token), &body)
            .await;
        assert_eq!(first.status(), 201);
        let first: serde_json::Value = first.json().await.unwrap();
        let again = app
            .post("/v1/clinics", Some(&admin.access_token), &body)
            .await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);

        let changed = json!({"id": id, "name": "Another name", "crisis_message": "Call 988 now."});
        let (status, _, problem) = problem(
            app.post("/v1/clinics", Some(&admin.access_token), &changed)
                .await,
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(problem["type"], "/problems/conflict");

        let page: serde_json::Value = app
            .get_as("/v1/clinics", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
    }
);

api_test!(clinic_names_are_unique_and_checked, |app| async move {
    let admin = app.sign_in_admin().await;
    app.create_clinic(&admin, "Harbour").await;
    let res = app
        .post(
            "/v1/clinics",
            Some(&admin.access_token),
            &json!({"name": "Harbour"}),
        )
        .await;
    assert_eq!(res.status(), 409);
    let (status, _, body) = problem(
        app.post(
            "/v1/clinics",
            Some(&admin.access_token),
            &json!({"name": "  "}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "name");
});

api_test!(lists_page_with_a_stable_cursor, |app| async move {
    let admin = app.sign_in_admin().await;
    for i in 0..5 {
        app.create_clinic(&admin, &format!("Clinic {i}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/clinics?limit=2".to_owned();
    loop {
        let page: serde_json::Value = app
            .get_as(&path, &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|c| c["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/clinics?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("Clinic {i}")).collect::<Vec<_>>()
    );
});

api_test!(
    accounts_follow_the_role_and_clinic_rules,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let cases = [
            (
                json!({"email": "a@clinic.example", "password": PASSWORD, "role": "clinician"}),
                "clinic_id",
            ),
            (
                json!({"email": "a@clinic.example", "password": PASSWORD, "role": "researcher", "clinic_id": clinic}),
                "clinic_id",
            ),
            (
                json!({"email": "a@clinic.example", "password": PASSWORD, "role": "patient", "clinic_id": clinic}),
                "role",
            ),
            (
                json!({"email": "a@clinic.example", "password": PASSWORD, "role": "clinician", "clinic_id": uuid::Uuid::new_v4()}),
                "clinic_id",
            ),
            (
                json!({"email": "not an email", "password": PASSWORD, "role": "researcher"}),
                "email",
            ),
            (
                json!({"email": "a@clinic.example", "password": "short", "role": "researcher"}),
                "password",
            ),
            (
                json!({"email": "a@clinic.example", "password": "password1234", "role": "researcher"}),
                "password",
            ),
            (
                json!({"email": "a@clinic.example", "password": "x".repeat(129), "role": "researcher"}),
                "password",
            ),
        ];
        for (body, field) in cases {
            let (status, content_type, problem) = problem(
                app.post("/v1/users", Some(&admin.access_token), &body)
                    .await,
            )
            .await;
            assert_eq!(
                (status, content_type.as_str()),
                (422, "application/problem+json"),
                "{body}"
            );
            assert_eq!(problem["errors"][0]["field"], field, "{body}");
        }
        let (_, _, short) = problem(
            app.post(
                "/v1/users",
                Some(&admin.access_token),
                &json!({"email": "a@clinic.example", "password": "short", "role": "researcher"}),
            )
            .await,
        )
        .await;
        assert_eq!(
            short["errors"][0]["message"],
            "must be at least 12 characters"
        );
        let (_, _, common) = problem(app.post("/v1/users", Some(&admin.access_token), &json!({"email": "a@clinic.example", "password": "password1234", "role": "researcher"})).await).await;
        assert!(common["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too common"));

        let users: serde_json::Value = app
            .get_as("/v1/users", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            users["items"].as_array().unwrap().len(),
            1,
            "only the first admin exists"
        );
    }
);

api_test!(
    an_account_create_is_idempotent_and_emails_are_unique,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let id = uuid::Uuid::new_v4();
        let body = json!({"id": id, "email": "r@clinic.example", "password": PASSWORD, "role": "researcher"});
        assert_eq!(
            app.post("/v1/users", Some(&admin.access_token), &body)
                .await
                .status(),
            201
        );
        assert_eq!(
            app.post("/v1/users", Some(&admin.access_token), &body)
                .await
                .status(),
            200
        );
        let other_password = json!({"id": id, "email": "r@clinic.example", "password": "tiny grey heron wades", "role": "researcher"});
        assert_eq!(
            app.post("/v1/users", Some(&admin.access_token), &other_password)
                .await
                .status(),
            409
        );
        let same_email =
            json!({"email": "R@clinic.example", "password": PASSWORD, "role": "researcher"});
        assert_eq!(
            app.post("/v1/users", Some(&admin.access_token), &same_email)
                .await
                .status(),
            409
        );
    }
);

api_test!(an_account_change_honours_if_match, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.create_clinic(&admin, "Harbour").await;
    let other_clinic = app.create_clinic(&admin, "Lighthouse").await;
    let clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
    let path = format!("/v1/users/{}", clinician.user_id);

    let current = app.get_as(&path, &admin.access_token).await;
    assert_eq!(current.headers()["etag"], "\"1\"");
    let res = app
        .patch(
            &path,
            &admin.access_token,
            Some("\"1\""),
            &json!({"clinic_id": other_clinic}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let moved: serde_json::Value = res.json().await.unwrap();
    assert_eq!(moved["clinic_id"], other_clinic.as_str());
    assert_eq!(moved["version"], 2);

    let (status, _, body) = problem(
        app.patch(
            &path,
            &admin.access_token,
            Some("\"1\""),
            &json!({"disabled": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 412);
    assert_eq!(body["type"], "/problems/precondition-failed");
    let unchanged: serde_json::Value = app
        .get_as(&path, &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        unchanged["disabled"], false,
        "a stale change changes nothing"
    );

    // The move applies at once: the token issued for the old clinic is refused everywhere,
    // and the refresh that follows carries the new one.
    assert_eq!(
        app.get_as("/v1/patients?limit=1", &clinician.access_token)
            .await
            .status(),
        401,
        "a token of the old clinic"
    );
    let renewed: serde_json::Value = app
        .post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": clinician.refresh_token}),
        )
        .await
        .json()
        .await
        .unwrap();
    let me: serde_json::Value = app
        .get_as("/v1/me", renewed["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["clinic_id"], other_clinic.as_str());

    let (status, _, body) = problem(
        app.patch(
            &path,
            &admin.access_token,
            None,
            &json!({"clinic_id": null}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "a clinician needs a clinic");
    assert_eq!(body["errors"][0]["field"], "clinic_id");
    assert_eq!(
        app.patch(
            &format!("/v1/users/{}", uuid::Uuid::new_v4()),
            &admin.access_token,
            None,
            &json!({"disabled": true})
        )
        .await
        .status(),
        404
    );
});

api_test!(
    every_sign_in_and_admin_action_is_audited_and_the_trail_cannot_be_changed,
    |app| async move {
        let admin = app.sign_in_admin().await;
        app.login(&admin.email, "wrong wrong wrong").await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        app.patch(
            &format!("/v1/users/{}", clinician.user_id),
            &admin.access_token,
            None,
            &json!({"disabled": true}),
        )
        .await;

        let page: serde_json::Value = app
            .get_as("/v1/audit-events?limit=500", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        let events = page["items"].as_array().unwrap();
        let actions: Vec<&str> = events
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "user_created",
                "login_succeeded",
                "login_failed",
                "clinic_created",
                "user_created",
                "login_succeeded",
                "user_updated"
            ]
        );
        let created = events
            .iter()
            .find(|e| e["action"] == "clinic_created")
            .unwrap();
        assert_eq!(created["actor_id"], admin.user_id.as_str());
        assert_eq!(created["actor_role"], "admin");
        assert_eq!(created["resource_id"], clinic.as_str());
        assert_eq!(created["client_address"], "127.0.0.1");
        assert!(!created["request_id"].as_str().unwrap().is_empty());

        let by_actor: serde_json::Value = app
            .get_as(
                &format!(
                    "/v1/audit-events?actor_id={}&action=user_updated",
                    admin.user_id
                ),
                &admin.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(by_actor["items"].as_array().unwrap().len(), 1);

        let id = created["id"].as_str().unwrap();
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::PATCH,
            reqwest::Method::DELETE,
        ] {
            let res = app
                .client
                .request(method.clone(), app.url(&format!("/v1/audit-events/{id}")))
                .bearer_auth(&admin.access_token)
                .json(&json!({"action": "nothing"}))
                .send()
                .await
                .unwrap();
            assert!(
                matches!(res.status().as_u16(), 404 | 405),
                "{method} {}",
                res.status()
            );
        }
        let db = app.database();
        let tampered = db
            .run(|conn| {
                use diesel::RunQueryDsl;
                diesel::sql_query("UPDATE audit_events SET action = 'nothing'").execute(conn)?;
                Ok::<_, ketamine_outcomes::store::StoreError>(())
            })
            .await;
        assert!(
            tampered.is_err(),
            "the database refuses to change an audit event"
        );
        let deleted = db
            .run(|conn| {
                use diesel::RunQueryDsl;
                diesel::sql_query("DELETE FROM audit_events").execute(conn)?;
                Ok::<_, ketamine_outcomes::store::StoreError>(())
            })
            .await;
        assert!(
            deleted.is_err(),
            "the database refuses to delete an audit event"
        );
    }
);

api_test!(
    identical_creates_racing_each_other_land_once_whatever_else_is_unique,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        // A clinic's name and a patient's external reference are unique besides the id: the
        // retries of one create must still replay, not meet those keys.
        let creates = [
            (
                "/v1/clinics".to_owned(),
                admin.access_token.clone(),
                json!({"id": uuid::Uuid::new_v4(), "name": "Lighthouse"}),
            ),
            (
                "/v1/patients".to_owned(),
                clinic.clinician.access_token.clone(),
                json!({"id": uuid::Uuid::new_v4(), "external_ref": "MRN-7", "birth_year": 1975, "sex": "male", "indications": ["major_depression"]}),
            ),
        ];
        for (path, token, body) in creates {
            for round in 0..5 {
                let mut body = body.clone();
                body["id"] = json!(uuid::Uuid::new_v4());
                if let Some(name) = body.get("name").and_then(Value::as_str) {
                    body["name"] = json!(format!("{name} {round}"));
                }
                if let Some(reference) = body.get("external_ref").and_then(Value::as_str) {
                    body["external_ref"] = json!(format!("{reference}-{round}"));
                }
                let sends = (0..8).map(|_| {
                    let (client, url, token, body) = (
                        app.client.clone(),
                        app.url(&path),
                        token.clone(),
                        body.clone(),
                    );
                    tokio::spawn(async move {
                        let res = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&body)
                            .send()
                            .await;
                        let res = res.unwrap();
                        (res.status().as_u16(), res.text().await.unwrap())
                    })
                });
                let answers: Vec<(u16, String)> = futures_util::future::join_all(sends)
                    .await
                    .into_iter()
                    .map(Result::unwrap)
                    .collect();
                let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
                let refused: Vec<&String> = answers
                    .iter()
                    .filter(|(s, _)| !matches!(s, 200 | 201))
                    .map(|(_, body)| body)
                    .collect();
                assert!(
                    refused.is_empty(),
                    "{path} round {round}: {statuses:?} {refused:?}"
                );
                let created = statuses.iter().filter(|s| **s == 201).count();
                assert_eq!(created, 1, "{path} round {round}: {statuses:?}");
            }
        }
    }
);
