//! Attacks on sign-in and accounts (issue 12, points 1–3 and 7–9), each through real parallel
//! connections against the real server: guesses sent at once, invites guessed, floods, a
//! stolen phone, look-alike emails.

use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{problem, Session, TestApp, PASSWORD};

/// Sends every request on a connection of its own, all at once.
async fn all_at_once(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<(u16, Option<String>)> {
    let url = app.url(path);
    let sends = bodies.into_iter().map(|body| {
        let url = url.clone();
        async move {
            let client = reqwest::Client::new();
            let res = client.post(url).json(&body).send().await.unwrap();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (res.status().as_u16(), retry)
        }
    });
    futures_util::future::join_all(sends).await
}

fn count(answers: &[(u16, Option<String>)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// Every answer other than a checked password is a refusal that says when to come back.
fn refused_with_retry_after(answers: &[(u16, Option<String>)], checked: u16) {
    for (status, retry) in answers {
        if *status == checked {
            continue;
        }
        assert!(
            matches!(status, 429 | 503),
            "a refusal is 429 or 503, not {status}"
        );
        let retry: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
        assert!(retry >= 1, "Retry-After {retry}");
    }
}

/// Password hashes and verifications the app has run, from /metrics.
async fn hashes_run(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("password_hashes_total "))
        .expect("password_hashes_total in /metrics")
        .trim()
        .parse()
        .unwrap()
}

fn wrong_guess(email: &str) -> Value {
    json!({"email": email, "password": "not the password at all"})
}

api_test!(
    forty_guesses_at_once_verify_at_most_five_and_the_rest_wait,
    |app| async move {
        let answers = all_at_once(
            &app,
            "/v1/auth/login",
            vec![wrong_guess(&app.admin.email); 40],
        )
        .await;
        let verified = count(&answers, 401);
        assert!(
            verified <= 5,
            "{verified} guesses reached the password check (limit 5)"
        );
        assert!(verified >= 1, "some guess was checked");
        assert_eq!(count(&answers, 429), 40 - verified, "{answers:?}");
        refused_with_retry_after(&answers, 401);
        // The right password inside the back-off is refused too.
        let res = app.login(&app.admin.email, PASSWORD).await;
        assert_eq!(res.status(), 429);
        assert!(res.headers().contains_key("retry-after"));
    }
);

api_test!(
    a_hundred_guesses_at_once_from_one_address_stay_within_its_limit,
    |app| async move {
        let bodies = (0..100)
            .map(|i| wrong_guess(&format!("guess{i}@clinic.example")))
            .collect();
        let answers = all_at_once(&app, "/v1/auth/login", bodies).await;
        let verified = count(&answers, 401);
        assert!(
            verified <= 50,
            "{verified} guesses were checked (address limit 50)"
        );
        refused_with_retry_after(&answers, 401);
    }
);

api_test!(
    a_wrong_invite_costs_no_hash_and_invite_guessing_is_throttled_per_address,
    overrides = &[("KO_LOGIN_ADDRESS_LIMIT", "10")],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let before = hashes_run(&app).await;
        app.patient_app(&clinic.clinician, &patient).await;
        // Registering hashed the password once, and signing in verified it once.
        assert_eq!(hashes_run(&app).await, before + 2);

        let before = hashes_run(&app).await;
        let guesses = (0..30)
            .map(|i| {
                json!({"invite_code": format!("guessedInviteCode{i:04}"), "email": format!("p{i}@example.org"),
                    "password": "tiny grey heron wades"})
            })
            .collect();
        let answers = all_at_once(&app, "/v1/auth/register", guesses).await;
        let wrong = count(&answers, 422);
        assert!(
            wrong <= 10,
            "{wrong} wrong codes were checked (address limit 10)"
        );
        assert_eq!(
            count(&answers, 429) + count(&answers, 503),
            30 - wrong,
            "{answers:?}"
        );
        refused_with_retry_after(&answers, 422);
        assert_eq!(
            hashes_run(&app).await,
            before,
            "no wrong invite was worth a hash"
        );
    }
);

api_test!(
    a_flood_from_one_address_is_refused_before_it_costs_hashes,
    overrides = &[
        ("KO_HASHES_PER_MINUTE_PER_ADDRESS", "30"),
        ("KO_HASHES_PER_MINUTE_PER_ACCOUNT", "1000000")
    ],
    |app| async move {
        let before = hashes_run(&app).await;
        let right = json!({"email": app.admin.email, "password": PASSWORD});
        let answers = all_at_once(&app, "/v1/auth/login", vec![right; 40]).await;
        let signed_in = count(&answers, 200);
        // 30 a minute, 10 at once: the flood buys ten hashes, not forty.
        assert!(signed_in <= 10, "{signed_in} sign-ins were hashed");
        assert!(signed_in >= 1, "some sign-in was hashed");
        assert_eq!(
            count(&answers, 429) + count(&answers, 503),
            40 - signed_in,
            "{answers:?}"
        );
        refused_with_retry_after(&answers, 200);
        assert_eq!(hashes_run(&app).await - before, signed_in as u64);
    }
);

api_test!(
    an_account_has_a_ceiling_of_its_own,
    overrides = &[
        ("KO_HASHES_PER_MINUTE_PER_ADDRESS", "1000000"),
        ("KO_HASHES_PER_MINUTE_PER_ACCOUNT", "6")
    ],
    |app| async move {
        let right = json!({"email": app.admin.email, "password": PASSWORD});
        let answers = all_at_once(&app, "/v1/auth/login", vec![right; 10]).await;
        assert_eq!(
            count(&answers, 200),
            2,
            "6 a minute, 2 at once: {answers:?}"
        );
        refused_with_retry_after(&answers, 200);
    }
);

/// A patient with an app account: the clinic's clinician, the patient record and the app.
async fn patient_with_app(app: &TestApp) -> (Session, Session, String, Session) {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let phone = app.patient_app(&clinic.clinician, &patient).await;
    (admin, clinic.clinician, patient, phone)
}

async fn refresh(app: &TestApp, session: &Session) -> u16 {
    app.post(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": session.refresh_token}),
    )
    .await
    .status()
    .as_u16()
}

/// The phone is shut out: its access token, its refresh token and its password.
async fn assert_shut_out(app: &TestApp, phone: &Session) {
    assert_eq!(
        app.get_as("/v1/me", &phone.access_token).await.status(),
        401
    );
    assert_eq!(refresh(app, phone).await, 401);
    assert_eq!(app.login(&phone.email, PASSWORD).await.status(), 401);
}

api_test!(
    an_admin_locks_a_stolen_phone_at_once_and_its_role_never_changes,
    |app| async move {
        let (admin, _, patient, phone) = patient_with_app(&app).await;
        let account = format!("/v1/users/{}", phone.user_id);
        let res = app
            .patch(
                &account,
                &admin.access_token,
                None,
                &json!({"disabled": true}),
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_shut_out(&app, &phone).await;

        for change in [
            json!({"role": "researcher"}),
            json!({"role": "clinician"}),
            json!({"clinic_id": null}),
        ] {
            let (status, _, body) = problem(
                app.patch(&account, &admin.access_token, None, &change)
                    .await,
            )
            .await;
            assert_eq!(status, 422, "{change}");
            assert!(
                body["errors"][0]["field"] == "role" || body["errors"][0]["field"] == "clinic_id"
            );
        }
        let stored: Value = app
            .get_as(&account, &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["role"], "patient");

        // Enabled again: a new sign-in works; the stolen tokens stay dead.
        let res = app
            .patch(
                &account,
                &admin.access_token,
                None,
                &json!({"disabled": false}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let fresh = app.sign_in(&phone.email, PASSWORD).await;
        let me: Value = app
            .get_as("/v1/me", &fresh.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["patient_id"], patient.as_str());
        assert_eq!(
            app.get_as("/v1/me", &phone.access_token).await.status(),
            401
        );
        assert_eq!(refresh(&app, &phone).await, 401);
    }
);

api_test!(
    the_patients_clinician_locks_the_app_through_the_patient_record,
    |app| async move {
        let (admin, clinician, patient, phone) = patient_with_app(&app).await;
        let path = format!("/v1/patients/{patient}/account");
        let account: Value = app
            .get_as(&path, &clinician.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(account["id"], phone.user_id.as_str());
        assert_eq!(account["disabled"], false);

        // Nobody else can: another clinic's clinician does not find it, the patient may not.
        let elsewhere = app.clinic(&admin, "Elsewhere").await;
        let off = json!({"disabled": true});
        let res = app
            .patch(&path, &elsewhere.clinician.access_token, None, &off)
            .await;
        assert_eq!(res.status(), 404);
        assert_eq!(
            app.patch(&path, &phone.access_token, None, &off)
                .await
                .status(),
            403
        );
        assert_eq!(
            app.get_as("/v1/me", &phone.access_token).await.status(),
            200
        );

        let res = app
            .patch(&path, &clinician.access_token, Some("\"1\""), &off)
            .await;
        assert_eq!(res.status(), 200);
        let locked: Value = res.json().await.unwrap();
        assert_eq!(locked["disabled"], true);
        assert_shut_out(&app, &phone).await;

        let on = json!({"disabled": false});
        let (status, _, _) = problem(
            app.patch(&path, &clinician.access_token, Some("\"1\""), &on)
                .await,
        )
        .await;
        assert_eq!(status, 412, "a stale version is refused");
        let res = app.patch(&path, &clinician.access_token, None, &on).await;
        assert_eq!(res.status(), 200);
        app.sign_in(&phone.email, PASSWORD).await;

        // A patient without an app has no account to lock.
        let unregistered = app.new_patient(&clinician).await;
        let res = app
            .get_as(
                &format!("/v1/patients/{unregistered}/account"),
                &clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 404);
    }
);

api_test!(
    a_password_change_and_a_sign_out_everywhere_end_every_access_token_at_once,
    |app| async move {
        let laptop = app.sign_in_admin().await;
        let phone = app.sign_in_admin().await;
        let res = app
            .post(
                "/v1/me/password",
                Some(&laptop.access_token),
                &json!({"current_password": PASSWORD, "new_password": "tiny grey heron wades"}),
            )
            .await;
        assert_eq!(res.status(), 204);
        for session in [&laptop, &phone] {
            assert_eq!(
                app.get_as("/v1/me", &session.access_token).await.status(),
                401
            );
        }

        let one = app.sign_in(&app.admin.email, "tiny grey heron wades").await;
        let two = app.sign_in(&app.admin.email, "tiny grey heron wades").await;
        let res = app
            .post(
                "/v1/me/sign-out-everywhere",
                Some(&one.access_token),
                &json!(null),
            )
            .await;
        assert_eq!(res.status(), 204);
        for session in [&one, &two] {
            assert_eq!(
                app.get_as("/v1/me", &session.access_token).await.status(),
                401
            );
            assert_eq!(refresh(&app, session).await, 401);
        }
        let three = app.sign_in(&app.admin.email, "tiny grey heron wades").await;
        assert_eq!(
            app.get_as("/v1/me", &three.access_token).await.status(),
            200
        );
    }
);

api_test!(
    disabling_a_staff_account_ends_its_access_tokens_even_after_it_is_enabled_again,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        let path = format!("/v1/users/{}", clinician.user_id);
        for disabled in [true, false] {
            let res = app
                .patch(
                    &path,
                    &admin.access_token,
                    None,
                    &json!({"disabled": disabled}),
                )
                .await;
            assert_eq!(res.status(), 200);
        }
        assert_eq!(
            app.get_as("/v1/me", &clinician.access_token).await.status(),
            401
        );
        app.sign_in(&clinician.email, PASSWORD).await;
    }
);

api_test!(
    look_alike_emails_are_the_same_account_or_refused,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let create =
            |email: &str| json!({"email": email, "password": PASSWORD, "role": "researcher"});
        let res = app
            .post(
                "/v1/users",
                Some(&admin.access_token),
                &create("ana@clinic.example"),
            )
            .await;
        assert_eq!(res.status(), 201);
        // Fullwidth letters are the same address: taken.
        let fullwidth = "ａｎａ@ｃｌｉｎｉｃ.ｅｘａｍｐｌｅ";
        let res = app
            .post("/v1/users", Some(&admin.access_token), &create(fullwidth))
            .await;
        assert_eq!(res.status(), 409);
        // And it signs in to that one account.
        assert_eq!(app.login(fullwidth, PASSWORD).await.status(), 200);
        for invisible in [
            "an\u{200b}a@clinic.example",
            "an\u{ad}a@clinic.example",
            "ana\u{202e}@clinic.example",
            "an\u{0}a@clinic.example",
        ] {
            let (status, _, body) = problem(
                app.post("/v1/users", Some(&admin.access_token), &create(invisible))
                    .await,
            )
            .await;
            assert_eq!(status, 422, "{invisible:?}");
            assert_eq!(body["errors"][0]["field"], "email");
            // At sign-in too, before anything is looked up.
            let (status, _, body) = problem(app.login(invisible, PASSWORD).await).await;
            assert_eq!(
                (status, body["errors"][0]["field"].as_str()),
                (422, Some("email")),
                "{invisible:?}"
            );
        }
        let users: Value = app
            .get_as("/v1/users?role=researcher", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            users["items"].as_array().unwrap().len(),
            1,
            "one account, not look-alikes"
        );
    }
);
