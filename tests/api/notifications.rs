//! The clinic's live stream (api.md, Notifications): each event of the clinic's patients as it
//! commits, thin, resumable after the last one seen on any process, never another clinic's,
//! and never one for a write that rolled back.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{audit_events, eventually, problem, TestApp};

/// One event of a stream: its id, type and body.
#[derive(Debug)]
struct Frame {
    id: String,
    event: String,
    data: Value,
}

/// A `text/event-stream` read frame by frame, keeping the last `id` it was sent as a browser's
/// `EventSource` does (heartbeats carry one too).
struct Events {
    res: reqwest::Response,
    buffer: String,
    last_id: Option<String>,
}

impl Events {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Self {
        let mut req = app
            .client
            .get(app.url("/v1/flags/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.expect("request sent");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Self {
            res,
            buffer: String::new(),
            last_id: None,
        }
    }

    /// The next event, skipping the stream's comments and its retry advice. On PostgreSQL an
    /// event shows once every transaction of the cluster that began before its commit has
    /// ended (other tests' too), so this waits up to 40 s, as `eventually` does.
    async fn next(&mut self) -> Frame {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let text: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .map(str::to_owned)
                };
                if let Some(id) = field("id") {
                    self.last_id = Some(id);
                }
                if let (Some(id), Some(event), Some(data)) =
                    (field("id"), field("event"), field("data"))
                {
                    return Frame {
                        id,
                        event,
                        data: serde_json::from_str(&data).expect("data is JSON"),
                    };
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .expect("an event within 40 s")
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

impl Events {
    /// Whether the server ends the stream within 20 s (frames before the end are skipped).
    async fn ends(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.res.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None) | Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// The worklist's flag on `record` of `patient`.
async fn flag_on(app: &TestApp, token: &str, patient: &str, record: String) -> Value {
    let res = app
        .get_as(&format!("/v1/flags?patient_id={patient}&limit=500"), token)
        .await;
    let items: Value = res.json().await.unwrap();
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["record_id"] == record.as_str())
        .cloned()
        .unwrap()
}

api_test!(
    the_stream_tells_the_clinics_events_as_they_commit_and_resumes_after_the_last_seen,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let ridge = app.clinic(&admin, "Ridge").await;
        let patient = app.new_patient(&harbour.clinician).await;
        let elsewhere = app.new_patient(&ridge.clinician).await;
        let mut events = Events::open(&app, &harbour.clinician.access_token, None).await;

        let answered = app.phq9_answering(&harbour.clinician, &patient, 1).await;
        let created = events.next().await;
        assert_eq!(created.event, "assessment.created");
        assert_eq!(created.data["type"], "assessment.created");
        assert_eq!(created.data["data"]["record_id"], answered.as_str());
        assert_eq!(created.data["data"]["patient_id"], patient.as_str());
        let raised = events.next().await;
        assert_eq!(raised.event, "flag.raised");
        let data = &raised.data["data"];
        assert_eq!(
            (&data["kind"], &data["level"], &data["record_id"]),
            (
                &json!("suicidal_ideation"),
                &json!("urgent"),
                &json!(answered)
            )
        );
        // Thin: ids, kind, level and time; never the answers or the flag's detail.
        let keys: Vec<&str> = data
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "flag_id",
                "kind",
                "level",
                "patient_id",
                "record_id",
                "record_type"
            ]
        );

        // Another clinic's event is not shown: the next one here is this clinic's.
        app.phq9_answering(&ridge.clinician, &elsewhere, 0).await;
        let flag = data["flag_id"].as_str().unwrap().to_owned();
        let res = app
            .post_as(
                &format!("/v1/flags/{flag}/acknowledge"),
                &harbour.clinician.access_token,
                &json!({"note": "Called the patient; safety plan reviewed."}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let acknowledged = events.next().await;
        assert_eq!(acknowledged.event, "flag.acknowledged");
        assert_eq!(acknowledged.data["data"]["flag_id"], flag.as_str());
        assert!(
            !acknowledged.data.to_string().contains("safety plan"),
            "the note stays out"
        );
        drop(events);

        // What committed while the screen was away arrives when it comes back, on another
        // process, after the last event it saw and nothing before it.
        let missed = app.phq9_answering(&harbour.clinician, &patient, 0).await;
        let other = app.second_instance().await;
        let mut resumed = Events::open(
            &other,
            &harbour.clinician.access_token,
            Some(&acknowledged.id),
        )
        .await;
        let next = resumed.next().await;
        assert_eq!(next.event, "assessment.created");
        assert_eq!(next.data["data"]["record_id"], missed.as_str());

        // The events shown are a read of the patient's data, audited.
        let audited = eventually(
            || audit_events(&app, &patient, Some("events_streamed")),
            |n| *n >= 1,
        )
        .await;
        assert!(audited >= 1, "streamed events are audited");
    }
);

api_test!(
    a_stream_is_for_a_clinician_with_an_id_it_sent_and_a_bounded_number_per_account,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let phone = app.patient_app(&clinic.clinician, &patient).await;
        for who in [&admin, &phone] {
            let res = app.get_as("/v1/flags/stream", &who.access_token).await;
            assert_eq!(res.status(), 403, "{}", who.email);
        }
        let res = app
            .client
            .get(app.url("/v1/flags/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        for bad in [
            "nope",
            "-1",
            "12.not-a-uuid",
            "x.3fa85f64-5717-4562-b3fc-2c963f66afa6",
            // A position this database never handed out (it was restored from a backup).
            "9223372036854775000",
        ] {
            let res = app
                .client
                .get(app.url("/v1/flags/stream"))
                .bearer_auth(&token)
                .header("Last-Event-ID", bad)
                .send()
                .await
                .unwrap();
            let (status, _, body) = problem(res).await;
            assert_eq!(status, 422, "{bad}");
            assert_eq!(body["errors"][0]["field"], "Last-Event-ID", "{bad}: {body}");
        }
        let mut open = Vec::new();
        for _ in 0..4 {
            open.push(Events::open(&app, &token, None).await);
        }
        let (status, _, _) = problem(app.get_as("/v1/flags/stream", &token).await).await;
        assert_eq!(status, 429, "a fifth stream of one account");
        open.pop();
        // The slot comes back once the server finds the stream gone: its next write after
        // the client left (a heartbeat at most 5 s later) fails.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let reopened = loop {
            let status = app
                .get_as("/v1/flags/stream", &token)
                .await
                .status()
                .as_u16();
            if status != 429 || std::time::Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(reopened, 200);

        // A sign-out everywhere ends the account's streams too, not only its next request.
        let other = app.clinic(&admin, "Ridge").await.clinician.access_token;
        let mut watching = Events::open(&app, &other, None).await;
        let res = app
            .post_as("/v1/me/sign-out-everywhere", &other, &json!(null))
            .await;
        assert!(res.status().is_success(), "{}", res.status());
        assert!(watching.ends().await, "the stream ends within a heartbeat");
    }
);

api_test!(
    a_screen_that_saw_no_event_resumes_where_its_stream_was,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let before = app.phq9_answering(&clinic.clinician, &patient, 0).await;
        // A stream starts at the horizon: a commit still above it would be shown too.
        app.horizon_passes_every_commit().await;
        let mut quiet = Events::open(&app, &token, None).await;
        // The opening frame says where the stream stands; no event follows.
        let waited = tokio::time::timeout(Duration::from_secs(2), quiet.next()).await;
        assert!(waited.is_err(), "no event while nothing happens");
        let position = quiet.last_id.clone().expect("the opening frame's id");
        drop(quiet);

        let missed = app.phq9_answering(&clinic.clinician, &patient, 0).await;
        let mut resumed = Events::open(&app, &token, Some(&position)).await;
        let next = resumed.next().await;
        assert_eq!(
            next.data["data"]["record_id"],
            missed.as_str(),
            "not {before}"
        );
    }
);

api_test!(
    an_event_commits_with_its_write_or_not_at_all,
    |app| async move {
        use ketamine_outcomes::domain::events::EventBody;
        use ketamine_outcomes::domain::flags::FlaggedRecord;
        use ketamine_outcomes::domain::ids::{ClinicId, PatientId};
        use ketamine_outcomes::store::{outbox, Position, StoreError};

        let admin = app.sign_in_admin().await;
        let clinic = app.create_clinic(&admin, "Harbour").await;
        let clinician = app.sign_in_new(&admin, "clinician", Some(&clinic)).await;
        let patient = app.new_patient(&clinician).await;
        let patient_id: PatientId = patient.parse().unwrap();
        let clinic_id: ClinicId = clinic.parse().unwrap();
        let told = |record: &'static str| {
            EventBody::created(FlaggedRecord::Session, record, patient_id, Utc::now()).unwrap()
        };
        let rolled_back = told("rolled-back");
        let failed: Result<(), StoreError> = app
            .database()
            .transaction(move |conn| {
                outbox::tell(conn, &rolled_back)?;
                Err(StoreError::Conflict)
            })
            .await;
        assert!(failed.is_err());
        let committed = told("committed");
        app.database()
            .transaction(move |conn| outbox::tell(conn, &committed))
            .await
            .unwrap();
        let records = eventually(
            || async {
                app.database()
                    .snapshot(move |conn| {
                        let start = Position {
                            change_seq: 0,
                            id: None,
                        };
                        outbox::of_clinic_after(conn, clinic_id, &start, 100)
                    })
                    .await
                    .unwrap()
                    .0
                    .into_iter()
                    .map(|row| serde_json::from_str::<Value>(&row.payload).unwrap())
                    .map(|body| body["data"]["record_id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            },
            |records| records.contains(&"committed".to_owned()),
        )
        .await;
        assert_eq!(records, ["committed"]);
    }
);

api_test!(
    an_urgent_flag_left_unacknowledged_is_escalated_once_and_told_to_the_stream,
    |app| async move {
        use diesel::prelude::*;
        use ketamine_outcomes::clock;
        use ketamine_outcomes::store::schema::flags;
        use ketamine_outcomes::store::StoreError;

        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let urgent_flag = |record: String| flag_on(&app, &token, &patient, record);
        let left_open = app.phq9_answering(&clinic.clinician, &patient, 2).await;
        let answered = app.phq9_answering(&clinic.clinician, &patient, 1).await;
        let answered_flag = urgent_flag(answered.clone()).await["id"].clone();
        let res = app
            .post_as(
                &format!("/v1/flags/{}/acknowledge", answered_flag.as_str().unwrap()),
                &token,
                &json!({"note": "Seen in clinic the same hour."}),
            )
            .await;
        assert_eq!(res.status(), 200);
        app.horizon_passes_every_commit().await;
        let mut events = Events::open(&app, &token, None).await;
        // Twenty minutes pass (the flags' raising is moved back; the default time is 15).
        let aged_patient = patient.clone();
        app.database()
            .transaction(move |conn| {
                diesel::update(flags::table.filter(flags::patient_id.eq(aged_patient)))
                    .set(
                        flags::raised_at
                            .eq(clock::to_db(Utc::now() - chrono::Duration::minutes(20))),
                    )
                    .execute(conn)
                    .map_err(StoreError::from)
            })
            .await
            .unwrap();
        let fresh = app.phq9_answering(&clinic.clinician, &patient, 1).await;

        // The fresh answer's two events and the escalation, in whichever order the check's
        // tick (one a second here) falls.
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(events.next().await);
        }
        let (escalated, seen): (Vec<Frame>, Vec<Frame>) = frames
            .into_iter()
            .partition(|frame| frame.event == "flag.escalated");
        let [escalated] = escalated.as_slice() else {
            panic!("one escalation among the three: {escalated:?} {seen:?}");
        };
        assert_eq!(escalated.data["data"]["record_id"], left_open.as_str());
        assert_eq!(escalated.data["data"]["level"], "urgent");
        let seen: Vec<&str> = seen.iter().map(|frame| frame.event.as_str()).collect();
        assert_eq!(
            seen,
            ["assessment.created", "flag.raised"],
            "the fresh answer's"
        );

        // Escalated once, however many checks pass (one a second here); the acknowledged
        // flag and the fresh one are not.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let flag = urgent_flag(left_open.clone()).await;
        assert!(flag["escalated_at"].is_string(), "{flag}");
        for record in [answered, fresh.clone()] {
            let flag = urgent_flag(record).await;
            assert!(flag["escalated_at"].is_null(), "{flag}");
        }
        let more = app.phq9_answering(&clinic.clinician, &patient, 0).await;
        let next = events.next().await;
        assert_eq!(
            (next.event.as_str(), &next.data["data"]["record_id"]),
            ("assessment.created", &json!(more)),
            "no second escalation came before it"
        );
    }
);
