//! The research API (domain.md §8, §8a) on the wire: what a question may ask, and the
//! answers — aggregates in the caller's tier, the budget, the controlled tier's export.
//! Each endpoint refuses the parameters it does not take (422 naming them).

use actix_web::http::header::{self, Header};
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use actix_web::mime;

use crate::api::research_grants::GrantResponse;
use crate::call::Call;
use crate::charts;
use crate::domain::instrument::Instrument;
use crate::domain::patient::{Indication, Sex};
use crate::domain::privacy::Tier;
use crate::domain::research::{AdherenceBand, Dimension, DoseBand};
use crate::domain::schedule::Phase;
use crate::domain::time;
use crate::domain::treatment::Route;
use crate::error::responses::List;
use crate::error::{ApiError, FieldError};
use crate::research::export::run::{self as export, Format};
use crate::research::query::{
    self, Question, ResearchOutcomesResponse, ResearchSideEffectsResponse,
    ResearchTrajectoriesResponse,
};

/// Every parameter of the research endpoints; each endpoint refuses those it does not take
/// (422 naming it), and an unknown one is refused as the query is read.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResearchQuery {
    /// Restricts to courses with this primary instrument (outcomes, export), or the instrument
    /// drawn (trajectories, required there).
    pub instrument: Option<Instrument>,
    /// Dimensions to group by, comma-separated, each at most once. Outcomes and side effects
    /// take every dimension; trajectories take indication, sex, age_band, clinic and
    /// adherence_band (route, dose_band, phase and infusion_number describe one session, and a trajectory
    /// follows a course's scores across sessions). Not for the export.
    #[param(value_type = Option<Vec<Dimension>>, style = Form, explode = false, example = json!(["indication", "route"]))]
    pub group_by: Option<String>,
    /// Overrides W, the wear-off threshold in days, for this query (1–60; outcomes only).
    #[param(minimum = 1, maximum = 60)]
    pub wear_off_days: Option<u32>,
    pub indication: Option<Indication>,
    pub route: Option<Route>,
    pub dose_band: Option<DoseBand>,
    pub sex: Option<Sex>,
    /// A 10-year band such as `40-49`, or `90+`.
    #[param(pattern = r"^(0-9|10-19|20-29|30-39|40-49|50-59|60-69|70-79|80-89|90\+)$")]
    pub age_band: Option<String>,
    /// A clinic's id (aggregates only: the export never filters or labels by clinic).
    pub clinic: Option<Uuid>,
    pub phase: Option<Phase>,
    pub adherence_band: Option<AdherenceBand>,
    /// Records at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Records before this instant.
    pub to: Option<DateTime<Utc>>,
    /// The export's format: `csv` (the default) or `ndjson`. Export only.
    pub format: Option<Format>,
}

/// A band named in the query, read as its vocabulary.
fn band<B: std::str::FromStr<Err = String>>(
    field: &'static str,
    value: &Option<String>,
) -> Result<Option<B>, ApiError> {
    value
        .as_deref()
        .map(|v| v.parse().map_err(|rule| ApiError::invalid(field, rule)))
        .transpose()
}

/// Which research answer a question is for: each takes its own parameters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    Outcomes,
    SideEffects,
    Trajectories,
    Export,
}

impl ResearchQuery {
    /// 422 for each parameter `asked` does not take.
    fn refuse_foreign(&self, asked: Asked) -> Result<(), ApiError> {
        use Asked::*;
        let foreign = [
            (
                "format",
                self.format.is_some(),
                asked != Export,
                "is for the export only",
            ),
            (
                "instrument",
                self.instrument.is_some(),
                asked == SideEffects,
                "is not taken by the side-effect aggregates",
            ),
            (
                "wear_off_days",
                self.wear_off_days.is_some(),
                asked != Outcomes,
                "is taken by the outcomes only",
            ),
            (
                "group_by",
                self.group_by.is_some(),
                asked == Export,
                "is not taken by the export: it is row-level",
            ),
            (
                "clinic",
                self.clinic.is_some(),
                asked == Export,
                "is not taken by the export: it neither filters nor labels by clinic",
            ),
        ];
        let errors: Vec<_> = foreign
            .iter()
            .filter(|(_, given, refused, _)| *given && *refused)
            .map(|(name, _, _, why)| FieldError::new(*name, *why))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// The grouping, in canonical (declaration) order.
    fn group_by(&self) -> Result<Vec<Dimension>, ApiError> {
        let mut dims = Vec::new();
        for name in (self.group_by.as_deref().unwrap_or(""))
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
        dims.sort();
        Ok(dims)
    }

    /// The question, every parameter checked, for `asked`.
    fn question(&self, asked: Asked) -> Result<Question, ApiError> {
        self.refuse_foreign(asked)?;
        let wear_off_days = match self.wear_off_days {
            None => None,
            Some(days @ 1..=60) => Some(f64::from(days)),
            Some(_) => return Err(ApiError::invalid("wear_off_days", "must be from 1 to 60")),
        };
        let range = time::Range::parse(self.from, self.to)?;
        Ok(Question {
            instrument: self.instrument,
            group_by: self.group_by()?,
            wear_off_days,
            indication: self.indication,
            route: self.route,
            dose_band: self.dose_band,
            sex: self.sex,
            age_band: band("age_band", &self.age_band)?,
            clinic: self.clinic.map(Into::into),
            phase: self.phase,
            adherence_band: self.adherence_band,
            from: range.from,
            to: range.to,
        })
    }
}

/// Outcome aggregates per group, of patients consenting now (domain.md §8, Outcomes).
///
/// In the aggregate tier every figure is differentially private: noise calibrated to one
/// patient's bounded contribution, a 95 % error bound for each (`error_95`), and only groups
/// whose noisy patient count clears the release threshold. A query spends its ε from the
/// researcher's budget (403 when it would overspend); the same query over the same data is
/// answered with the same release and spends nothing again. In the controlled tier the
/// figures are exact and groups of fewer than k patients are withheld (with their complement
/// where one alone would be).
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "One row per released group", body = ResearchOutcomesResponse),
        List,
    )
)]
#[get("/v1/research/outcomes")]
pub async fn research_outcomes(
    call: Call,
    query: web::Query<ResearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let answer = query::outcomes(&call, query.question(Asked::Outcomes)?).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Side-effect rates per group and effect, of patients consenting now (domain.md §8).
///
/// Tiers as for the outcomes; in the aggregate tier each patient counts in one group, with at
/// most a few effects and reports of each (the contribution bounds of the documentation).
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "One row per released group and effect", body = ResearchSideEffectsResponse),
        List,
    )
)]
#[get("/v1/research/side-effects")]
pub async fn research_side_effects(
    call: Call,
    query: web::Query<ResearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let answer = query::side_effects(&call, query.question(Asked::SideEffects)?).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Whether the client prefers the SVG drawing to JSON (RFC 9110 §12.5.1): it lists
/// `image/svg+xml` (or `image/*`) with a quality above 0, and at least as high as
/// `application/json`'s. `q=0` means "not acceptable".
fn prefers_svg(req: &HttpRequest) -> bool {
    let Ok(accept) = header::Accept::parse(req) else {
        return false;
    };
    let best = |wanted: &dyn Fn(&mime::Mime) -> bool| {
        accept
            .iter()
            .filter(|item| wanted(&item.item))
            .map(|item| item.quality)
            .max()
    };
    let svg =
        best(&|m| m.type_() == mime::IMAGE && (m.subtype() == "svg" || m.subtype() == mime::STAR));
    let json = best(&|m| *m == mime::APPLICATION_JSON);
    svg.is_some_and(|svg| svg > header::Quality::ZERO && json.is_none_or(|json| svg >= json))
}

async fn trajectories(
    call: Call,
    query: &ResearchQuery,
    svg: bool,
) -> Result<HttpResponse, ApiError> {
    let instrument = query
        .instrument
        .ok_or_else(|| ApiError::invalid("instrument", "is required for trajectories"))?;
    let answer =
        query::trajectories(&call, instrument, query.question(Asked::Trajectories)?).await?;
    if !svg {
        return Ok(HttpResponse::Ok().json(answer));
    }
    let drawing = charts::research_curves(instrument.definition(), &answer.rows)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(drawing))
}

/// Weekly mean severity of one instrument per group (weeks 0–52 since the first session).
/// With `Accept: image/svg+xml`, or at `/v1/research/trajectories.svg`, the curves as SVG.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "Weekly means per released group", content(
            (ResearchTrajectoriesResponse = "application/json"),
            (String = "image/svg+xml"),
        )),
        List,
    )
)]
#[get("/v1/research/trajectories")]
pub async fn research_trajectories(
    call: Call,
    req: HttpRequest,
    query: web::Query<ResearchQuery>,
) -> Result<HttpResponse, ApiError> {
    trajectories(call, &query, prefers_svg(&req)).await
}

/// The research trajectories drawn as SVG curves, one per released group.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "The curves", content_type = "image/svg+xml", body = String),
        List,
    )
)]
#[get("/v1/research/trajectories.svg")]
pub async fn research_trajectories_svg(
    call: Call,
    query: web::Query<ResearchQuery>,
) -> Result<HttpResponse, ApiError> {
    trajectories(call, &query, true).await
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"tier": "aggregate", "epsilon_budget": 40.0, "epsilon_spent": 8.0, "epsilon_remaining": 32.0,
    "epsilon_per_query": 4.0, "queries": 2, "period_start": "2026-11-20T00:00:00Z", "renews_at": "2026-12-20T00:00:00Z",
    "delta": 0.000001, "grant": null}))]
pub struct BudgetResponse {
    pub tier: Tier,
    pub epsilon_budget: f64,
    pub epsilon_spent: f64,
    pub epsilon_remaining: f64,
    /// What each new aggregate-tier answer spends.
    pub epsilon_per_query: f64,
    /// Aggregate-tier answers paid for in this period.
    pub queries: i32,
    pub period_start: DateTime<Utc>,
    pub renews_at: DateTime<Utc>,
    pub delta: f64,
    /// The controlled-tier grant in force, if any.
    #[schema(required = true)]
    pub grant: Option<GrantResponse>,
}

/// The budget's query: it takes none, and like every research endpoint it refuses a
/// parameter it does not know by name (422) rather than ignore it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// The caller's tier, privacy budget, spending and renewal.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's budget", body = BudgetResponse),
        List,
    )
)]
#[get("/v1/research/budget")]
pub async fn research_budget(
    call: Call,
    _none: web::Query<NoParameters>,
) -> Result<HttpResponse, ApiError> {
    let budget = query::budget(&call).await?;
    let settings = call.services.research;
    Ok(HttpResponse::Ok().json(BudgetResponse {
        tier: budget.tier,
        epsilon_budget: settings.epsilon_budget,
        epsilon_spent: budget.epsilon_spent,
        epsilon_remaining: (settings.epsilon_budget - budget.epsilon_spent).max(0.0),
        epsilon_per_query: settings.epsilon_per_query,
        queries: budget.queries,
        period_start: budget.period_start,
        renews_at: budget.renews_at,
        delta: settings.delta,
        grant: budget.grant.map(Into::into),
    }))
}

/// The de-identified, k-anonymous row-level export (controlled tier only), streamed: one row
/// per session, assessment and side effect of patients consenting now, of those the filters
/// select. Patient keys are pseudonyms that differ between exports; times are whole days
/// since the patient's first session; charges are in bands; quasi-identifiers are generalised
/// and rare combinations left out until every combination in the file covers at least k
/// patients (the headers `X-Export-Generalisation` and `X-Export-Suppressed-Rows` say how far).
/// Never filtered or labelled by clinic.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    params(ResearchQuery),
    responses(
        (status = 200, description = "The file, as text: CSV with a header line, or one JSON \
            object per line (NDJSON). Each record or line is an `ExportRow` (the component of that \
            name), for a client to parse row by row.",
            content(
                (String = "text/csv"),
                (String = "application/x-ndjson"),
            ),
            headers(
                ("X-Export-Generalisation" = u32, description = "The rung of the generalisation ladder the file was written at (0: exact values)"),
                ("X-Export-Suppressed-Rows" = u64, description = "Rows left out because their combination covers fewer than k patients"),
            )),
        List,
    )
)]
#[get("/v1/research/export")]
pub async fn research_export(
    call: Call,
    query: web::Query<ResearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = query.format.unwrap_or_default();
    let started = export::export(&call, query.question(Asked::Export)?, format).await?;
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Ndjson => "application/x-ndjson",
    };
    let pages = futures_util::StreamExt::map(started.pages, |page| page.map(web::Bytes::from));
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("X-Export-Generalisation", started.level.to_string()))
        .insert_header((
            "X-Export-Suppressed-Rows",
            started.suppressed_rows.to_string(),
        ))
        .streaming(pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110 §12.5.1: a media range with q=0 is not acceptable; the drawing is sent only
    /// to a client that prefers it.
    #[test]
    fn the_drawing_is_sent_only_when_preferred() {
        let cases = [
            ("image/svg+xml", true),
            ("image/svg+xml;q=0", false),
            ("image/svg+xml;q=0, application/json", false),
            ("application/json, image/svg+xml;q=0.5", false),
            ("image/svg+xml, application/json;q=0.9", true),
            ("image/*", true),
            ("*/*", false),
            ("application/json", false),
        ];
        for (accept, svg) in cases {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::ACCEPT, accept))
                .to_http_request();
            assert_eq!(prefers_svg(&req), svg, "{accept}");
        }
        assert!(!prefers_svg(
            &actix_web::test::TestRequest::default().to_http_request()
        ));
    }
}
