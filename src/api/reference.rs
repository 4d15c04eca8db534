//! Reference data any signed-in caller may read: the instrument table (domain.md §5), the
//! side-effect catalogue (§4) and the protocols (§2), straight from the domain definitions.

use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::call::Call;
use crate::domain::instrument::{Direction, Instrument, Rater, RemissionCutOffs, ResponseRule};
use crate::domain::schedule::{
    Protocol, INDUCTION_DAY_OFFSETS, MAINTENANCE_INTERVAL_DAYS, SLOT_TOLERANCE_DAYS,
};
use crate::domain::side_effect::{Effect, Severity};
use crate::error::responses::SignedIn;
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "moderate", "min": 10, "max": 14}))]
pub struct BandResponse {
    pub name: &'static str,
    pub min: i32,
    pub max: i32,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"kind": "percent_fall", "value": 0.5}))]
pub struct ResponseRuleResponse {
    /// `percent_fall` (sev ≤ B × (1 − value)) or `points_fall` (B − sev ≥ value).
    pub kind: &'static str,
    pub value: f64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"panel": "44249-1", "total": "44261-6", "item9": "44260-8"}))]
pub struct LoincResponse {
    #[schema(required = true)]
    pub panel: Option<&'static str>,
    pub total: &'static str,
    /// PHQ-9 item 9, the suicidal-ideation item.
    #[schema(required = true)]
    pub item9: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"code": "phq9", "title": "PHQ-9 depression", "rated_by": "patient", "items": 9, "item_min": 0,
    "item_max": 3, "total_min": 0, "total_max": 27, "bands": [{"name": "minimal", "min": 0, "max": 4}, {"name": "mild", "min": 5, "max": 9},
    {"name": "moderate", "min": 10, "max": 14}, {"name": "moderately_severe", "min": 15, "max": 19}, {"name": "severe", "min": 20, "max": 27}],
    "remission_max": 4, "response": {"kind": "percent_fall", "value": 0.5}, "minimal_important_change": 5,
    "direction": "lower_is_better", "loinc": {"panel": "44249-1", "total": "44261-6", "item9": "44260-8"}, "is_outcome": true}))]
pub struct InstrumentResponse {
    pub code: Instrument,
    pub title: &'static str,
    /// `patient` instruments may be submitted through the app; `clinician` ones only by staff.
    pub rated_by: Rater,
    pub items: usize,
    pub item_min: i32,
    pub item_max: i32,
    pub total_min: i32,
    pub total_max: i32,
    pub bands: Vec<BandResponse>,
    /// A total at or below this is a remission.
    #[schema(required = true)]
    pub remission_max: Option<i32>,
    #[schema(required = true)]
    pub response: Option<ResponseRuleResponse>,
    /// Minimal important change, in points, for session benefit.
    #[schema(required = true)]
    pub minimal_important_change: Option<i32>,
    pub direction: Direction,
    #[schema(required = true)]
    pub loinc: Option<LoincResponse>,
    /// False for cadss, which measures a side effect and enters no outcome.
    pub is_outcome: bool,
}

/// The instrument table, with the deployment's remission cut-offs.
pub fn instruments(remission: &RemissionCutOffs) -> Vec<InstrumentResponse> {
    Instrument::ALL
        .iter()
        .map(|i| {
            let d = i.definition();
            InstrumentResponse {
                code: *i,
                title: d.title,
                rated_by: d.rater,
                items: d.items,
                item_min: d.item_min,
                item_max: d.item_max,
                total_min: 0,
                total_max: d.total_max(),
                bands: d
                    .bands
                    .iter()
                    .map(|b| BandResponse {
                        name: b.name,
                        min: b.min,
                        max: b.max,
                    })
                    .collect(),
                remission_max: remission.of(*i),
                response: d.response.map(|r| match r {
                    ResponseRule::PercentFall(p) => ResponseRuleResponse {
                        kind: "percent_fall",
                        value: p,
                    },
                    ResponseRule::PointsFall(k) => ResponseRuleResponse {
                        kind: "points_fall",
                        value: f64::from(k),
                    },
                }),
                minimal_important_change: d.mic,
                direction: d.direction,
                loinc: d.loinc.map(|l| LoincResponse {
                    panel: l.panel,
                    total: l.total,
                    item9: l.item9,
                }),
                is_outcome: d.is_outcome,
            }
        })
        .collect()
}

/// The instrument table as Markdown, for the OpenAPI document's description of
/// GET /v1/instruments.
pub fn instrument_table_markdown() -> String {
    let mut table = String::from(
        "| code | instrument | by | items × range | total | bands | remission | response | MIC | LOINC |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for i in instruments(&RemissionCutOffs::default()) {
        let bands: Vec<String> = i
            .bands
            .iter()
            .map(|b| format!("{} {}–{}", b.name, b.min, b.max))
            .collect();
        let response = i.response.map_or("—".into(), |r| match r.kind {
            "percent_fall" => format!("≥ {} % fall", (r.value * 100.0).round()),
            _ => format!("≥ {} points fall", r.value),
        });
        let loinc = i.loinc.map_or("—".into(), |l| format!("total {}", l.total));
        table.push_str(&format!(
            "| `{}` | {} | {} | {} × {}–{} | {}–{} | {} | {} | {} | {} | {} |\n",
            i.code,
            i.title,
            i.rated_by,
            i.items,
            i.item_min,
            i.item_max,
            i.total_min,
            i.total_max,
            if bands.is_empty() {
                "—".into()
            } else {
                bands.join(", ")
            },
            i.remission_max.map_or("—".into(), |r| format!("≤ {r}")),
            response,
            i.minimal_important_change
                .map_or("—".into(), |m| m.to_string()),
            loinc,
        ));
    }
    table
}

/// Every instrument with its items, ranges, bands, cut-offs and who may submit it.
#[utoipa::path(
    tag = "reference",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The instrument table", body = Vec<InstrumentResponse>),
        SignedIn,
    )
)]
#[get("/v1/instruments")]
pub async fn list_instruments(call: Call) -> Result<HttpResponse, ApiError> {
    call.confirmed().await?;
    Ok(HttpResponse::Ok().json(instruments(&call.clinical().remission)))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"effect": "nausea", "source_wording": "nausea", "expected_resolution_hours": 24, "always_flagged": false,
    "requires_note": false, "patient_severities": ["mild", "moderate", "severe"]}))]
pub struct SideEffectKindResponse {
    pub effect: Effect,
    /// The wording of the clinical source list, where the catalogue took the effect from it.
    #[schema(required = true)]
    pub source_wording: Option<&'static str>,
    /// Unresolved longer than this after onset, a report is persistent; null when the effect
    /// is never expected and is always flagged.
    #[schema(required = true)]
    pub expected_resolution_hours: Option<i64>,
    pub always_flagged: bool,
    /// `other` requires a note.
    pub requires_note: bool,
    /// The severities a patient may report (a clinician may also report life_threatening).
    pub patient_severities: Vec<Severity>,
}

/// The side-effect catalogue.
#[utoipa::path(
    tag = "reference",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The side-effect catalogue", body = Vec<SideEffectKindResponse>),
        SignedIn,
    )
)]
#[get("/v1/side-effect-kinds")]
pub async fn list_side_effect_kinds(call: Call) -> Result<HttpResponse, ApiError> {
    call.confirmed().await?;
    let persistence = call.clinical().persistence;
    let kinds: Vec<SideEffectKindResponse> = Effect::ALL
        .iter()
        .map(|e| SideEffectKindResponse {
            effect: *e,
            source_wording: e.source_wording(),
            expected_resolution_hours: e.expected_resolution(persistence).map(|d| d.num_hours()),
            always_flagged: e.expected_resolution(persistence).is_none(),
            requires_note: *e == Effect::Other,
            patient_severities: vec![Severity::Mild, Severity::Moderate, Severity::Severe],
        })
        .collect();
    Ok(HttpResponse::Ok().json(kinds))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"protocol": "standard_induction", "description": "Week 1 three infusions, week 2 two, weeks 3–5 one a week, then monthly maintenance as needed.",
    "induction_day_offsets": [0, 2, 4, 7, 10, 14, 21, 28], "maintenance_interval_days": 28, "slot_tolerance_days": 3}))]
pub struct ProtocolResponse {
    pub protocol: Protocol,
    pub description: &'static str,
    /// Planned days from the course's start; empty for custom (the course lists its dates).
    pub induction_day_offsets: Vec<i64>,
    #[schema(required = true)]
    pub maintenance_interval_days: Option<i64>,
    /// A completed session fills a slot within this many days either side; later is missed.
    pub slot_tolerance_days: i64,
}

/// The treatment protocols.
#[utoipa::path(
    tag = "reference",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The protocols", body = Vec<ProtocolResponse>),
        SignedIn,
    )
)]
#[get("/v1/protocols")]
pub async fn list_protocols(call: Call) -> Result<HttpResponse, ApiError> {
    call.confirmed().await?;
    Ok(HttpResponse::Ok().json([
        ProtocolResponse {
            protocol: Protocol::StandardInduction,
            description: "Week 1 three infusions, week 2 two, weeks 3–5 one a week, then monthly maintenance as needed, planned one at a time.",
            induction_day_offsets: INDUCTION_DAY_OFFSETS.to_vec(),
            maintenance_interval_days: Some(MAINTENANCE_INTERVAL_DAYS),
            slot_tolerance_days: SLOT_TOLERANCE_DAYS,
        },
        ProtocolResponse {
            protocol: Protocol::Custom,
            description: "An explicit list of planned dates.",
            induction_day_offsets: vec![],
            maintenance_interval_days: None,
            slot_tolerance_days: SLOT_TOLERANCE_DAYS,
        },
    ]))
}
