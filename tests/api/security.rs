//! The security matrix of quality.md, from the attacker's side, for every endpoint that needs a
//! signed-in caller: no token, forged tokens, and every role that must not.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::api_test;
use crate::helpers::{problem, Session, TestApp};

/// Every endpoint that needs a caller, with the roles allowed on it.
fn endpoints(
    some_user: &str,
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
    vec![
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
    .chain(clinical_endpoints())
    .collect()
}

/// The clinical-record endpoints: clinicians, and patients on their own record (object-level
/// access for patients is tested in access.rs).
fn clinical_endpoints() -> Vec<(
    reqwest::Method,
    String,
    serde_json::Value,
    &'static [&'static str],
)> {
    use reqwest::Method;
    let clinician: &[&str] = &["clinician", "patient"];
    let id = uuid::Uuid::new_v4();
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

        for (method, path, body, allowed) in endpoints(&clinician.user_id) {
            let (status, content_type, _) =
                problem(call(&app, &method, &path, &body, None).await).await;
            assert_eq!(
                (status, content_type.as_str()),
                (401, "application/problem+json"),
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
                assert_eq!(body["type"], "/problems/forbidden");
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
