//! The research API (domain.md §8): de-identified aggregates of consenting patients, with
//! small-cell suppression, and a streamed row-level export. Researchers only; every query
//! reads from the research pool.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::stream;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::caller::Caller;
use crate::charts;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::account::Role;
use crate::domain::instrument::Instrument;
use crate::domain::patient::{Indication, Sex};
use crate::domain::research::Dimension;
use crate::domain::schedule::Phase;
use crate::domain::treatment::Route;
use crate::error::ApiError;
use crate::research::{self, DerivedFilter, Group, OutcomeRow, SideEffectRow, TrajectoryRow};
use crate::startup::ResearchDb;
use crate::store::research::{self as facts, ResearchFilter};
use crate::store::StoreError;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResearchQuery {
    /// Restricts to courses with this primary instrument (outcomes), or the instrument drawn
    /// (trajectories, required there).
    pub instrument: Option<Instrument>,
    /// Comma-separated dimensions: indication, route, dose_band, sex, age_band, clinic, phase,
    /// adherence_band.
    #[param(example = "indication,route")]
    pub group_by: Option<String>,
    /// Overrides W, the wear-off threshold in days, for this query (1–60).
    #[param(minimum = 1, maximum = 60)]
    pub wear_off_days: Option<u32>,
    pub indication: Option<Indication>,
    pub route: Option<Route>,
    /// `lt_0.5`, `0.5_to_0.75`, `0.75_to_1.0` or `ge_1.0` (mg/kg).
    #[param(pattern = r"^(lt_0\.5|0\.5_to_0\.75|0\.75_to_1\.0|ge_1\.0)$")]
    pub dose_band: Option<String>,
    pub sex: Option<Sex>,
    /// A 10-year band such as `40-49`, or `90+`.
    #[param(pattern = r"^(0-9|10-19|20-29|30-39|40-49|50-59|60-69|70-79|80-89|90\+)$")]
    pub age_band: Option<String>,
    /// A clinic's id.
    pub clinic: Option<Uuid>,
    pub phase: Option<Phase>,
    /// The course's measurement-plan adherence: `none` (nothing due yet), `lt_50`,
    /// `50_to_80` or `ge_80` (per cent of due items completed on time).
    #[param(pattern = "^(none|lt_50|50_to_80|ge_80)$")]
    pub adherence_band: Option<String>,
    /// Records at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Records before this instant.
    pub to: Option<DateTime<Utc>>,
}

const DOSE_BANDS: [&str; 4] = ["lt_0.5", "0.5_to_0.75", "0.75_to_1.0", "ge_1.0"];
const ADHERENCE_BANDS: [&str; 4] = ["none", "lt_50", "50_to_80", "ge_80"];

fn is_age_band(band: &str) -> bool {
    band == "90+"
        || band.split_once('-').is_some_and(|(lo, hi)| {
            lo.parse::<u32>()
                .is_ok_and(|lo| lo % 10 == 0 && lo < 90 && hi.parse::<u32>() == Ok(lo + 9))
        })
}

impl ResearchQuery {
    fn group_by(&self) -> Result<Vec<Dimension>, ApiError> {
        let mut dims = Vec::new();
        for name in self
            .group_by
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let dim: Dimension = name
                .parse()
                .map_err(|rule: String| ApiError::invalid("group_by", rule))?;
            if dims.contains(&dim) {
                return Err(ApiError::invalid("group_by", format!("names {name} twice")));
            }
            dims.push(dim);
        }
        Ok(dims)
    }

    fn filters(&self) -> Result<(ResearchFilter, DerivedFilter), ApiError> {
        self.chosen_wear_off_days()?;
        if self
            .dose_band
            .as_deref()
            .is_some_and(|d| !DOSE_BANDS.contains(&d))
        {
            return Err(ApiError::invalid(
                "dose_band",
                "must be one of lt_0.5, 0.5_to_0.75, 0.75_to_1.0, ge_1.0",
            ));
        }
        if self
            .adherence_band
            .as_deref()
            .is_some_and(|a| !ADHERENCE_BANDS.contains(&a))
        {
            return Err(ApiError::invalid(
                "adherence_band",
                "must be one of none, lt_50, 50_to_80, ge_80",
            ));
        }
        if self.age_band.as_deref().is_some_and(|a| !is_age_band(a)) {
            return Err(ApiError::invalid(
                "age_band",
                "must be a 10-year band such as 40-49, or 90+",
            ));
        }
        let range = crate::domain::time::Range::parse(self.from, self.to)
            .map_err(crate::api::records::rules_broken)?;
        Ok((
            ResearchFilter {
                clinic_id: self.clinic.map(|c| c.to_string()),
                indication: self.indication.map(|i| i.as_str().to_owned()),
                route: self.route.map(|r| r.as_str().to_owned()),
                sex: self.sex.map(|s| s.as_str().to_owned()),
                from: range.from.map(clock::to_db),
                to: range.to.map(clock::to_db),
            },
            DerivedFilter {
                dose_band: self.dose_band.clone(),
                age_band: self.age_band.clone(),
                phase: self.phase.map(|p| p.as_str().to_owned()),
                adherence_band: self.adherence_band.clone(),
            },
        ))
    }

    fn wear_off_days(&self, settings: &ClinicalSettings) -> Result<f64, ApiError> {
        Ok(self
            .chosen_wear_off_days()?
            .unwrap_or(settings.wear_off_days))
    }

    /// W as the query chose it, if it did: refused out of range on every research endpoint,
    /// including those that do not use it, as the document states one range for all.
    fn chosen_wear_off_days(&self) -> Result<Option<f64>, ApiError> {
        match self.wear_off_days {
            None => Ok(None),
            Some(days @ 1..=60) => Ok(Some(f64::from(days))),
            Some(_) => Err(ApiError::invalid("wear_off_days", "must be from 1 to 60")),
        }
    }
}

fn suppressed_groups<'a>(rows: impl Iterator<Item = (&'a Group, bool)>) -> Vec<Group> {
    rows.filter(|(_, hidden)| *hidden)
        .map(|(g, _)| g.clone())
        .collect()
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"k": 11, "wear_off_days": 7.0, "instrument": "phq9", "group_by": ["route"],
    "rows": [{"group": {"route": "im"}, "suppressed": true, "patients": null, "courses": null, "sessions": null,
    "course_baseline_mean": null, "course_baseline_sd": null, "course_baseline_n": null,
    "end_of_induction_response": {"numerator": null, "denominator": null, "rate": null},
    "end_of_induction_remission": {"numerator": null, "denominator": null, "rate": null},
    "median_time_to_response_days": null, "session_benefit": {"numerator": null, "denominator": null, "rate": null},
    "km_median_durability_days": null, "wears_off_within_days": {"numerator": null, "denominator": null, "rate": null},
    "mean_charge_per_course_cents": null, "charge_per_responder_cents": null, "sessions_with_follow_up": null,
    "adherence": {"numerator": null, "denominator": null, "rate": null}}],
    "suppressed_groups": [{"route": "im"}]}))]
pub struct ResearchOutcomesResponse {
    /// The small-cell threshold: rows with fewer distinct patients are suppressed.
    pub k: usize,
    /// W used for this query.
    pub wear_off_days: f64,
    pub instrument: Option<Instrument>,
    pub group_by: Vec<Dimension>,
    pub rows: Vec<OutcomeRow>,
    /// The groups whose figures are suppressed (fewer than k patients, or the complement).
    #[schema(value_type = Vec<Object>)]
    pub suppressed_groups: Vec<Group>,
}

/// Outcome aggregates per group, of patients consenting now.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "One row per group", body = ResearchOutcomesResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/outcomes")]
pub async fn research_outcomes(
    caller: Caller,
    query: web::Query<ResearchQuery>,
    db: web::Data<ResearchDb>,
    settings: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    let group_by = query.group_by()?;
    let (filter, derived) = query.filters()?;
    let wear_off_days = query.wear_off_days(&settings)?;
    let instrument = query.instrument;
    let k = settings.min_cell;
    let dims = group_by.clone();
    let rows =
        db.0.run(move |conn| -> Result<_, StoreError> {
            let ctx = Derivations::load(conn, &filter, &derived, &dims)?;
            let mut aggregate = research::OutcomeAggregate::new(&dims, wear_off_days);
            each_session(conn, &filter, &derived, &ctx, |p| {
                if instrument.is_none_or(|i| p.fact.primary_instrument == i.as_str()) {
                    aggregate.add(p);
                }
            })?;
            let course_ids = aggregate.course_ids();
            let courses = facts::course_facts(conn, &course_ids)?
                .into_iter()
                .map(|c| (c.0.clone(), c))
                .collect();
            let adherence = course_adherence(conn, &course_ids)?;
            Ok(aggregate.rows(&courses, &adherence, instrument.is_some(), k))
        })
        .await?;
    let suppressed_groups = suppressed_groups(rows.iter().map(|r| (&r.group, r.suppressed)));
    Ok(HttpResponse::Ok().json(ResearchOutcomesResponse {
        k,
        wear_off_days,
        instrument,
        group_by,
        rows,
        suppressed_groups,
    }))
}

/// Each course's measurement-plan adherence now: (completed on time, due). The records the
/// plans are checked against are loaded for a few hundred patients at a time.
fn course_adherence(
    conn: &mut crate::store::DbConnection,
    course_ids: &[String],
) -> Result<HashMap<String, (usize, usize)>, StoreError> {
    let now = clock::now();
    let mut by_patient: HashMap<String, Vec<_>> = HashMap::new();
    for course in facts::courses_by_id(conn, course_ids)? {
        by_patient
            .entry(course.patient_id.clone())
            .or_default()
            .push(course);
    }
    let patients: Vec<String> = by_patient.keys().cloned().collect();
    let mut adherence = HashMap::new();
    for chunk in patients.chunks(500) {
        let records = crate::api::plan::PlanRecords::load(conn, chunk)?;
        for course in chunk.iter().flat_map(|p| &by_patient[p]) {
            let items = records.due_for_course(course, now);
            adherence.insert(course.id.clone(), crate::domain::plan::adherence(&items));
        }
    }
    Ok(adherence)
}

/// What dimensions are derived from beyond a session's own row: each patient's first
/// session (age band), and each course's adherence (only when a query asks for its band).
struct Derivations {
    firsts: HashMap<String, chrono::NaiveDateTime>,
    adherence: HashMap<String, (usize, usize)>,
}

impl Derivations {
    fn load(
        conn: &mut crate::store::DbConnection,
        filter: &ResearchFilter,
        derived: &DerivedFilter,
        group_by: &[Dimension],
    ) -> Result<Self, StoreError> {
        let mut ctx = Self {
            firsts: first_sessions(conn)?,
            adherence: HashMap::new(),
        };
        if derived.adherence_band.is_some() || group_by.contains(&Dimension::AdherenceBand) {
            let mut courses = std::collections::HashSet::new();
            let everything = DerivedFilter::default();
            each_session(conn, filter, &everything, &ctx, |p| {
                courses.insert(p.fact.course_id.clone());
            })?;
            ctx.adherence = course_adherence(conn, &courses.into_iter().collect::<Vec<_>>())?;
        }
        Ok(ctx)
    }
}

/// Rows per database round trip of an aggregate.
const PAGE: i64 = 2000;

/// Feeds every session fact the filters allow to `add`, a page at a time.
fn each_session(
    conn: &mut crate::store::DbConnection,
    filter: &ResearchFilter,
    derived: &DerivedFilter,
    ctx: &Derivations,
    mut add: impl FnMut(&research::Placed<'_>),
) -> Result<(), StoreError> {
    let mut after: Option<String> = None;
    loop {
        let page = facts::session_facts(conn, filter, after.as_deref(), PAGE)?;
        for placed in research::place(&page, &ctx.firsts, &ctx.adherence, derived) {
            add(&placed);
        }
        if (page.len() as i64) < PAGE {
            return Ok(());
        }
        after = page.last().map(|s| s.session_id.clone());
    }
}

fn first_sessions(
    conn: &mut crate::store::DbConnection,
) -> Result<HashMap<String, chrono::NaiveDateTime>, StoreError> {
    Ok(facts::first_sessions(conn)?
        .into_iter()
        .filter_map(|(p, t)| Some((p, t?)))
        .collect())
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"k": 11, "group_by": ["route"], "rows": [{"group": {"route": "iv"}, "effect": "nausea", "suppressed": false,
    "patients": 18, "reports": 31, "sessions": 240, "sessions_with_effect_per_100": 12.5,
    "severity_counts": {"mild": 20, "moderate": 9, "severe": 2, "life_threatening": 0}, "median_hours_to_resolution": 3.5,
    "share_unresolved": 0.0323}], "suppressed_groups": []}))]
pub struct ResearchSideEffectsResponse {
    pub k: usize,
    pub group_by: Vec<Dimension>,
    /// One row per group and effect; suppression applies among the groups of one effect.
    pub rows: Vec<SideEffectRow>,
    #[schema(value_type = Vec<Object>)]
    pub suppressed_groups: Vec<Group>,
}

/// Side-effect rates per group and effect, of patients consenting now.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "One row per group and effect", body = ResearchSideEffectsResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/side-effects")]
pub async fn research_side_effects(
    caller: Caller,
    query: web::Query<ResearchQuery>,
    db: web::Data<ResearchDb>,
    settings: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    let group_by = query.group_by()?;
    let (filter, derived) = query.filters()?;
    let k = settings.min_cell;
    let dims = group_by.clone();
    let rows =
        db.0.run(move |conn| -> Result<_, StoreError> {
            let ctx = Derivations::load(conn, &filter, &derived, &dims)?;
            let mut aggregate = research::SideEffectAggregate::new(&dims);
            each_session(conn, &filter, &derived, &ctx, |p| aggregate.add_session(p))?;
            let mut after: Option<String> = None;
            loop {
                let page = facts::side_effect_facts(conn, &filter, after.as_deref(), PAGE)?;
                let (sessions, effects): (Vec<_>, Vec<_>) = page.into_iter().unzip();
                let placed = research::place(&sessions, &ctx.firsts, &ctx.adherence, &derived);
                for (p, effect) in placed.iter().zip(&effects) {
                    aggregate.add_report(p, effect);
                }
                if (effects.len() as i64) < PAGE {
                    break;
                }
                after = effects.last().map(|e| e.id.clone());
            }
            Ok(aggregate.rows(k))
        })
        .await?;
    let mut suppressed = suppressed_groups(rows.iter().map(|r| (&r.group, r.suppressed)));
    suppressed.dedup();
    Ok(HttpResponse::Ok().json(ResearchSideEffectsResponse {
        k,
        group_by,
        rows,
        suppressed_groups: suppressed,
    }))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"k": 11, "instrument": "phq9", "group_by": ["sex"], "rows": [{"group": {"sex": "female"}, "week": 0,
    "suppressed": false, "patients": 14, "count": 30, "mean": 17.2, "sd": 4.1}], "suppressed_groups": []}))]
pub struct ResearchTrajectoriesResponse {
    pub k: usize,
    pub instrument: Instrument,
    pub group_by: Vec<Dimension>,
    /// One row per group and week; suppression applies among the groups of one week.
    pub rows: Vec<TrajectoryRow>,
    #[schema(value_type = Vec<Object>)]
    pub suppressed_groups: Vec<Group>,
}

/// Weekly mean severity of one instrument per group (weeks 0–52 since the first session).
/// With `Accept: image/svg+xml`, or at `/v1/research/trajectories.svg`, the curves as SVG.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "Weekly means per group", content(
            (ResearchTrajectoriesResponse = "application/json"),
            (String = "image/svg+xml"),
        )),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/trajectories")]
pub async fn research_trajectories(
    caller: Caller,
    req: HttpRequest,
    query: web::Query<ResearchQuery>,
    db: web::Data<ResearchDb>,
    settings: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let wants_svg = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("image/svg+xml"));
    trajectories(caller, query.into_inner(), &db, &settings, wants_svg).await
}

/// The research trajectories drawn as SVG curves, one per unsuppressed group.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "The curves", content_type = "image/svg+xml", body = String),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/trajectories.svg")]
pub async fn research_trajectories_svg(
    caller: Caller,
    query: web::Query<ResearchQuery>,
    db: web::Data<ResearchDb>,
    settings: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    trajectories(caller, query.into_inner(), &db, &settings, true).await
}

async fn trajectories(
    caller: Caller,
    query: ResearchQuery,
    db: &ResearchDb,
    settings: &ClinicalSettings,
    svg: bool,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    let instrument = query
        .instrument
        .ok_or_else(|| ApiError::invalid("instrument", "is required for trajectories"))?;
    let group_by = query.group_by()?;
    if let Some(d) = group_by
        .iter()
        .find(|d| matches!(d, Dimension::Route | Dimension::DoseBand | Dimension::Phase))
    {
        return Err(ApiError::invalid(
            "group_by",
            format!("{d} describes a session, not a patient's trajectory"),
        ));
    }
    let (filter, derived) = query.filters()?;
    let k = settings.min_cell;
    let dims = group_by.clone();
    let rows =
        db.0.run(move |conn| -> Result<_, StoreError> {
            let ctx = Derivations::load(conn, &filter, &derived, &dims)?;
            // A patient's group is that of their first session.
            let mut first_dims: HashMap<
                String,
                (chrono::NaiveDateTime, HashMap<Dimension, String>),
            > = HashMap::new();
            let everywhen = ResearchFilter {
                from: None,
                to: None,
                ..filter.clone()
            };
            each_session(conn, &everywhen, &derived, &ctx, |p| {
                let entry = first_dims
                    .entry(p.fact.patient_id.clone())
                    .or_insert_with(|| (p.fact.started_at, p.dims.clone()));
                if p.fact.started_at < entry.0 {
                    *entry = (p.fact.started_at, p.dims.clone());
                }
            })?;
            let patient_dims: HashMap<String, HashMap<Dimension, String>> = first_dims
                .into_iter()
                .map(|(id, (_, dims))| (id, dims))
                .collect();
            let mut scores = facts::scores(conn, instrument.as_str(), &filter)?;
            scores.retain(|(_, at, _)| {
                filter.from.is_none_or(|f| *at >= f) && filter.to.is_none_or(|t| *at < t)
            });
            Ok(research::trajectory_rows(
                &scores,
                &ctx.firsts,
                &patient_dims,
                instrument,
                &dims,
                k,
            ))
        })
        .await?;
    if svg {
        let drawing = charts::research_curves(instrument.definition(), &rows)
            .map_err(|e| ApiError::Internal(e.into()))?;
        return Ok(HttpResponse::Ok()
            .content_type("image/svg+xml")
            .body(drawing));
    }
    let mut suppressed = suppressed_groups(rows.iter().map(|r| (&r.group, r.suppressed)));
    suppressed.sort();
    suppressed.dedup();
    Ok(HttpResponse::Ok().json(ResearchTrajectoriesResponse {
        k,
        instrument,
        group_by,
        rows,
        suppressed_groups: suppressed,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (the default) or `ndjson`.
    #[param(pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
}

/// Patients per database round trip of the export: memory stays flat however many rows.
const EXPORT_BATCH: i64 = 100;

/// The de-identified row-level export, streamed: one row per session, assessment and side
/// effect of patients consenting now. Patient keys are pseudonyms that differ between
/// exports; times are days since the patient's first session.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ExportQuery, ResearchQuery),
    responses(
        (status = 200, description = "The rows", content(
            (research::ExportRow = "text/csv"),
            (research::ExportRow = "application/x-ndjson"),
        )),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/export")]
pub async fn research_export(
    caller: Caller,
    format: web::Query<ExportQuery>,
    query: web::Query<ResearchQuery>,
    db: web::Data<ResearchDb>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    let csv = match format.format.as_deref().unwrap_or("csv") {
        "csv" => true,
        "ndjson" => false,
        _ => return Err(ApiError::invalid("format", "must be csv or ndjson")),
    };
    let (filter, derived) = query.filters()?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let db = db.0.clone();
    let pages = stream::try_unfold(
        (None::<String>, true, false),
        move |(after, first_page, done)| {
            let (db, filter, derived) = (db.clone(), filter.clone(), derived.clone());
            async move {
                if done {
                    return Ok::<_, ApiError>(None);
                }
                let cursor = after.clone();
                let (patients, batch) = db
                    .run(move |conn| -> Result<_, StoreError> {
                        let patients =
                            facts::patients_page(conn, cursor.as_deref(), EXPORT_BATCH, &filter)?;
                        let ids: Vec<String> = patients.iter().map(|p| p.0.clone()).collect();
                        Ok((patients, facts::export_batch(conn, &ids)?))
                    })
                    .await?;
                let last = patients.last().map(|p| p.0.clone());
                let mut out = Vec::new();
                let rows = patients.iter().flat_map(|(id, sex, birth_year)| {
                    research::export_rows(
                        &pseudonym(&secret, id),
                        sex,
                        *birth_year,
                        &batch,
                        id,
                        &derived,
                    )
                });
                if csv {
                    let mut writer = ::csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(&mut out);
                    let failed = |e: ::csv::Error| ApiError::Internal(Box::new(e));
                    if first_page {
                        writer.write_record(EXPORT_COLUMNS).map_err(failed)?;
                    }
                    for row in rows {
                        writer.serialize(row).map_err(failed)?;
                    }
                    writer
                        .flush()
                        .map_err(|e| ApiError::Internal(Box::new(e)))?;
                } else {
                    for row in rows {
                        serde_json::to_writer(&mut out, &row)
                            .map_err(|e| ApiError::Internal(Box::new(e)))?;
                        out.push(b'\n');
                    }
                }
                let done = last.is_none() || patients.len() < EXPORT_BATCH as usize;
                Ok(Some((web::Bytes::from(out), (last, false, done))))
            }
        },
    );
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .streaming(pages))
}

/// The CSV header, written on its own when the export has no rows.
const EXPORT_COLUMNS: [&str; 22] = [
    "kind",
    "patient",
    "day",
    "sex",
    "age_band",
    "indication",
    "route",
    "dose_band",
    "dose_mg_per_kg",
    "total_dose_mg",
    "session_status",
    "phase",
    "charge_cents",
    "benefit_status",
    "durability_days",
    "instrument",
    "total",
    "severity",
    "band",
    "effect",
    "effect_severity",
    "resolved_day",
];

/// A keyed hash of the patient id with this export's secret: stable within the export,
/// unlinkable across exports.
fn pseudonym(secret: &[u8], patient_id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(patient_id.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}
