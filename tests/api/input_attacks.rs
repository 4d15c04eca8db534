//! Input an attacker sends to make the server fail (issue 12, points 4, 10 and 11): control
//! characters in every text field, instants at their extremes, a dose that rounds to nothing,
//! keys given twice, bodies sent slowly, URIs too long. Every one is a 4xx problem naming what
//! was wrong, and changes nothing, on both engines alike.

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::minutes_from_now;
use crate::helpers::{problem, Session, TestApp};

/// A clinic with one patient and one of every record, for the attacks to aim at.
struct Target {
    admin: Session,
    clinician: Session,
    patient: String,
    session: String,
    side_effect: String,
    assessment: String,
    flag: String,
}

async fn target(app: &TestApp) -> Target {
    let admin = app.sign_in_admin().await;
    let clinician = app.clinic(&admin, "Harbour").await.clinician;
    let patient = app.new_patient(&clinician).await;
    app.new_course(&clinician, &patient, &minutes_from_now(-3 * 24 * 60)[..10])
        .await;
    let session = app
        .new_session(&clinician, &patient, &minutes_from_now(-120))
        .await;
    let created = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()
    };
    let side_effect = created(
        app.post_as(
            &format!("/v1/patients/{patient}/side-effects"),
            &clinician.access_token,
            &json!({"effect": "nausea", "severity": "mild", "onset_at": minutes_from_now(-60)}),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let assessment = created(
        app.post_as(
            &format!("/v1/patients/{patient}/assessments"),
            &clinician.access_token,
            &json!({"instrument": "phq9", "taken_at": minutes_from_now(-30), "items": [0, 0, 0, 0, 0, 0, 0, 0, 1]}),
        )
        .await,
    )
    .await;
    let flag = assessment["flags"][0]["id"].as_str().unwrap().to_owned();
    Target {
        admin,
        clinician,
        patient,
        session,
        side_effect,
        assessment: assessment["id"].as_str().unwrap().to_owned(),
        flag,
    }
}

/// Sends `body` (JSON text, or nothing) and returns the problem.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, String, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    problem(req.send().await.unwrap()).await
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Expects 422 naming `field`.
async fn refused(
    app: &TestApp,
    (method, path): (reqwest::Method, &str),
    token: Option<&str>,
    body: Option<Value>,
    field: &str,
) {
    let shown = body.as_ref().map(Value::to_string).unwrap_or_default();
    let (status, content_type, problem) = send(
        app,
        method.clone(),
        path,
        token,
        body.map(|b| b.to_string()),
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (422, "application/problem+json"),
        "{method} {path} {shown}: {problem}"
    );
    assert!(
        fields(&problem).iter().any(|f| f == field),
        "{method} {path} {shown}: expected {field} in {problem}"
    );
}

/// What the attacks must not have changed.
async fn snapshot(app: &TestApp, t: &Target) -> Value {
    let get = |path: String, token: String| async move {
        app.get_as(&path, &token)
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    let clinician = t.clinician.access_token.clone();
    let admin = t.admin.access_token.clone();
    let mut patient = get(format!("/v1/patients/{}", t.patient), clinician.clone()).await;
    patient.as_object_mut().unwrap().remove("updated_at");
    json!({
        "clinics": get("/v1/clinics?limit=500".into(), admin.clone()).await["items"].as_array().unwrap().len(),
        "users": get("/v1/users?limit=500".into(), admin).await["items"].as_array().unwrap().len(),
        "patients": get("/v1/patients?limit=500".into(), clinician.clone()).await["items"].as_array().unwrap().len(),
        "patient": patient,
        "sessions": get(format!("/v1/patients/{}/sessions", t.patient), clinician.clone()).await["items"],
        "side_effects": get(format!("/v1/patients/{}/side-effects", t.patient), clinician.clone()).await["items"],
        "assessments": get(format!("/v1/patients/{}/assessments", t.patient), clinician.clone()).await["items"],
        "flags": get(format!("/v1/flags?patient_id={}", t.patient), clinician).await["items"],
    })
}

api_test!(
    control_characters_in_every_text_field_are_refused_naming_the_field,
    |app| async move {
        use reqwest::Method;
        let t = target(&app).await;
        let before = snapshot(&app, &t).await;
        let (admin, doc) = (
            Some(t.admin.access_token.as_str()),
            Some(t.clinician.access_token.as_str()),
        );
        let patient = t.patient.as_str();
        let sessions = format!("/v1/patients/{patient}/sessions");
        let side_effects = format!("/v1/patients/{patient}/side-effects");
        let a_session = json!({"route": "iv", "started_at": minutes_from_now(-10), "dose_mg_per_kg": 0.5, "weight_kg": 70});
        let mut session_held = a_session.clone();
        session_held["status"] = json!("held");
        session_held["hold_reason"] = json!("blood pressure\u{0}");
        let register = |code: &str, email: &str| json!({"invite_code": code, "email": email, "password": "tiny grey heron wades"});
        for bad in ["\u{0}", "\u{1b}[2J", "\u{7}", "\u{85}x"] {
            let text = |s: &str| format!("{s}{bad}tail");
            type Case<'a> = ((Method, String), Option<&'a str>, Value, &'a str);
            let cases: Vec<Case> = vec![
                (
                    (Method::POST, "/v1/auth/login".into()),
                    None,
                    json!({"email": text("ana@clinic.example"), "password": "lantern orbit kettle"}),
                    "email",
                ),
                (
                    (Method::POST, "/v1/auth/register".into()),
                    None,
                    register(&text("hV3k9Qz2LmP8xR4tYw6n"), "sam@example.org"),
                    "invite_code",
                ),
                (
                    (Method::POST, "/v1/auth/register".into()),
                    None,
                    register("hV3k9Qz2LmP8xR4tYw6n", &text("sam@example.org")),
                    "email",
                ),
                (
                    (Method::POST, "/v1/clinics".into()),
                    admin,
                    json!({"name": text("Harbour")}),
                    "name",
                ),
                (
                    (Method::POST, "/v1/clinics".into()),
                    admin,
                    json!({"name": "Harbour", "crisis_message": text("Call 988")}),
                    "crisis_message",
                ),
                (
                    (Method::POST, "/v1/users".into()),
                    admin,
                    json!({"email": text("x@clinic.example"), "password": "lantern orbit kettle", "role": "researcher"}),
                    "email",
                ),
                (
                    (Method::POST, "/v1/patients".into()),
                    doc,
                    json!({"birth_year": 1980, "sex": "male", "indications": ["ocd"], "external_ref": text("MRN")}),
                    "external_ref",
                ),
                (
                    (Method::POST, "/v1/patients".into()),
                    doc,
                    json!({"birth_year": 1980, "sex": "male", "indications": ["ocd"], "risk_factors": [{"factor": "hypertension", "note": text("treated")}]}),
                    "risk_factors.0.note",
                ),
                (
                    (Method::PATCH, format!("/v1/patients/{patient}")),
                    doc,
                    json!({"external_ref": text("MRN")}),
                    "external_ref",
                ),
                (
                    (Method::POST, sessions.clone()),
                    doc,
                    session_held.clone(),
                    "hold_reason",
                ),
                (
                    (Method::POST, side_effects.clone()),
                    doc,
                    json!({"effect": "other", "severity": "mild", "onset_at": minutes_from_now(-5), "note": text("itch")}),
                    "note",
                ),
                (
                    (Method::PATCH, format!("/v1/side-effects/{}", t.side_effect)),
                    doc,
                    json!({"note": text("itch")}),
                    "note",
                ),
                (
                    (Method::POST, format!("/v1/flags/{}/acknowledge", t.flag)),
                    doc,
                    json!({"note": text("called")}),
                    "note",
                ),
                (
                    (Method::DELETE, format!("/v1/assessments/{}", t.assessment)),
                    doc,
                    json!({"reason": text("wrong patient")}),
                    "reason",
                ),
                (
                    (Method::DELETE, format!("/v1/sessions/{}", t.session)),
                    doc,
                    json!({"reason": text("wrong patient")}),
                    "reason",
                ),
            ];
            for ((method, path), token, body, field) in cases {
                refused(&app, (method, &path), token, Some(body), field).await;
            }
            let action = format!("/v1/audit-events?action={}", urlencode(&text("login")));
            refused(&app, (Method::GET, &action), admin, None, "action").await;
        }
        // A line break is control enough for a name, not for a note.
        refused(
            &app,
            (Method::POST, "/v1/clinics"),
            admin,
            Some(json!({"name": "Har\nbour"})),
            "name",
        )
        .await;
        assert_eq!(
            snapshot(&app, &t).await,
            before,
            "no refused request changed anything"
        );
        let note = json!({"effect": "other", "severity": "mild", "onset_at": minutes_from_now(-5), "note": "line one\r\nline two\tend"});
        let res = app
            .post_as(&side_effects, &t.clinician.access_token, &note)
            .await;
        assert_eq!(res.status(), 201);
        assert_eq!(
            res.json::<Value>().await.unwrap()["note"],
            "line one\nline two\tend"
        );
    }
);

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

api_test!(
    instants_at_their_extremes_are_refused_naming_the_field,
    |app| async move {
        use reqwest::Method;
        let t = target(&app).await;
        let before = snapshot(&app, &t).await;
        let doc = Some(t.clinician.access_token.as_str());
        let admin = Some(t.admin.access_token.as_str());
        let patient = t.patient.as_str();
        let extremes = [
            "-5000-01-01T00:00:00Z",
            "-0001-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "1899-12-31T23:59:59Z",
            "9999-12-31T23:59:59Z",
            "+20000-01-01T00:00:00Z",
        ];
        for at in extremes {
            let records: Vec<(String, Value, &str)> = vec![
                (
                    format!("/v1/patients/{patient}/assessments"),
                    json!({"instrument": "gad7", "taken_at": at, "items": [0, 0, 0, 0, 0, 0, 0]}),
                    "taken_at",
                ),
                (
                    format!("/v1/patients/{patient}/sessions"),
                    json!({"route": "iv", "started_at": at, "dose_mg_per_kg": 0.5, "weight_kg": 70}),
                    "started_at",
                ),
                (
                    format!("/v1/patients/{patient}/side-effects"),
                    json!({"effect": "nausea", "severity": "mild", "onset_at": at}),
                    "onset_at",
                ),
                (
                    "/v1/patients".into(),
                    json!({"birth_year": 1980, "sex": "male", "indications": ["ocd"], "risk_factors": [{"factor": "hypertension", "noted_at": at}]}),
                    "risk_factors.0.noted_at",
                ),
            ];
            for (path, body, field) in records {
                // chrono reads years beyond four digits as out of range: still a 422.
                let (status, _, problem) =
                    send(&app, Method::POST, &path, doc, Some(body.to_string())).await;
                assert_eq!(status, 422, "{path} {body}: {problem}");
                assert!(
                    fields(&problem).iter().any(|f| f == field || f == "body"),
                    "{path} {body}: {problem}"
                );
            }
            let encoded = urlencode(at);
            let queries = [
                (
                    format!("/v1/patients/{patient}/assessments?from={encoded}"),
                    doc,
                    "from",
                ),
                (
                    format!("/v1/patients/{patient}/sessions?to={encoded}"),
                    doc,
                    "to",
                ),
                (
                    format!("/v1/patients/{patient}/side-effects?updated_since={encoded}"),
                    doc,
                    "updated_since",
                ),
                (
                    format!("/v1/patients?updated_since={encoded}"),
                    doc,
                    "updated_since",
                ),
                (
                    format!("/v1/patients/{patient}/timeline?from={encoded}"),
                    doc,
                    "from",
                ),
                (format!("/v1/audit-events?from={encoded}"), admin, "from"),
            ];
            for (path, token, field) in queries {
                let (status, _, problem) = send(&app, Method::GET, &path, token, None).await;
                assert_eq!(status, 422, "{path}: {problem}");
                assert!(
                    fields(&problem)
                        .iter()
                        .any(|f| f == field || f == "query" || f == "updated_since"),
                    "{path}: expected {field} in {problem}"
                );
            }
        }
        for (start, field) in [
            ("-5000-01-01", "start_date"),
            ("1899-12-31", "start_date"),
            ("9999-01-01", "start_date"),
        ] {
            let path = format!("/v1/patients/{patient}/courses");
            let body = json!({"indication": "treatment_resistant_depression", "start_date": start});
            let (status, _, problem) =
                send(&app, Method::POST, &path, doc, Some(body.to_string())).await;
            assert_eq!(status, 422, "{start}: {problem}");
            assert!(
                fields(&problem).iter().any(|f| f == field || f == "body"),
                "{start}: {problem}"
            );
        }
        // A query's range may reach into the future; its ends are still bounded.
        let ahead = format!("/v1/patients/{patient}/sessions?to=2100-01-01T00:00:00Z");
        assert_eq!(
            app.get_as(&ahead, &t.clinician.access_token).await.status(),
            200
        );
        assert_eq!(
            snapshot(&app, &t).await,
            before,
            "no refused request changed anything"
        );
    }
);

api_test!(
    a_dose_that_would_total_nothing_is_refused_on_both_engines,
    |app| async move {
        let t = target(&app).await;
        let path = format!("/v1/patients/{}/sessions", t.patient);
        for dose in [0.001, 0.009, 1e-300] {
            let body = json!({"route": "iv", "started_at": minutes_from_now(-5), "dose_mg_per_kg": dose, "weight_kg": 20});
            refused(
                &app,
                (reqwest::Method::POST, &path),
                Some(&t.clinician.access_token),
                Some(body),
                "dose_mg_per_kg",
            )
            .await;
        }
        let body = json!({"route": "iv", "started_at": minutes_from_now(-5), "dose_mg_per_kg": 0.01, "weight_kg": 20});
        let res = app.post_as(&path, &t.clinician.access_token, &body).await;
        assert_eq!(res.status(), 201);
        assert_eq!(res.json::<Value>().await.unwrap()["total_dose_mg"], 0.2);
    }
);

api_test!(
    a_key_given_twice_is_refused_in_every_body,
    |app| async move {
        use reqwest::Method;
        let t = target(&app).await;
        let before = snapshot(&app, &t).await;
        let doc = Some(t.clinician.access_token.as_str());
        let patient = t.patient.as_str();
        let cases = [
            (
                Method::PATCH,
                format!("/v1/patients/{patient}"),
                r#"{"research_consent": false, "research_consent": true}"#,
                "research_consent",
            ),
            (
                Method::PATCH,
                format!("/v1/patients/{patient}"),
                r#"{"risk_factors": [{"factor": "pregnancy", "factor": "hypertension"}]}"#,
                "factor",
            ),
            (
                Method::PATCH,
                format!("/v1/sessions/{}", t.session),
                r#"{"charge_cents": 1, "charge_cents": 2}"#,
                "charge_cents",
            ),
            (
                Method::PATCH,
                format!("/v1/side-effects/{}", t.side_effect),
                r#"{"resolved_at": null, "resolved_at": null}"#,
                "resolved_at",
            ),
            (
                Method::POST,
                format!("/v1/patients/{patient}/side-effects"),
                r#"{"effect": "nausea", "effect": "craving", "severity": "mild", "onset_at": "2026-01-01T00:00:00Z"}"#,
                "effect",
            ),
            (
                Method::POST,
                "/v1/auth/login".to_owned(),
                r#"{"email": "a@b.example", "email": "c@d.example", "password": "x"}"#,
                "email",
            ),
        ];
        for (method, path, body, field) in cases {
            let (status, _, problem) =
                send(&app, method.clone(), &path, doc, Some(body.to_owned())).await;
            assert_eq!(status, 422, "{method} {path} {body}: {problem}");
            assert!(
                fields(&problem).iter().any(|f| f == field),
                "{body}: {problem}"
            );
        }
        assert_eq!(
            snapshot(&app, &t).await,
            before,
            "no refused request changed anything"
        );
    }
);

api_test!(every_api_answer_is_marked_no_store, |app| async move {
    let admin = app.sign_in_admin().await;
    let answers = [
        app.get_as("/v1/me", &admin.access_token).await,
        app.get("/v1/me").await,
        app.get_as("/v1/patients/not-a-uuid", &admin.access_token)
            .await,
        app.get("/v1/no-such-thing").await,
        app.login(&admin.email, "not the password at all").await,
    ];
    for res in answers {
        assert_eq!(
            res.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{} {}",
            res.url(),
            res.status()
        );
    }
});

api_test!(
    a_body_sent_slowly_is_cut_off_with_a_408,
    overrides = &[("KO_REQUEST_BODY_TIMEOUT_SECS", "1")],
    |app| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = app.address.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let trickle = async {
            for _ in 0..40 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1_600), trickle).await;
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut answer))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
    }
);

/// Sends raw bytes (then waits `pause`) and reads the whole answer.
async fn raw_exchange(app: &TestApp, bytes: &[u8], pause: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // The server may answer and close before all of it is sent.
    let _ = stream.write_all(bytes).await;
    tokio::time::sleep(pause).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

api_test!(
    heads_the_http_layer_refuses_on_its_own_are_problem_documents_too,
    overrides = &[("KO_REQUEST_HEAD_TIMEOUT_SECS", "1")],
    |app| async move {
        let none = std::time::Duration::ZERO;
        let long_uri = format!(
            "GET /v1/{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(100_000)
        );
        let big_head = format!(
            "GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(140_000)
        );
        let cases = [
            (long_uri.into_bytes(), none, "414", "/problems/uri-too-long"),
            (
                big_head.into_bytes(),
                none,
                "431",
                "/problems/headers-too-large",
            ),
            (
                b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
                none,
                "400",
                "/problems/malformed",
            ),
            (
                b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec(),
                std::time::Duration::from_millis(1_500),
                "408",
                "/problems/request-timeout",
            ),
        ];
        for (bytes, pause, status, kind) in cases {
            let answer = raw_exchange(&app, &bytes, pause).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{answer}"
            );
            assert!(
                answer.contains("content-type: application/problem+json"),
                "{answer}"
            );
            let body: Value =
                serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            assert_eq!(
                (body["type"].as_str(), body["status"].as_u64()),
                (Some(kind), status.parse().ok())
            );
        }
    }
);
