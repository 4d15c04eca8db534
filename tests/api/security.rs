//! The security matrix of quality.md, from the attacker's side, for every endpoint that needs a
//! signed-in caller: no token, forged tokens, and every role that must not.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::api_test;
use crate::helpers::{problem, Session, TestApp};

/// Every endpoint that needs a caller, with the roles allowed on it: `some_user` stands for
/// any id of an account, clinic, grant or flag, `clinic` for a clinic's, `record` for a
/// patient's (`the_matrix_holds_every_operation_of_the_contract_that_takes_a_caller`).
fn endpoints(
    some_user: &str,
    clinic: &str,
    record: &str,
) -> Vec<(
    reqwest::Method,
    String,
    serde_json::Value,
    &'static [&'static str],
)> {
    use reqwest::Method;
    let any: &[&str] = &["admin", "clinician", "researcher", "patient"];
    let admin: &[&str] = &["admin"];
    let researcher: &[&str] = &["researcher"];
    let clinician: &[&str] = &["clinician"];
    let patient: &[&str] = &["patient"];
    let clinical: &[&str] = &["clinician", "patient"];
    let staff: &[&str] = &["admin", "clinician"];
    let webhooks = format!("/v1/clinics/{clinic}/webhooks");
    let webhook = format!("{webhooks}/{some_user}");
    let pain = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "https://ketamine-outcomes.org/fhir/Questionnaire/pain-nrs",
        "authored": "2026-01-01T00:00:00Z", "item": [{"linkId": "72514-3", "answer": [{"valueInteger": 5}]}]});
    let assessment = json!({"instrument": "gad7", "taken_at": "2026-01-01T00:00:00Z", "items": [0, 0, 0, 0, 0, 0, 0]});
    let side_effect =
        json!({"effect": "nausea", "severity": "mild", "onset_at": "2026-01-01T00:00:00Z"});
    vec![
        (Method::POST, webhooks.clone(), json!({"url": "http://127.0.0.1:9/hooks", "events": ["flag.raised"]}), admin),
        (Method::GET, webhooks, json!(null), staff),
        (Method::GET, webhook.clone(), json!(null), staff),
        (Method::PATCH, webhook.clone(), json!({}), admin),
        (Method::DELETE, webhook.clone(), json!(null), admin),
        (Method::POST, format!("{webhook}/rotate-secret"), json!(null), admin),
        (Method::GET, format!("{webhook}/deliveries"), json!(null), admin),
        (Method::POST, format!("{webhook}/deliveries/{some_user}/replay"), json!(null), admin),
        (Method::GET, "/v1/fhir/$export".into(), json!(null), clinician),
        (Method::GET, format!("/v1/fhir/export-jobs/{some_user}"), json!(null), clinician),
        (Method::DELETE, format!("/v1/fhir/export-jobs/{some_user}"), json!(null), clinician),
        (Method::GET, format!("/v1/fhir/export-jobs/{some_user}/files/Patient"), json!(null), clinician),
        (Method::GET, "/v1/flags/stream".into(), json!(null), clinician),
        (Method::POST, "/v1/me/assessments".into(), assessment, patient),
        (Method::GET, "/v1/me/assessments".into(), json!(null), patient),
        (Method::POST, "/v1/me/side-effects".into(), side_effect, patient),
        (Method::GET, "/v1/me/side-effects".into(), json!(null), patient),
        (Method::GET, "/v1/me/sessions".into(), json!(null), patient),
        (Method::GET, "/v1/me/outcomes".into(), json!(null), patient),
        (Method::GET, "/v1/me/durability".into(), json!(null), patient),
        (Method::GET, "/v1/me/due-assessments".into(), json!(null), patient),
        (Method::GET, format!("/v1/patients/{record}/consent-history"), json!(null), clinical),
        (Method::GET, format!("/v1/patients/{record}/due-assessments"), json!(null), clinical),
        (Method::GET, format!("/v1/patients/{record}/durability"), json!(null), clinical),
        (Method::GET, format!("/v1/patients/{record}/durability.svg"), json!(null), clinical),
        (Method::GET, format!("/v1/patients/{record}/fhir"), json!(null), clinical),
        (Method::POST, format!("/v1/patients/{record}/fhir/QuestionnaireResponse"), pain, clinical),
        (Method::GET, "/v1/me".into(), json!(null), any),
        (Method::POST, "/v1/me/sign-out-everywhere".into(), json!(null), any),
        (Method::GET, format!("/v1/patients/{some_user}/account"), json!(null), &["clinician"]),
        (Method::PATCH, format!("/v1/patients/{some_user}/account"), json!({"disabled": true}), &["clinician"]),
        (
            Method::POST,
            "/v1/me/password".into(),
            json!({"current_password": "x", "new_password": "y"}),
            any,
        ),
        (
            Method::POST,
            "/v1/auth/logout".into(),
            json!({"refresh_token": "x"}),
            any,
        ),
        (
            Method::POST,
            "/v1/clinics".into(),
            json!({"name": "Forbidden Clinic"}),
            admin,
        ),
        (Method::GET, "/v1/clinics".into(), json!(null), admin),
        (
            Method::POST,
            "/v1/users".into(),
            json!({"email": "x@clinic.example", "password": "lantern orbit kettle", "role": "researcher"}),
            admin,
        ),
        (Method::GET, "/v1/users".into(), json!(null), admin),
        (
            Method::GET,
            format!("/v1/users/{some_user}"),
            json!(null),
            admin,
        ),
        (
            Method::PATCH,
            format!("/v1/users/{some_user}"),
            json!({"disabled": true}),
            admin,
        ),
        (Method::GET, "/v1/audit-events".into(), json!(null), admin),
        (Method::GET, "/v1/instruments".into(), json!(null), any),
        (Method::GET, "/v1/side-effect-kinds".into(), json!(null), any),
        (Method::GET, "/v1/protocols".into(), json!(null), any),
        (Method::GET, "/v1/research/outcomes".into(), json!(null), researcher),
        (Method::GET, "/v1/research/side-effects".into(), json!(null), researcher),
        (Method::GET, "/v1/research/trajectories?instrument=phq9".into(), json!(null), researcher),
        (Method::GET, "/v1/research/trajectories.svg?instrument=phq9".into(), json!(null), researcher),
        (Method::GET, "/v1/research/export".into(), json!(null), researcher),
        (Method::GET, "/v1/research/budget".into(), json!(null), researcher),
        (
            Method::POST,
            "/v1/research-grants".into(),
            json!({"researcher_id": some_user, "purpose": "x", "reference": "y", "expires_at": "2030-01-01T00:00:00Z"}),
            admin,
        ),
        (Method::GET, "/v1/research-grants".into(), json!(null), admin),
        (Method::DELETE, format!("/v1/research-grants/{some_user}"), json!(null), admin),
        (Method::GET, "/v1/research-budgets".into(), json!(null), admin),
        (Method::GET, "/v1/flags".into(), json!(null), &["clinician"]),
        (Method::POST, format!("/v1/flags/{some_user}/acknowledge"), json!({"note": "x"}), &["clinician"]),
        (Method::GET, format!("/v1/patients/{some_user}/outcomes"), json!(null), &["clinician", "patient"]),
        (Method::GET, format!("/v1/patients/{some_user}/trajectory.svg"), json!(null), &["clinician", "patient"]),
    ]
    .into_iter()
    .chain(clinical_endpoints(record))
    .collect()
}

/// The clinical-record endpoints: clinicians, and patients on their own record (object-level
/// access for patients is tested in access.rs).
fn clinical_endpoints(
    id: &str,
) -> Vec<(
    reqwest::Method,
    String,
    serde_json::Value,
    &'static [&'static str],
)> {
    use reqwest::Method;
    let clinician: &[&str] = &["clinician", "patient"];
    let reason = json!({"reason": "x"});
    let paths = [
        (
            Method::POST,
            "/v1/patients".to_owned(),
            json!({"birth_year": 1980, "sex": "male", "indications": ["ocd"]}),
        ),
        (Method::GET, "/v1/patients".to_owned(), json!(null)),
        (Method::GET, format!("/v1/patients/{id}"), json!(null)),
        (Method::PATCH, format!("/v1/patients/{id}"), json!({})),
        (
            Method::POST,
            format!("/v1/patients/{id}/invites"),
            json!(null),
        ),
        (
            Method::GET,
            format!("/v1/patients/{id}/timeline"),
            json!(null),
        ),
        (
            Method::POST,
            format!("/v1/patients/{id}/courses"),
            json!({"indication": "ocd", "start_date": "2026-01-01"}),
        ),
        (
            Method::GET,
            format!("/v1/patients/{id}/courses"),
            json!(null),
        ),
        (Method::GET, format!("/v1/courses/{id}"), json!(null)),
        (Method::PATCH, format!("/v1/courses/{id}"), json!({})),
        (
            Method::POST,
            format!("/v1/patients/{id}/sessions"),
            json!({"route": "iv", "started_at": "2026-01-01T00:00:00Z", "dose_mg_per_kg": 0.5, "weight_kg": 70}),
        ),
        (
            Method::GET,
            format!("/v1/patients/{id}/sessions"),
            json!(null),
        ),
        (Method::GET, format!("/v1/sessions/{id}"), json!(null)),
        (Method::PATCH, format!("/v1/sessions/{id}"), json!({})),
        (Method::DELETE, format!("/v1/sessions/{id}"), reason.clone()),
        (
            Method::POST,
            format!("/v1/patients/{id}/assessments"),
            json!({"instrument": "gad7", "taken_at": "2026-01-01T00:00:00Z", "items": [0, 0, 0, 0, 0, 0, 0]}),
        ),
        (
            Method::GET,
            format!("/v1/patients/{id}/assessments"),
            json!(null),
        ),
        (Method::GET, format!("/v1/assessments/{id}"), json!(null)),
        (
            Method::DELETE,
            format!("/v1/assessments/{id}"),
            reason.clone(),
        ),
        (
            Method::POST,
            format!("/v1/patients/{id}/side-effects"),
            json!({"effect": "nausea", "severity": "mild", "onset_at": "2026-01-01T00:00:00Z"}),
        ),
        (
            Method::GET,
            format!("/v1/patients/{id}/side-effects"),
            json!(null),
        ),
        (Method::GET, format!("/v1/side-effects/{id}"), json!(null)),
        (Method::PATCH, format!("/v1/side-effects/{id}"), json!({})),
        (Method::DELETE, format!("/v1/side-effects/{id}"), reason),
    ];
    paths
        .into_iter()
        .map(|(m, p, b)| (m, p, b, clinician))
        .collect()
}

async fn call(
    app: &TestApp,
    method: &reqwest::Method,
    path: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = app.client.request(method.clone(), app.url(path));
    if !body.is_null() {
        req = req.json(body);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    // What a bulk export asks for (and every other endpoint ignores).
    req = req.header("prefer", "respond-async");
    req.send().await.unwrap()
}

/// Tokens an attacker could present, each broken in one way.
fn forged_tokens(app: &TestApp, victim: &Session) -> Vec<(&'static str, String)> {
    let secret = app.signing_secret();
    let kid = jsonwebtoken::decode_header(&victim.access_token)
        .unwrap()
        .kid
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    // Every claim right but the one each forgery breaks, the victim's token generation too.
    let claims = |iss: &str, aud: &str, exp: i64| json!({"sub": victim.user_id, "role": "admin", "clinic": null, "iat": now, "exp": exp, "iss": iss, "aud": aud, "generation": 0});
    let sign = |alg: Algorithm, key: &[u8], claims: serde_json::Value| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key)).unwrap()
    };
    let good = |exp| claims("ketamine-outcomes", "ketamine-outcomes-api", exp);
    let parts: Vec<&str> = victim.access_token.split('.').collect();
    let unsigned_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let raised_payload = URL_SAFE_NO_PAD.encode(good(now + 600).to_string());
    vec![
        ("alg none", format!("{unsigned_header}.{raised_payload}.")),
        (
            "wrong key",
            sign(
                Algorithm::HS256,
                b"an attacker's key of 32 bytes...",
                good(now + 600),
            ),
        ),
        (
            "another algorithm",
            sign(Algorithm::HS512, &secret, good(now + 600)),
        ),
        (
            "wrong audience",
            sign(
                Algorithm::HS256,
                &secret,
                claims("ketamine-outcomes", "another-api", now + 600),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                &secret,
                claims("someone-else", "ketamine-outcomes-api", now + 600),
            ),
        ),
        ("expired", sign(Algorithm::HS256, &secret, good(now - 120))),
        (
            "tampered payload",
            format!("{}.{raised_payload}.{}", parts[0], parts[2]),
        ),
        ("garbage", "not.a.token".into()),
    ]
}

api_test!(
    no_token_or_a_forged_token_is_401_and_a_wrong_role_403_on_every_endpoint,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let record = app.new_patient(&clinician).await;
        let patient = app.patient_app(&clinician, &record).await;
        let forged = forged_tokens(&app, &clinician);
        // Sanity: the forger's own correct token is accepted, so a 401 below is the defect's doing.
        assert_eq!(
            app.get_as("/v1/me", &clinician.access_token).await.status(),
            200
        );

        let anyone = uuid::Uuid::new_v4().to_string();
        for (method, path, body, allowed) in endpoints(&clinician.user_id, &anyone, &anyone) {
            let (status, content_type, _) =
                problem(call(&app, &method, &path, &body, None).await).await;
            // FHIR's endpoints answer in FHIR's terms (an OperationOutcome).
            let problem_type = if path.contains("/fhir") {
                "application/fhir+json"
            } else {
                "application/problem+json"
            };
            assert_eq!(
                (status, content_type.as_str()),
                (401, problem_type),
                "{method} {path} without a token"
            );
            for (defect, token) in &forged {
                let status = call(&app, &method, &path, &body, Some(token))
                    .await
                    .status();
                assert_eq!(status, 401, "{method} {path} with a token: {defect}");
            }
            for (role, session) in [
                ("admin", &admin),
                ("clinician", &clinician),
                ("researcher", &researcher),
                ("patient", &patient),
            ] {
                if allowed.contains(&role) {
                    continue;
                }
                let (status, _, body) =
                    problem(call(&app, &method, &path, &body, Some(&session.access_token)).await)
                        .await;
                assert_eq!(status, 403, "{method} {path} as {role}");
                if path.contains("/fhir") {
                    assert_eq!(body["issue"][0]["code"], "forbidden", "{method} {path}");
                } else {
                    assert_eq!(body["type"], "/problems/forbidden", "{method} {path}");
                }
            }
        }
        let unchanged: serde_json::Value = app
            .get_as(
                &format!("/v1/users/{}", clinician.user_id),
                &admin.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            unchanged["disabled"], false,
            "no refused request changed anything"
        );
    }
);

/// The contract's operations that take a bearer token: (method, path template).
async fn operations_with_a_caller(app: &TestApp) -> Vec<(String, String)> {
    let contract: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut found = vec![];
    for (path, item) in contract["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|rules| rules.iter().any(|rule| rule.get("bearer").is_some()));
            if bearer {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

/// Whether `path` (with its query) is an instance of the contract's `template`.
fn instance_of(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

api_test!(
    the_matrix_holds_every_operation_of_the_contract_that_takes_a_caller,
    |app| async move {
        let anyone = uuid::Uuid::new_v4().to_string();
        let listed = endpoints(&anyone, &anyone, &anyone);
        let missing: Vec<String> = operations_with_a_caller(&app)
            .await
            .into_iter()
            .filter(|(method, template)| {
                !listed
                    .iter()
                    .any(|(m, path, _, _)| m.as_str() == method && instance_of(template, path))
            })
            .map(|(method, template)| format!("{method} {template}"))
            .collect();
        assert!(missing.is_empty(), "not in the matrix: {missing:#?}");
    }
);

api_test!(
    a_refused_account_is_401_on_every_endpoint,
    |app| async move {
        // One account of each role whose tokens the account no longer admits, each refused
        // another way: disabled, signed out everywhere, moved to another clinic.
        let admin = app.sign_in_admin().await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let elsewhere = app.create_clinic(&admin, "Lighthouse").await;
        let colleague = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        let record = app.new_patient(&colleague).await;
        let patient = app.patient_app(&colleague, &record).await;
        let signed_out_admin = app.sign_in_new(&admin, "admin", None).await;
        let disabled_clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        let moved_clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        let disabled_researcher = app.sign_in_new(&admin, "researcher", None).await;
        for (session, change) in [
            (&disabled_clinician, json!({"disabled": true})),
            (&moved_clinician, json!({"clinic_id": elsewhere})),
            (&disabled_researcher, json!({"disabled": true})),
            (&patient, json!({"disabled": true})),
        ] {
            let path = format!("/v1/users/{}", session.user_id);
            let res = app.patch(&path, &admin.access_token, None, &change).await;
            assert_eq!(res.status(), 200, "{change}");
        }
        let res = app
            .post(
                "/v1/me/sign-out-everywhere",
                Some(&signed_out_admin.access_token),
                &json!(null),
            )
            .await;
        assert_eq!(res.status(), 204);
        let other_record = app.new_patient(&colleague).await;
        let live = [
            ("admin", &admin),
            ("clinician", &colleague),
            (
                "researcher",
                &app.sign_in_new(&admin, "researcher", None).await,
            ),
            ("patient", &app.patient_app(&colleague, &other_record).await),
        ];
        let refused = [
            ("admin", &signed_out_admin),
            ("clinician", &disabled_clinician),
            ("clinician", &moved_clinician),
            ("researcher", &disabled_researcher),
            ("patient", &patient),
        ];

        // Their own clinic and their own patient's record, so that only the account's refusal
        // stands between them and an answer.
        for (method, path, body, _) in endpoints(&colleague.user_id, &clinic, &record) {
            for (role, session) in refused {
                let (status, content_type, _) =
                    problem(call(&app, &method, &path, &body, Some(&session.access_token)).await)
                        .await;
                assert!(
                    (status == 401 || status == 403) && content_type.contains("json"),
                    "{method} {path} as a refused {role}: {status} {content_type}"
                );
                if status == 403 {
                    // Only where the role is refused: an admitted account of it hears the same.
                    let (_, admitted) = live.iter().find(|(r, _)| *r == role).unwrap();
                    let forbidden = call(&app, &method, &path, &body, Some(&admitted.access_token))
                        .await
                        .status();
                    assert_eq!(forbidden, 403, "{method} {path} as an admitted {role}");
                }
            }
        }
        assert_eq!(
            app.get_as(&format!("/v1/patients/{record}"), &colleague.access_token)
                .await
                .status(),
            200,
            "the accounts left alone are still admitted"
        );
    }
);
