//! Every class of bad request gets a problem document with the right status (issue: foundation,
//! point 5), and no error body leaks internals.

use serde_json::json;

use crate::api_test;
use crate::helpers::problem;

/// Nothing internal in an error body: no source path, SQL, panic text or secret.
fn assert_clean(body: &serde_json::Value) {
    let text = body.to_string();
    for leak in [
        "src/", ".rs:", "SELECT", "INSERT", "panicked", "diesel", "argon2", "lantern",
    ] {
        assert!(!text.contains(leak), "error body leaks {leak:?}: {text}");
    }
}

/// The fields a problem names, sorted, each once.
fn named(problem: &serde_json::Value) -> Vec<&str> {
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

api_test!(malformed_json_is_400, |app| async move {
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"email": "a@b.c", "password": "#)
        .send()
        .await
        .unwrap();
    let (status, content_type, body) = problem(res).await;
    assert_eq!(
        (status, content_type.as_str()),
        (400, "application/problem+json")
    );
    assert_eq!(body["type"], "/problems/malformed");
    assert_eq!(body["status"], 400);
    assert_clean(&body);
});

api_test!(
    deeply_nested_json_is_refused_without_a_crash,
    |app| async move {
        let nested = "[".repeat(10_000) + &"]".repeat(10_000);
        let res = app
            .client
            .post(app.url("/v1/auth/login"))
            .header("content-type", "application/json")
            .body(nested)
            .send()
            .await
            .unwrap();
        let (status, content_type, body) = problem(res).await;
        assert!(matches!(status, 400 | 422), "{status}");
        assert_eq!(content_type, "application/problem+json");
        assert_clean(&body);
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
);

api_test!(an_unknown_field_is_422_naming_it, |app| async move {
    let res = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"email": "a@b.c", "password": "x", "remember_me": true}),
        )
        .await;
    let (status, content_type, body) = problem(res).await;
    assert_eq!(
        (status, content_type.as_str()),
        (422, "application/problem+json")
    );
    assert_eq!(body["errors"][0]["field"], "remember_me");
    assert_clean(&body);
});

api_test!(a_wrongly_typed_field_is_422, |app| async move {
    let res = app
        .post(
            "/v1/auth/login",
            None,
            &json!({"email": 42, "password": "x"}),
        )
        .await;
    let (status, content_type, body) = problem(res).await;
    assert_eq!(
        (status, content_type.as_str()),
        (422, "application/problem+json")
    );
    assert_eq!(body["type"], "/problems/validation");
    assert_eq!(body["errors"][0]["field"], "email");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("is not of type \"string\""),
        "{body}"
    );
});

api_test!(a_body_over_256_kib_is_413, |app| async move {
    let big = json!({"email": "a@b.c", "password": "x".repeat(256 * 1024)});
    let (status, content_type, body) = problem(app.post("/v1/auth/login", None, &big).await).await;
    assert_eq!(
        (status, content_type.as_str()),
        (413, "application/problem+json")
    );
    assert_eq!(body["status"], 413);
});

api_test!(a_wrong_content_type_is_415, |app| async move {
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "text/plain")
        .body(r#"{"email": "a@b.c", "password": "x"}"#)
        .send()
        .await
        .unwrap();
    let (status, content_type, body) = problem(res).await;
    assert_eq!(
        (status, content_type.as_str()),
        (415, "application/problem+json")
    );
    assert_eq!(body["type"], "/problems/unsupported-media-type");
});

api_test!(bad_path_and_query_parameters_are_422, |app| async move {
    let admin = app.sign_in_admin().await;
    let (status, content_type, body) = problem(
        app.get_as("/v1/users/not-a-uuid", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (422, "application/problem+json")
    );
    assert_eq!(body["errors"][0]["field"], "path");

    let (status, _, body) = problem(
        app.get_as("/v1/users?limit=many", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_clean(&body);
    let (status, _, body) =
        problem(app.get_as("/v1/users?limit=501", &admin.access_token).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "limit");
    let (status, _, body) = problem(
        app.get_as("/v1/users?cursor=forged", &admin.access_token)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "cursor");
    // An empty cursor is a client with no cursor yet: the first page, on every kind of list.
    for list in ["/v1/users", "/v1/flags"] {
        let token = if list == "/v1/flags" {
            app.clinic(&admin, "Harbour").await.clinician.access_token
        } else {
            admin.access_token.clone()
        };
        let res = app.get_as(&format!("{list}?cursor="), &token).await;
        assert_eq!(res.status(), 200, "{list}");
    }
});

api_test!(an_unknown_route_is_404, |app| async move {
    let (status, content_type, body) = problem(app.get("/v1/no-such-thing").await).await;
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
    assert_eq!(body["title"], "Not found");
});

api_test!(
    an_overlong_email_at_sign_in_is_an_ordinary_failure,
    |app| async move {
        let email = format!("{}@clinic.example", "a".repeat(5000));
        let (status, content_type, body) =
            problem(app.login(&email, "whatever whatever").await).await;
        assert_eq!(
            (status, content_type.as_str()),
            (401, "application/problem+json")
        );
        assert_eq!(body["type"], "/problems/invalid-credentials");
        assert_clean(&body);
    }
);

// issue 14: a unique field that is taken is a 409 naming the field, the same on both
// engines; no constraint's name reaches the client.
api_test!(a_taken_unique_field_is_a_409_naming_it, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.create_clinic(&admin, "Harbour").await;
    let token = admin.access_token.clone();
    let taken = |field: &'static str| {
        move |body: serde_json::Value| {
            assert_eq!(body["type"], "/problems/conflict", "{body}");
            assert_eq!(
                body["errors"],
                json!([{"field": field, "message": "is taken"}]),
                "{body}"
            );
            assert_eq!(body["detail"], format!("{field}: is taken"));
            let text = body.to_string();
            assert!(!text.contains("_key") && !text.contains("UNIQUE"), "{text}");
        }
    };
    let res = app
        .post("/v1/clinics", Some(&token), &json!({"name": "Harbour"}))
        .await;
    let (status, _, body) = problem(res).await;
    assert_eq!(status, 409);
    taken("name")(body);

    let user = json!({"email": "doc@clinic.example", "password": crate::helpers::PASSWORD,
            "role": "clinician", "clinic_id": clinic});
    assert_eq!(
        app.post("/v1/users", Some(&token), &user).await.status(),
        201
    );
    let again = json!({"email": "DOC@clinic.example", "password": crate::helpers::PASSWORD,
            "role": "clinician", "clinic_id": clinic});
    let (status, _, body) = problem(app.post("/v1/users", Some(&token), &again).await).await;
    assert_eq!(status, 409);
    taken("email")(body);

    let doc = app
        .sign_in("doc@clinic.example", crate::helpers::PASSWORD)
        .await;
    let patient = json!({"external_ref": "MRN-1", "birth_year": 1980, "sex": "female",
            "indications": ["treatment_resistant_depression"]});
    assert_eq!(
        app.post("/v1/patients", Some(&doc.access_token), &patient)
            .await
            .status(),
        201
    );
    let (status, _, body) = problem(
        app.post("/v1/patients", Some(&doc.access_token), &patient)
            .await,
    )
    .await;
    assert_eq!(status, 409);
    taken("external_ref")(body);
});

// issue 15 (11): a body that breaks the contract in several ways is answered once, naming each
// bad field by its path: a wrong type, a value outside an enumeration, a broken length rule;
// a time without its offset, an unknown instrument, an item of the wrong type.
api_test!(
    every_bad_field_is_named_by_its_path_in_one_answer,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let cases = [
            (
                "/v1/patients".to_owned(),
                json!({"birth_year": "1980", "sex": "dragon", "indications": ["ocd"],
                    "external_ref": "x".repeat(300)}),
                vec!["birth_year", "external_ref", "sex"],
            ),
            (
                format!("/v1/patients/{patient}/sessions"),
                json!({"route": "iv", "started_at": "2026-01-05T09:00:00", "dose_mg_per_kg": 0.5,
                    "weight_kg": "heavy"}),
                vec!["started_at", "weight_kg"],
            ),
            (
                format!("/v1/patients/{patient}/assessments"),
                json!({"instrument": "phq10", "taken_at": "2026-01-05T09:00:00Z",
                    "items": [1, "two", 1], "colour": "blue"}),
                vec!["colour", "instrument", "items[1]"],
            ),
        ];
        for (path, body, fields) in cases {
            let (status, _, problem) = problem(app.post_as(&path, token, &body).await).await;
            assert_eq!(status, 422, "{path}: {problem}");
            assert_eq!(named(&problem), fields, "{path}: {problem}");
            assert_clean(&problem);
        }
        // A merge patch is held to its schema the same way: a wrong type, a value outside an
        // enumeration, a broken range, and a field that may not be cleared, all named at once.
        let patch = json!({"birth_year": "old", "sex": "dragon", "indications": null,
            "external_ref": "x".repeat(300)});
        let path = format!("/v1/patients/{patient}");
        let (status, _, answer) = problem(app.patch(&path, token, None, &patch).await).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(
            named(&answer),
            ["birth_year", "external_ref", "indications", "sex"],
            "{answer}"
        );
        assert_clean(&answer);
        let old = app
            .patch(&path, token, None, &json!({"birth_year": 1700}))
            .await;
        let (status, _, answer) = problem(old).await;
        assert_eq!(
            (status, &answer["errors"][0]["field"]),
            (422, &json!("birth_year"))
        );
        let unchanged: serde_json::Value = app.get_as(&path, token).await.json().await.unwrap();
        assert_eq!(unchanged["version"], 1, "{unchanged}");
        // Nothing was written.
        let patients: serde_json::Value = app
            .get_as("/v1/patients", token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(patients["items"].as_array().unwrap().len(), 1);
    }
);

// issue 15 (11): a query string is held to the operation's parameters as the contract states
// them — `updated_since=yesterday` is named as `updated_since`, not as "query" — and every bad
// parameter is named in one answer, whichever of the handler's extractors met it first.
api_test!(
    every_bad_query_parameter_is_named_in_one_answer,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let cases = [
            (
                format!("/v1/patients/{patient}/assessments?updated_since=yesterday&limit=abc&from=soon"),
                &clinic.clinician.access_token,
                vec!["from", "limit", "updated_since"],
            ),
            (
                "/v1/research/outcomes?phase=bogus&group_by=sex,colour&wear_off_days=99&dose_band=huge"
                    .to_owned(),
                &researcher.access_token,
                vec!["dose_band", "group_by[1]", "phase", "wear_off_days"],
            ),
            (
                "/v1/flags?status=closed&limit=0".to_owned(),
                &clinic.clinician.access_token,
                vec!["limit", "status"],
            ),
        ];
        for (path, token, fields) in cases {
            let (status, _, problem) = problem(app.get_as(&path, token).await).await;
            assert_eq!(status, 422, "{path}: {problem}");
            assert_eq!(named(&problem), fields, "{path}: {problem}");
            assert!(!problem.to_string().contains("yesterday"), "{problem}");
        }
    }
);
