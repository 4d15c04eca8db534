//! The research API (domain.md §8, §8a): aggregates of consenting patients — differentially
//! private in the `aggregate` tier, exact with small cells withheld in the `controlled` tier —
//! and the controlled tier's k-anonymous export. Researchers only; the data is read from the
//! research pool, grants and budgets from the primary database.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::context::{Audited, RequestContext};
use crate::auth::caller::Caller;
use crate::charts;
use crate::clock;
use crate::config::{ClinicalSettings, ResearchSettings};
use crate::domain::account::Role;
use crate::domain::instrument::Instrument;
use crate::domain::patient::{Indication, Sex};
use crate::domain::privacy::Tier;
use crate::domain::research::Dimension;
use crate::domain::schedule::Phase;
use crate::domain::treatment::Route;
use crate::error::ApiError;
use crate::research::access::{self, Answerable, PrivacyStatement};
use crate::research::private::{self, Contribution, Privacy, SessionPoint, Spent};
use crate::research::{self, DerivedFilter, Group, OutcomeRow, SideEffectRow, TrajectoryRow};
use crate::startup::ResearchDb;
use crate::store::research::{self as facts, ResearchFilter};
use crate::store::{Db, DbConnection, StoreError};

/// Every parameter of the research endpoints; each endpoint refuses those it does not take
/// (422 naming it), and an unknown one is refused as the query is read.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResearchQuery {
    /// Restricts to courses with this primary instrument (outcomes, export), or the instrument
    /// drawn (trajectories, required there).
    pub instrument: Option<Instrument>,
    /// Comma-separated dimensions: indication, route, dose_band, sex, age_band, clinic, phase,
    /// adherence_band (trajectories: the patient's dimensions only). Not for the export.
    #[param(example = "indication,route")]
    pub group_by: Option<String>,
    /// Overrides W, the wear-off threshold in days, for this query (1–60; outcomes only).
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
    /// A clinic's id (aggregates only: the export never filters or labels by clinic).
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
    /// The export's format: `csv` (the default) or `ndjson`. Export only.
    #[param(pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
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

/// The parameters of a query as one canonical value: what makes two queries the same.
#[derive(Debug, Clone, Serialize)]
struct Canonical {
    instrument: Option<Instrument>,
    group_by: Vec<Dimension>,
    wear_off_days: Option<f64>,
    indication: Option<Indication>,
    route: Option<Route>,
    dose_band: Option<String>,
    sex: Option<Sex>,
    age_band: Option<String>,
    clinic: Option<Uuid>,
    phase: Option<Phase>,
    adherence_band: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl ResearchQuery {
    /// 422 for each parameter the endpoint does not take.
    fn refuse(&self, names: &[&str], why: &str) -> Result<(), ApiError> {
        let given = |name: &str| match name {
            "instrument" => self.instrument.is_some(),
            "group_by" => self.group_by.is_some(),
            "wear_off_days" => self.wear_off_days.is_some(),
            "clinic" => self.clinic.is_some(),
            "format" => self.format.is_some(),
            _ => false,
        };
        let errors: Vec<_> = names
            .iter()
            .filter(|n| given(n))
            .map(|n| crate::error::FieldError::new(*n, why))
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
        dims.sort();
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

    /// W as the query chose it, if it did.
    fn chosen_wear_off_days(&self) -> Result<Option<f64>, ApiError> {
        match self.wear_off_days {
            None => Ok(None),
            Some(days @ 1..=60) => Ok(Some(f64::from(days))),
            Some(_) => Err(ApiError::invalid("wear_off_days", "must be from 1 to 60")),
        }
    }

    fn canonical(&self, group_by: &[Dimension], wear_off_days: Option<f64>) -> Canonical {
        Canonical {
            instrument: self.instrument,
            group_by: group_by.to_vec(),
            wear_off_days,
            indication: self.indication,
            route: self.route,
            dose_band: self.dose_band.clone(),
            sex: self.sex,
            age_band: self.age_band.clone(),
            clinic: self.clinic,
            phase: self.phase,
            adherence_band: self.adherence_band.clone(),
            from: self.from,
            to: self.to,
        }
    }
}

/// The pools and settings every research endpoint uses.
struct Context<'a> {
    primary: &'a Db,
    research: &'a Db,
    settings: &'a ResearchSettings,
}

impl Context<'_> {
    fn privacy(&self) -> Privacy {
        Privacy {
            epsilon: self.settings.epsilon_per_query,
            delta: self.settings.delta,
            k: self.settings.min_cell,
            bounds: self.settings.bounds,
        }
    }

    /// Answers `query` for `caller` in their tier, audited with its canonical parameters.
    async fn answer<Q: Answerable>(
        &self,
        caller: &Caller,
        ctx: &RequestContext,
        (endpoint, canonical): (&'static str, &Canonical),
        query: Q,
    ) -> Result<(Q::Body, PrivacyStatement), ApiError> {
        let event = ctx.audit(
            Some(caller),
            Audited {
                action: endpoint,
                resource_type: "research",
                resource_id: None,
                patient_id: None,
            },
        );
        let key = access::query_key(endpoint, canonical);
        let detail = serde_json::to_value(canonical).unwrap_or_default();
        access::answer(
            (self.primary, self.research),
            caller,
            self.settings,
            (event, key, detail),
            query,
        )
        .await
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"privacy": {"tier": "aggregate", "epsilon_spent": 4.0, "epsilon_remaining": 36.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": 0.000001, "release_threshold": 28, "repeated": false},
    "k": 11, "wear_off_days": 7.0, "instrument": "phq9", "group_by": ["route"], "rows": [], "withheld_groups": 5}))]
pub struct ResearchOutcomesResponse {
    /// The tier and the privacy cost of this answer.
    #[serde(default = "placeholder_statement")]
    pub privacy: PrivacyStatement,
    /// The small-cell threshold: no group of fewer patients is shown.
    pub k: usize,
    /// W used for this query.
    pub wear_off_days: f64,
    pub instrument: Option<Instrument>,
    pub group_by: Vec<Dimension>,
    /// The released groups only, in group order.
    pub rows: Vec<OutcomeRow>,
    /// Groups not shown. In the controlled tier, groups with data but too few patients (and
    /// their complements); in the aggregate tier, every possible combination not released,
    /// whether or not any patient is in it (telling which have patients would itself tell).
    pub withheld_groups: usize,
}

/// A release is stored without its statement (which changes with the budget); it is filled
/// in when the release is sent.
fn placeholder_statement() -> PrivacyStatement {
    PrivacyStatement {
        tier: Tier::Aggregate,
        epsilon_spent: 0.0,
        epsilon_remaining: 0.0,
        epsilon_budget: 0.0,
        budget_renews_at: DateTime::UNIX_EPOCH,
        delta: None,
        release_threshold: None,
        repeated: false,
    }
}

/// How many combinations of `group_by` there can be (clinics counted in the research pool),
/// times `per_group` (effects, weeks).
fn possible_groups(
    conn: &mut DbConnection,
    group_by: &[Dimension],
    per_group: usize,
) -> Result<usize, StoreError> {
    let mut count = per_group;
    for d in group_by {
        count = count.saturating_mul(match d {
            Dimension::Indication => Indication::ALL.len(),
            Dimension::Route => Route::ALL.len(),
            Dimension::DoseBand => DOSE_BANDS.len(),
            Dimension::Sex => Sex::ALL.len(),
            Dimension::AgeBand => 10,
            Dimension::Clinic => facts::clinic_count(conn)?,
            Dimension::Phase => Phase::ALL.len(),
            Dimension::AdherenceBand => ADHERENCE_BANDS.len(),
        });
    }
    Ok(count)
}

struct Outcomes {
    group_by: Vec<Dimension>,
    filter: ResearchFilter,
    derived: DerivedFilter,
    wear_off_days: f64,
    instrument: Option<Instrument>,
    privacy: Privacy,
}

impl Outcomes {
    fn body(&self, rows: Vec<OutcomeRow>, withheld_groups: usize) -> ResearchOutcomesResponse {
        ResearchOutcomesResponse {
            privacy: placeholder_statement(),
            k: self.privacy.k,
            wear_off_days: self.wear_off_days,
            instrument: self.instrument,
            group_by: self.group_by.clone(),
            rows,
            withheld_groups,
        }
    }
}

impl Answerable for Outcomes {
    type Body = ResearchOutcomesResponse;

    fn exact(self, conn: &mut DbConnection) -> Result<Self::Body, ApiError> {
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let mut aggregate = research::OutcomeAggregate::new(&self.group_by, self.wear_off_days);
        let instrument = self.instrument;
        each_session(conn, &self.filter, &self.derived, &ctx, |p| {
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
        let (rows, withheld) =
            aggregate.rows(&courses, &adherence, instrument.is_some(), self.privacy.k);
        Ok(self.body(rows, withheld))
    }

    fn private(self, conn: &mut DbConnection) -> Result<(Self::Body, Spent), ApiError> {
        let instrument = self.instrument;
        let contributions = bounded_sessions(
            conn,
            &self.filter,
            &self.derived,
            &self.group_by,
            &self.privacy,
            |p| instrument.is_none_or(|i| p.fact.primary_instrument == i.as_str()),
        )?;
        let course_ids: Vec<String> = contributions
            .iter()
            .flat_map(|c| c.courses.clone())
            .collect();
        let adherence = course_adherence(conn, &course_ids)?;
        let courses = facts::course_facts(conn, &course_ids)?
            .into_iter()
            .map(|(id, baseline, response, remission, ttr)| {
                let inputs = private::CourseInputs {
                    baseline,
                    end_of_induction_response: response,
                    end_of_induction_remission: remission,
                    time_to_response_days: ttr,
                    adherence: adherence.get(&id).copied().unwrap_or((0, 0)),
                };
                (id, inputs)
            })
            .collect();
        let query = private::OutcomeQuery {
            wear_off_days: self.wear_off_days,
            baseline_max: instrument.map(|i| i.definition().total_max()),
        };
        let released = private::outcomes(&contributions, &courses, query, &self.privacy)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let possible = possible_groups(conn, &self.group_by, 1)?;
        let withheld = possible.saturating_sub(released.rows.len());
        Ok((self.body(released.rows, withheld), released.spent))
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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/outcomes")]
pub async fn research_outcomes(
    caller: Caller,
    query: web::Query<ResearchQuery>,
    ctx: RequestContext,
    pools: (web::Data<Db>, web::Data<ResearchDb>),
    settings: (web::Data<ClinicalSettings>, web::Data<ResearchSettings>),
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    query.refuse(&["format"], "is for the export only")?;
    let group_by = query.group_by()?;
    let (filter, derived) = query.filters()?;
    let chosen = query.chosen_wear_off_days()?;
    let wear_off_days = chosen.unwrap_or(settings.0.wear_off_days);
    let c = Context {
        primary: &pools.0,
        research: &pools.1 .0,
        settings: &settings.1,
    };
    let canonical = query.canonical(&group_by, Some(wear_off_days));
    let answerable = Outcomes {
        group_by,
        filter,
        derived,
        wear_off_days,
        instrument: query.instrument,
        privacy: c.privacy(),
    };
    let (mut body, statement) = c
        .answer(&caller, &ctx, ("research_outcomes", &canonical), answerable)
        .await?;
    body.privacy = statement;
    Ok(HttpResponse::Ok().json(body))
}

/// Each course's measurement-plan adherence now: (completed on time, due). The records the
/// plans are checked against are loaded for a few hundred patients at a time.
fn course_adherence(
    conn: &mut DbConnection,
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
        conn: &mut DbConnection,
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
    conn: &mut DbConnection,
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

/// Every session the query selects, bounded per patient for the aggregate tier.
fn bounded_sessions(
    conn: &mut DbConnection,
    filter: &ResearchFilter,
    derived: &DerivedFilter,
    group_by: &[Dimension],
    privacy: &Privacy,
    keep: impl Fn(&research::Placed<'_>) -> bool,
) -> Result<Vec<Contribution>, StoreError> {
    let ctx = Derivations::load(conn, filter, derived, group_by)?;
    let mut points = Vec::new();
    each_session(conn, filter, derived, &ctx, |p| {
        if keep(p) {
            points.push(SessionPoint {
                patient: p.fact.patient_id.clone(),
                course: p.fact.course_id.clone(),
                session: p.fact.session_id.clone(),
                started_at: p.fact.started_at,
                group: research::group_of(&p.dims, group_by),
                status: p.fact.status.clone(),
                durability_days: p.fact.durability_days,
                charge_cents: p.fact.charge_cents,
            });
        }
    })?;
    Ok(private::bound(points, &privacy.bounds))
}

fn first_sessions(
    conn: &mut DbConnection,
) -> Result<HashMap<String, chrono::NaiveDateTime>, StoreError> {
    Ok(facts::first_sessions(conn)?
        .into_iter()
        .filter_map(|(p, t)| Some((p, t?)))
        .collect())
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"privacy": {"tier": "controlled", "epsilon_spent": 0.0, "epsilon_remaining": 40.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": null, "release_threshold": null, "repeated": false},
    "k": 11, "group_by": ["route"], "rows": [{"group": {"route": "iv"}, "effect": "nausea",
    "patients": 18, "reports": 31, "sessions": 240, "sessions_with_effect_per_100": 12.5,
    "severity_counts": {"mild": 20, "moderate": 9, "severe": 2, "life_threatening": 0}, "median_hours_to_resolution": 3.5,
    "share_unresolved": 0.0323, "error_95": null}], "withheld_groups": 2}))]
pub struct ResearchSideEffectsResponse {
    #[serde(default = "placeholder_statement")]
    pub privacy: PrivacyStatement,
    pub k: usize,
    pub group_by: Vec<Dimension>,
    /// One row per released group and effect; in the controlled tier suppression applies
    /// among the groups of one effect.
    pub rows: Vec<SideEffectRow>,
    /// Group-and-effect combinations not shown (see the outcomes' `withheld_groups`).
    pub withheld_groups: usize,
}

struct SideEffects {
    group_by: Vec<Dimension>,
    filter: ResearchFilter,
    derived: DerivedFilter,
    privacy: Privacy,
}

impl SideEffects {
    fn body(
        &self,
        rows: Vec<SideEffectRow>,
        withheld_groups: usize,
    ) -> ResearchSideEffectsResponse {
        ResearchSideEffectsResponse {
            privacy: placeholder_statement(),
            k: self.privacy.k,
            group_by: self.group_by.clone(),
            rows,
            withheld_groups,
        }
    }

    /// Every side effect the query selects, with the session fact it belongs to.
    fn reports(
        &self,
        conn: &mut DbConnection,
        ctx: &Derivations,
        mut add: impl FnMut(&research::Placed<'_>, &facts::SideEffectFact),
    ) -> Result<(), StoreError> {
        let mut after: Option<String> = None;
        loop {
            let page = facts::side_effect_facts(conn, &self.filter, after.as_deref(), PAGE)?;
            let (sessions, effects): (Vec<_>, Vec<_>) = page.into_iter().unzip();
            let placed = research::place(&sessions, &ctx.firsts, &ctx.adherence, &self.derived);
            for (p, effect) in placed.iter().zip(&effects) {
                add(p, effect);
            }
            if (effects.len() as i64) < PAGE {
                return Ok(());
            }
            after = effects.last().map(|e| e.id.clone());
        }
    }
}

impl Answerable for SideEffects {
    type Body = ResearchSideEffectsResponse;

    fn exact(self, conn: &mut DbConnection) -> Result<Self::Body, ApiError> {
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let mut aggregate = research::SideEffectAggregate::new(&self.group_by);
        each_session(conn, &self.filter, &self.derived, &ctx, |p| {
            aggregate.add_session(p)
        })?;
        self.reports(conn, &ctx, |p, e| aggregate.add_report(p, e))?;
        let (rows, withheld) = aggregate.rows(self.privacy.k);
        Ok(self.body(rows, withheld))
    }

    fn private(self, conn: &mut DbConnection) -> Result<(Self::Body, Spent), ApiError> {
        let contributions = bounded_sessions(
            conn,
            &self.filter,
            &self.derived,
            &self.group_by,
            &self.privacy,
            |_| true,
        )?;
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let mut reports = Vec::new();
        self.reports(conn, &ctx, |p, e| {
            reports.push(private::ReportPoint {
                patient: p.fact.patient_id.clone(),
                session: p.fact.session_id.clone(),
                effect: e.effect.clone(),
                severity: e.severity.clone(),
                onset_at: e.onset_at,
                hours_to_resolution: e
                    .resolved_at
                    .map(|r| (r - e.onset_at).num_seconds() as f64 / 3600.0),
            });
        })?;
        let released = private::side_effects(&contributions, &reports, &self.privacy)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let effects = crate::domain::side_effect::Effect::ALL.len();
        let possible = possible_groups(conn, &self.group_by, effects)?;
        let withheld = possible.saturating_sub(released.rows.len());
        Ok((self.body(released.rows, withheld), released.spent))
    }
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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/side-effects")]
pub async fn research_side_effects(
    caller: Caller,
    query: web::Query<ResearchQuery>,
    ctx: RequestContext,
    pools: (web::Data<Db>, web::Data<ResearchDb>),
    settings: web::Data<ResearchSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    query.refuse(
        &["format", "instrument"],
        "is not taken by the side-effect aggregates",
    )?;
    query.chosen_wear_off_days()?;
    query.refuse(
        &["wear_off_days"],
        "is not taken by the side-effect aggregates",
    )?;
    let group_by = query.group_by()?;
    let (filter, derived) = query.filters()?;
    let c = Context {
        primary: &pools.0,
        research: &pools.1 .0,
        settings: &settings,
    };
    let canonical = query.canonical(&group_by, None);
    let answerable = SideEffects {
        group_by,
        filter,
        derived,
        privacy: c.privacy(),
    };
    let (mut body, statement) = c
        .answer(
            &caller,
            &ctx,
            ("research_side_effects", &canonical),
            answerable,
        )
        .await?;
    body.privacy = statement;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"privacy": {"tier": "controlled", "epsilon_spent": 0.0, "epsilon_remaining": 40.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": null, "release_threshold": null, "repeated": false},
    "k": 11, "instrument": "phq9", "group_by": ["sex"], "rows": [{"group": {"sex": "female"}, "week": 0,
    "patients": 14, "count": 30, "mean": 17.2, "sd": 4.1, "error_95": null}], "withheld_groups": 0}))]
pub struct ResearchTrajectoriesResponse {
    #[serde(default = "placeholder_statement")]
    pub privacy: PrivacyStatement,
    pub k: usize,
    pub instrument: Instrument,
    pub group_by: Vec<Dimension>,
    /// One row per released group and week; in the controlled tier suppression applies among
    /// the groups of one week.
    pub rows: Vec<TrajectoryRow>,
    /// Group-and-week combinations not shown (see the outcomes' `withheld_groups`).
    pub withheld_groups: usize,
}

struct Trajectories {
    instrument: Instrument,
    group_by: Vec<Dimension>,
    filter: ResearchFilter,
    derived: DerivedFilter,
    privacy: Privacy,
}

impl Trajectories {
    fn body(
        &self,
        rows: Vec<TrajectoryRow>,
        withheld_groups: usize,
    ) -> ResearchTrajectoriesResponse {
        ResearchTrajectoriesResponse {
            privacy: placeholder_statement(),
            k: self.privacy.k,
            instrument: self.instrument,
            group_by: self.group_by.clone(),
            rows,
            withheld_groups,
        }
    }

    /// Each patient's group (that of their first session the filters allow, at any time)
    /// and first session, and the scores in the query's range.
    #[allow(clippy::type_complexity)]
    fn inputs(
        &self,
        conn: &mut DbConnection,
    ) -> Result<
        (
            HashMap<String, chrono::NaiveDateTime>,
            HashMap<String, HashMap<Dimension, String>>,
            Vec<(String, chrono::NaiveDateTime, i32)>,
        ),
        StoreError,
    > {
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let mut first_dims: HashMap<String, (chrono::NaiveDateTime, HashMap<Dimension, String>)> =
            HashMap::new();
        let everywhen = ResearchFilter {
            from: None,
            to: None,
            ..self.filter.clone()
        };
        each_session(conn, &everywhen, &self.derived, &ctx, |p| {
            let entry = first_dims
                .entry(p.fact.patient_id.clone())
                .or_insert_with(|| (p.fact.started_at, p.dims.clone()));
            if p.fact.started_at < entry.0 {
                *entry = (p.fact.started_at, p.dims.clone());
            }
        })?;
        let dims = first_dims.into_iter().map(|(id, (_, d))| (id, d)).collect();
        let scores = facts::scores(conn, self.instrument.as_str(), &self.filter)?;
        Ok((ctx.firsts, dims, scores))
    }
}

impl Answerable for Trajectories {
    type Body = ResearchTrajectoriesResponse;

    fn exact(self, conn: &mut DbConnection) -> Result<Self::Body, ApiError> {
        let (firsts, dims, scores) = self.inputs(conn)?;
        let (rows, withheld) = research::trajectory_rows(
            &scores,
            &firsts,
            &dims,
            self.instrument,
            &self.group_by,
            self.privacy.k,
        );
        Ok(self.body(rows, withheld))
    }

    fn private(self, conn: &mut DbConnection) -> Result<(Self::Body, Spent), ApiError> {
        let (firsts, dims, scores) = self.inputs(conn)?;
        let def = self.instrument.definition();
        let groups: HashMap<String, Group> = dims
            .iter()
            .map(|(p, d)| (p.clone(), research::group_of(d, &self.group_by)))
            .collect();
        let points: Vec<private::ScorePoint> = scores
            .into_iter()
            .filter_map(|(patient, taken_at, total)| {
                let week = research::week_of(*firsts.get(&patient)?, taken_at)?;
                Some(private::ScorePoint {
                    severity: def.severity(total),
                    patient,
                    week,
                    taken_at,
                })
            })
            .collect();
        let released = private::trajectories(&groups, &points, def.total_max(), &self.privacy)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let possible = possible_groups(conn, &self.group_by, 53)?;
        let withheld = possible.saturating_sub(released.rows.len());
        Ok((self.body(released.rows, withheld), released.spent))
    }
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
    ctx: RequestContext,
    pools: (web::Data<Db>, web::Data<ResearchDb>),
    settings: web::Data<ResearchSettings>,
) -> Result<HttpResponse, ApiError> {
    let wants_svg = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("image/svg+xml"));
    trajectories(
        caller,
        query.into_inner(),
        ctx,
        (&pools.0, &pools.1 .0),
        &settings,
        wants_svg,
    )
    .await
}

/// The research trajectories drawn as SVG curves, one per released group.
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
    ctx: RequestContext,
    pools: (web::Data<Db>, web::Data<ResearchDb>),
    settings: web::Data<ResearchSettings>,
) -> Result<HttpResponse, ApiError> {
    trajectories(
        caller,
        query.into_inner(),
        ctx,
        (&pools.0, &pools.1 .0),
        &settings,
        true,
    )
    .await
}

async fn trajectories(
    caller: Caller,
    query: ResearchQuery,
    ctx: RequestContext,
    (primary, research): (&Db, &Db),
    settings: &ResearchSettings,
    svg: bool,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    query.refuse(&["format"], "is for the export only")?;
    query.chosen_wear_off_days()?;
    query.refuse(&["wear_off_days"], "is not taken by the trajectories")?;
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
    let c = Context {
        primary,
        research,
        settings,
    };
    let canonical = query.canonical(&group_by, None);
    let answerable = Trajectories {
        instrument,
        group_by,
        filter,
        derived,
        privacy: c.privacy(),
    };
    let (mut body, statement) = c
        .answer(
            &caller,
            &ctx,
            ("research_trajectories", &canonical),
            answerable,
        )
        .await?;
    if svg {
        let drawing = charts::research_curves(instrument.definition(), &body.rows)
            .map_err(|e| ApiError::Internal(e.into()))?;
        return Ok(HttpResponse::Ok()
            .content_type("image/svg+xml")
            .body(drawing));
    }
    body.privacy = statement;
    Ok(HttpResponse::Ok().json(body))
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
    pub grant: Option<crate::api::research_grants::GrantResponse>,
}

/// The caller's tier, privacy budget, spending and renewal.
#[utoipa::path(
    tag = "research",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's budget", body = BudgetResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
    )
)]
#[get("/v1/research/budget")]
pub async fn research_budget(
    caller: Caller,
    db: web::Data<Db>,
    settings: web::Data<ResearchSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    let s = **settings;
    let researcher = caller.user_id.clone();
    let (grant, (spent, queries, start, end)) = db
        .run(move |conn| {
            let now = clock::to_db(clock::now());
            let grant = crate::store::research_access::grant_in_force(conn, &researcher, now)?;
            Ok::<_, StoreError>((grant, access::spending(conn, &researcher, &s)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(BudgetResponse {
        tier: if grant.is_some() {
            Tier::Controlled
        } else {
            Tier::Aggregate
        },
        epsilon_budget: s.epsilon_budget,
        epsilon_spent: spent,
        epsilon_remaining: (s.epsilon_budget - spent).max(0.0),
        epsilon_per_query: s.epsilon_per_query,
        queries,
        period_start: start,
        renews_at: end,
        delta: s.delta,
        grant: grant.map(Into::into),
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
        (status = 200, description = "The rows", content(
            (research::export::ExportRow = "text/csv"),
            (research::export::ExportRow = "application/x-ndjson"),
        )),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research/export")]
pub async fn research_export(
    caller: Caller,
    query: web::Query<ResearchQuery>,
    ctx: RequestContext,
    pools: (web::Data<Db>, web::Data<ResearchDb>),
    settings: web::Data<ResearchSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Researcher])?;
    let query = query.into_inner();
    query.refuse(&["group_by"], "is not taken by the export: it is row-level")?;
    query.refuse(
        &["clinic"],
        "is not taken by the export: it neither filters nor labels by clinic",
    )?;
    query.chosen_wear_off_days()?;
    query.refuse(&["wear_off_days"], "is not taken by the export")?;
    crate::api::research_export::stream(caller, query, ctx, (&pools.0, &pools.1 .0), &settings)
        .await
}

impl ResearchQuery {
    /// The export's filter, checked like every research query's.
    pub(crate) fn export_filter(&self) -> Result<research::export::ExportFilter, ApiError> {
        let (filter, derived) = self.filters()?;
        Ok(research::export::ExportFilter {
            indication: filter.indication,
            sex: filter.sex,
            age_band: derived.age_band,
            adherence_band: derived.adherence_band,
            route: filter.route,
            dose_band: derived.dose_band,
            phase: derived.phase,
            instrument: self.instrument,
            from: filter.from,
            to: filter.to,
        })
    }

    /// `csv` (true) or `ndjson` (false).
    pub(crate) fn csv(&self) -> Result<bool, ApiError> {
        match self.format.as_deref().unwrap_or("csv") {
            "csv" => Ok(true),
            "ndjson" => Ok(false),
            _ => Err(ApiError::invalid("format", "must be csv or ndjson")),
        }
    }

    pub(crate) fn audit_detail(&self) -> serde_json::Value {
        serde_json::to_value(self.canonical(&[], None)).unwrap_or_default()
    }
}
