//! The OpenAPI 3.1 document: the operations `api::routes` registers (each handler's
//! `#[utoipa::path]`, collected by utoipa-actix-web as the routes are), on a base of what no
//! operation states — the title, the security scheme, the shared problem documents, the tags.
//! It is the contract that clients are generated from; `openapi/openapi.json` holds the
//! committed copy.

use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::api;
use crate::api::courses::CreateCourseRequest;
use crate::api::patients::CreatePatientRequest;
use crate::api::sessions::CreateSessionRequest;
use crate::api::side_effects::CreateSideEffectRequest;
use crate::api::wire::Patchable;
use crate::domain::flags::FlagStatus;
use crate::error::{responses, FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ketamine-outcomes",
        description = "Records ketamine treatment, scores questionnaires as the published \
            instruments define, flags what a clinician must see, and answers de-identified \
            research questions. Errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
        contact(name = "The ketamine-outcomes maintainers"),
    ),
    servers((url = "/", description = "The server this document is served from")),
    components(
        schemas(
            Problem,
            FieldError,
            FlagStatus,
            crate::domain::fhir::ResourceType,
            crate::domain::research::Dimension,
            // A row of the export, which is served as text: for clients that parse it.
            crate::research::export::ExportRow,
            crate::research::export::run::Format,
            // An event of the flag stream, which is served as text.
            crate::domain::events::EventBody,
        ),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::InvalidCredentials,
            responses::Forbidden,
            responses::NotFound,
            responses::Conflict,
            responses::PreconditionFailed,
            responses::Unprocessable,
            responses::TooManyRequests,
            responses::Unavailable,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
        ),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Probes and metrics for operators"),
        (name = "auth", description = "Sign-in, token refresh and sign-out"),
        (name = "me", description = "The signed-in caller's own account"),
        (name = "administration", description = "Clinics, accounts and the audit trail (administrators)"),
        (name = "reference", description = "The instrument table, the side-effect catalogue and the protocols"),
        (name = "patients", description = "Patients, their app invites and their timeline (clinicians; patients read their own)"),
        (name = "courses", description = "Courses of treatment and their schedules"),
        (name = "sessions", description = "Infusions with dose and vital signs"),
        (name = "assessments", description = "Questionnaires, scored by the server"),
        (name = "side effects", description = "Side-effect reports"),
        (name = "outcomes", description = "Per-infusion durability and per-course response, kept current by every write"),
        (name = "flags", description = "The safety worklist"),
        (name = "notifications", description = "A clinic's webhook endpoints, signed by the Standard Webhooks specification, and their delivery logs (administrators; the clinic's clinicians read endpoints)"),
        (name = "fhir", description = "The record in HL7 FHIR R4 for EHRs and FHIR-based apps: a patient's Bundle, QuestionnaireResponses taken in as assessments, the CapabilityStatement"),
        (name = "research", description = "Aggregates of consenting patients: differentially private (aggregate tier) or exact with small cells withheld (controlled tier), and the controlled tier's k-anonymous export (researchers)"),
        (name = "research grants", description = "The controlled tier of research access and every researcher's privacy budget (administrators)"),
    ),
)]
pub struct ApiDoc;

struct BearerAuth;

/// Every operation of the document, to change in place.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
    })
}

/// utoipa makes a handler's whole first doc paragraph the operation's summary and leaves the
/// description empty when there is no second paragraph. A summary is a title (a generated
/// client's docstring headline, a line in a list): it keeps the first sentence, on one line,
/// and the paragraph becomes the description.
struct Descriptions;

impl Modify for Descriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations(openapi) {
            let Some(summary) = operation.summary.take() else {
                continue;
            };
            let paragraph = summary.split_whitespace().collect::<Vec<_>>().join(" ");
            let first = match paragraph.find(". ") {
                Some(end) => &paragraph[..=end],
                None => paragraph.as_str(),
            };
            operation.summary = Some(first.trim_end_matches('.').to_owned());
            let description = operation.description.take().unwrap_or_default();
            let description = description.trim_start();
            operation.description = Some(if description.is_empty() {
                paragraph
            } else {
                format!("{paragraph}\n\n{description}")
            });
        }
    }
}

/// `security(())` states "no token needed" as one empty requirement (`[{}]`), which generated
/// clients read as "a token, possibly empty" and ask an authenticated client for: state it as
/// no requirement at all (`[]`).
struct Anonymous;

impl Modify for Anonymous {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations(openapi) {
            if let Some(requirements) = operation.security.as_mut() {
                requirements.retain(|r| *r != Default::default());
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /v1/auth/login or /v1/auth/refresh",
                    ))
                    .build(),
            ),
        );
    }
}

/// Puts the whole instrument table of domain.md §5 into the description of GET /v1/instruments,
/// so that it is visible in the document itself.
struct InstrumentTable;

impl Modify for InstrumentTable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/v1/instruments")
            .and_then(|p| p.get.as_mut())
        else {
            return;
        };
        let intro = operation.description.take().unwrap_or_default();
        operation.description = Some(format!(
            "{intro}\n\n{}",
            api::reference::instrument_table_markdown()
        ));
    }
}

/// Gives every `Paged_*` schema its item by reference and an example: one page holding its
/// item type's example. (utoipa inlines a generic's type argument; a client generated from
/// the inlined copy gets a second class for every record.)
struct PageExamples;

impl Modify for PageExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // The generic item is inlined, so its example is read from the serialised form.
        let Ok(mut value) = serde_json::to_value(&*components) else {
            return;
        };
        let Some(schemas) = value["schemas"].as_object_mut() else {
            return;
        };
        let pages: Vec<String> = schemas
            .keys()
            .filter(|name| name.starts_with("Paged_"))
            .cloned()
            .collect();
        for page in pages {
            let item_name = page.trim_start_matches("Paged_").to_owned();
            let Some(item) = schemas.get(&item_name) else {
                tracing::warn!(schema = %page, "a paged item type is no component");
                continue;
            };
            let example = item["example"].clone();
            let schema = &mut schemas[&page];
            schema["properties"]["items"]["items"] =
                serde_json::json!({"$ref": format!("#/components/schemas/{item_name}")});
            if example.is_null() {
                tracing::warn!(schema = %page, "a paged item type has no example");
                continue;
            }
            schema["example"] = serde_json::json!({"items": [example], "next_cursor": "MTc5NTYwODU1NzEyMzQ1NnwxYzRlMmE5Yg"});
        }
        if let Ok(with_examples) = serde_json::from_value(value) {
            *components = with_examples;
        }
    }
}

/// The methods the document offers for a concrete request path, if any path template matches
/// it (`/v1/sessions/{id}` matches `/v1/sessions/5f…`).
pub fn methods_of(path: &str) -> Option<Vec<&'static str>> {
    let document = contract();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (_, item) = document.paths.paths.iter().find(|(template, _)| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    })?;
    let offered = [
        ("GET", item.get.is_some()),
        ("POST", item.post.is_some()),
        ("PUT", item.put.is_some()),
        ("PATCH", item.patch.is_some()),
        ("DELETE", item.delete.is_some()),
    ];
    Some(
        offered
            .iter()
            .filter(|(_, on)| *on)
            .map(|(m, _)| *m)
            .collect(),
    )
}

/// Every answer carries `X-Request-Id` (api.md, Conventions): stated on each response, the
/// shared ones included, so a generated client can read it.
struct RequestIds;

impl Modify for RequestIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{RefOr, Response};
        let header = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                "The request's id, which names it in the server's logs: the client's own when \
                 it sent a plain one, else generated",
            ))
            .build();
        let add = |response: &mut RefOr<Response>| {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .entry("X-Request-Id".to_owned())
                    .or_insert_with(|| header.clone());
            }
        };
        for operation in operations(openapi) {
            operation.responses.responses.values_mut().for_each(add);
        }
        if let Some(components) = openapi.components.as_mut() {
            components.responses.values_mut().for_each(add);
        }
    }
}

/// Each merge patch (RFC 7396) and the create request whose fields it changes.
const PATCHED: [(&str, &str, &str); 4] = [
    (
        "/v1/patients/{id}",
        "CreatePatientRequest",
        CreatePatientRequest::PATCH,
    ),
    (
        "/v1/courses/{id}",
        "CreateCourseRequest",
        CreateCourseRequest::PATCH,
    ),
    (
        "/v1/sessions/{id}",
        "CreateSessionRequest",
        CreateSessionRequest::PATCH,
    ),
    (
        "/v1/side-effects/{id}",
        "CreateSideEffectRequest",
        CreateSideEffectRequest::PATCH,
    ),
];

/// Describes each merge-patch body by the create request it changes, so a generated client
/// gets its fields: every field optional, `null` allowed where the create request may leave
/// the field out (a null clears it), `id` left out; offered as `application/merge-patch+json`
/// and as JSON. Derived here rather than written again, so the two cannot drift.
struct MergePatches;

impl Modify for MergePatches {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Ok(mut document) = serde_json::to_value(&*openapi) else {
            return;
        };
        for (path, create, patch) in PATCHED {
            let source = document["components"]["schemas"][create].clone();
            let Some(properties) = source["properties"].as_object() else {
                tracing::warn!(schema = create, "a patched request has no properties");
                continue;
            };
            let required = source["required"].as_array().cloned().unwrap_or_default();
            let fields: serde_json::Map<String, serde_json::Value> = properties
                .iter()
                .filter(|(name, _)| name.as_str() != "id")
                .map(|(name, property)| {
                    let clearable = !required.iter().any(|r| r == name.as_str());
                    let property = if clearable {
                        nullable(property.clone())
                    } else {
                        property.clone()
                    };
                    (name.clone(), property)
                })
                .collect();
            let body = &mut document["paths"][path]["patch"]["requestBody"];
            let example = body["content"]["application/json"]["example"].clone();
            let media = serde_json::json!({
                "schema": {"$ref": format!("#/components/schemas/{patch}")},
                "example": example,
            });
            body["content"] = serde_json::json!({
                "application/merge-patch+json": media.clone(),
                "application/json": media,
            });
            document["components"]["schemas"][patch] = serde_json::json!({
                "type": "object",
                "description": format!("A JSON merge patch (RFC 7396) of a {create}'s fields: \
                    only those sent change; null on a field that may be left out gives it the \
                    value it takes when left out (none, or its default)."),
                "properties": fields,
                "additionalProperties": false,
                "example": example,
            });
        }
        match serde_json::from_value(document) {
            Ok(described) => *openapi = described,
            Err(err) => tracing::warn!(%err, "merge patches left undescribed"),
        }
    }
}

/// `property`, also allowing null.
fn nullable(mut property: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let null = Value::from("null");
    match property.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = Value::from(kind.clone());
            property["type"] = Value::Array(vec![kind, null]);
        }
        Some(Value::Array(kinds)) if !kinds.contains(&null) => kinds.push(null),
        Some(_) => {}
        None => match property.get_mut("oneOf") {
            Some(Value::Array(choices)) => {
                if !choices.iter().any(|c| c["type"] == "null") {
                    choices.push(serde_json::json!({"type": "null"}));
                }
            }
            _ => {
                let description = property
                    .as_object_mut()
                    .and_then(|p| p.remove("description"));
                let mut either = serde_json::json!({"oneOf": [property, {"type": "null"}]});
                if let Some(description) = description {
                    either["description"] = description;
                }
                return either;
            }
        },
    }
    property
}

/// Documents the answers every operation with a body can give before it runs: 413 and 415.
struct BodyErrors;

impl Modify for BodyErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        for operation in operations(openapi) {
            if operation.request_body.is_none() {
                continue;
            }
            for (status, name) in [("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")] {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
            }
        }
    }
}

/// Names the vocabularies of the export's row, which no Rust type of their own states.
struct ExportVocabulary;

impl Modify for ExportVocabulary {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in crate::research::export::vocabulary::components() {
            components.schemas.insert(name.to_owned(), schema.into());
        }
    }
}

/// The contract, built once: the base document with every operation the routes register,
/// then what is stated of all of them at once (the instrument table, the pages' examples, the
/// answers to a body before it is read).
pub fn contract() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, operations) = actix_web::App::new()
            .into_utoipa_app()
            .configure(api::routes)
            .split_for_parts();
        let mut document = ApiDoc::openapi();
        document.merge(operations);
        for modifier in [
            &InstrumentTable as &dyn Modify,
            &ExportVocabulary,
            &PageExamples,
            &BodyErrors,
            &RequestIds,
            &MergePatches,
            &Anonymous,
            &Descriptions,
        ] {
            modifier.modify(&mut document);
        }
        document
    })
}

/// The document as this deployment serves it: the contract, led by the deployment's public
/// URL (`KO_PUBLIC_URL`) when it names one.
pub fn served(public_url: Option<&str>) -> utoipa::openapi::OpenApi {
    let mut document = contract().clone();
    if let Some(url) = public_url {
        let public = utoipa::openapi::server::ServerBuilder::new()
            .url(url)
            .description(Some("This deployment"))
            .build();
        document
            .servers
            .get_or_insert_with(Vec::new)
            .insert(0, public);
    }
    document
}

/// The document as committed and served: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = contract()
        .to_pretty_json()
        .expect("the document serialises");
    json.push('\n');
    json
}
