//! The research questions (domain.md §8): outcomes, side effects and trajectories of
//! consenting patients, per group — each answered in the caller's tier (`access`), streamed
//! from the research pool.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::call::Call;
use crate::clock;
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::ids::{ClinicId, CourseId, PatientId, SessionId};
use crate::domain::instrument::Instrument;
use crate::domain::patient::{Indication, Sex};
use crate::domain::privacy::Tier;
use crate::domain::research::{AdherenceBand, AgeBand, Dimension, DoseBand, InfusionNumberBand};
use crate::domain::schedule::Phase;
use crate::domain::side_effect::Effect;
use crate::domain::treatment::Route;
use crate::error::ApiError;
use crate::research::access::{self, Answerable, PrivacyStatement};
use crate::research::private::{self, Contribution, Privacy, SessionPoint, Spent};
use crate::research::{self, DerivedFilter, Group, OutcomeRow, SideEffectRow, TrajectoryRow};
use crate::store::research::{self as facts, ResearchFilter};
use crate::store::research_access::{self as grants, GrantRow};
use crate::store::{DbConnection, StoreError};

/// A research question's parameters, checked: what makes two questions the same.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Question {
    pub instrument: Option<Instrument>,
    /// In canonical (declaration) order.
    pub group_by: Vec<Dimension>,
    /// W, when the question sets it (outcomes only).
    pub wear_off_days: Option<f64>,
    pub indication: Option<Indication>,
    pub route: Option<Route>,
    pub dose_band: Option<DoseBand>,
    pub sex: Option<Sex>,
    pub age_band: Option<AgeBand>,
    pub clinic: Option<ClinicId>,
    pub phase: Option<Phase>,
    pub adherence_band: Option<AdherenceBand>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Question {
    /// The filters the database applies, and those applied to derived dimensions.
    pub fn filters(&self) -> (ResearchFilter, DerivedFilter) {
        (
            ResearchFilter {
                clinic_id: self.clinic,
                indication: self.indication,
                route: self.route,
                sex: self.sex,
                from: self.from.map(clock::to_db),
                to: self.to.map(clock::to_db),
            },
            DerivedFilter {
                dose_band: self.dose_band.map(|b| b.as_str().to_owned()),
                age_band: self.age_band.as_ref().map(ToString::to_string),
                phase: self.phase.map(|p| p.as_str().to_owned()),
                adherence_band: self.adherence_band.map(|b| b.as_str().to_owned()),
            },
        )
    }
}

/// Answers `query` for the caller in their tier, audited with the question it asked.
async fn answer<Q: Answerable>(
    call: &Call,
    action: Action,
    question: &Question,
    query: Q,
) -> Result<(Q::Body, PrivacyStatement), ApiError> {
    call.require(&[Role::Researcher])?;
    let key = access::query_key(action.as_str(), question);
    let detail = serde_json::to_value(question).unwrap_or_default();
    access::answer(call, action, (key, detail), query).await
}

fn privacy(call: &Call) -> Privacy {
    let settings = &call.services.research;
    Privacy {
        epsilon: settings.epsilon_per_query,
        delta: settings.delta,
        k: settings.min_cell,
        bounds: settings.bounds,
    }
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
            Dimension::DoseBand => DoseBand::ALL.len(),
            Dimension::Sex => Sex::ALL.len(),
            Dimension::AgeBand => AgeBand::COUNT,
            Dimension::Clinic => facts::clinic_count(conn)?,
            Dimension::Phase => Phase::ALL.len(),
            Dimension::AdherenceBand => AdherenceBand::ALL.len(),
            Dimension::InfusionNumber => InfusionNumberBand::ALL.len(),
        });
    }
    Ok(count)
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"privacy": {"tier": "aggregate", "epsilon_spent": 4.0, "epsilon_remaining": 36.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": 0.000001, "release_threshold": 28, "repeated": false},
    "k": 11, "wear_off_days": 7.0, "instrument": "phq9", "group_by": ["route"], "rows": [], "withheld_groups": 5}))]
pub struct ResearchOutcomesResponse {
    /// The tier and the privacy cost of this answer.
    #[schema(required = true)]
    #[serde(default = "placeholder_statement")]
    pub privacy: PrivacyStatement,
    /// The small-cell threshold: no group of fewer patients is shown.
    pub k: usize,
    /// W used for this query.
    pub wear_off_days: f64,
    #[schema(required = true)]
    pub instrument: Option<Instrument>,
    pub group_by: Vec<Dimension>,
    /// The released groups only, in group order.
    pub rows: Vec<OutcomeRow>,
    /// Groups not shown. In the controlled tier, groups with data but too few patients (and
    /// their complements); in the aggregate tier, every possible combination not released,
    /// whether or not any patient is in it (telling which have patients would itself tell).
    pub withheld_groups: usize,
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

    fn wanted(&self, p: &research::Placed<'_>) -> bool {
        self.instrument
            .is_none_or(|i| p.fact.primary_instrument == i)
    }
}

impl Answerable for Outcomes {
    type Body = ResearchOutcomesResponse;

    fn exact(self, conn: &mut DbConnection) -> Result<Self::Body, ApiError> {
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let mut aggregate = research::OutcomeAggregate::new(&self.group_by, self.wear_off_days);
        each_session(conn, &self.filter, &self.derived, &ctx, |p| {
            if self.wanted(p) {
                aggregate.add(p);
            }
        })?;
        let course_ids = aggregate.course_ids();
        let courses = facts::course_facts(conn, &course_ids)?
            .into_iter()
            .map(|c| (c.0, c))
            .collect();
        let adherence = course_adherence(conn, &course_ids)?;
        let (rows, withheld) = aggregate.rows(
            &courses,
            &adherence,
            self.instrument.is_some(),
            self.privacy.k,
        );
        Ok(self.body(rows, withheld))
    }

    fn private(self, conn: &mut DbConnection) -> Result<(Self::Body, Spent), ApiError> {
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let contributions = bounded_sessions(
            conn,
            (&self.filter, &self.derived, &ctx),
            &self.group_by,
            &self.privacy,
            |p| self.wanted(p),
        )?;
        let course_ids: Vec<CourseId> = contributions
            .iter()
            .flat_map(|c| c.courses.iter().filter_map(|c| c.parse().ok()))
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
                (id.to_string(), inputs)
            })
            .collect();
        let query = private::OutcomeQuery {
            wear_off_days: self.wear_off_days,
            baseline_max: self.instrument.map(|i| i.definition().total_max()),
        };
        let released = private::outcomes(&contributions, &courses, query, &self.privacy)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let possible = possible_groups(conn, &self.group_by, 1)?;
        let withheld = possible.saturating_sub(released.rows.len());
        Ok((self.body(released.rows, withheld), released.spent))
    }
}

/// Outcome aggregates per group (domain.md §8, Outcomes): W is the question's, else the
/// deployment's.
pub async fn outcomes(
    call: &Call,
    question: Question,
) -> Result<ResearchOutcomesResponse, ApiError> {
    let wear_off_days = question
        .wear_off_days
        .unwrap_or(call.clinical().wear_off_days);
    let question = Question {
        wear_off_days: Some(wear_off_days),
        ..question
    };
    let (filter, derived) = question.filters();
    let query = Outcomes {
        group_by: question.group_by.clone(),
        filter,
        derived,
        wear_off_days,
        instrument: question.instrument,
        privacy: privacy(call),
    };
    let (body, privacy) = answer(call, Action::ResearchOutcomes, &question, query).await?;
    Ok(ResearchOutcomesResponse { privacy, ..body })
}

/// Each course's measurement-plan adherence now: (completed on time, due).
fn course_adherence(
    conn: &mut DbConnection,
    course_ids: &[CourseId],
) -> Result<HashMap<CourseId, (usize, usize)>, StoreError> {
    crate::plan::adherence_of_courses(conn, course_ids, clock::now())
}

/// What dimensions are derived from beyond a session's own row: each patient's first
/// session (age band), and each course's adherence (only when a question asks for its band).
struct Derivations {
    /// Read only when the question's age bands need it (a scan of every completed session).
    firsts: Option<HashMap<PatientId, NaiveDateTime>>,
    adherence: HashMap<CourseId, (usize, usize)>,
    /// Each completed session's number in its course, when a question groups by it.
    infusion_numbers: HashMap<SessionId, u32>,
    /// What the question reads of each session.
    reads: facts::Reads,
}

impl Derivations {
    fn load(
        conn: &mut DbConnection,
        filter: &ResearchFilter,
        derived: &DerivedFilter,
        group_by: &[Dimension],
    ) -> Result<Self, StoreError> {
        let firsts = if derived.age_band.is_some() || group_by.contains(&Dimension::AgeBand) {
            Some(first_sessions(conn)?)
        } else {
            None
        };
        let infusion_numbers = if group_by.contains(&Dimension::InfusionNumber) {
            facts::infusion_numbers(conn)?.into_iter().collect()
        } else {
            HashMap::new()
        };
        let mut ctx = Self {
            firsts,
            adherence: HashMap::new(),
            infusion_numbers,
            reads: research::dimension_reads(group_by, derived),
        };
        if derived.adherence_band.is_some() || group_by.contains(&Dimension::AdherenceBand) {
            let mut courses = HashSet::new();
            each_session(conn, filter, &DerivedFilter::default(), &ctx, |p| {
                courses.insert(p.fact.course_id);
            })?;
            ctx.adherence = course_adherence(conn, &courses.into_iter().collect::<Vec<_>>())?;
        }
        Ok(ctx)
    }

    /// Each patient's first session: as read for the age bands, or read now.
    fn into_firsts(
        self,
        conn: &mut DbConnection,
    ) -> Result<HashMap<PatientId, NaiveDateTime>, StoreError> {
        self.firsts.map_or_else(|| first_sessions(conn), Ok)
    }

    /// `fact` placed, if the derived filters allow it.
    fn place<'a>(
        &self,
        fact: &'a facts::SessionFact,
        derived: &DerivedFilter,
    ) -> Option<research::Placed<'a>> {
        research::place(
            fact,
            self.firsts.as_ref(),
            &self.adherence,
            &self.infusion_numbers,
            derived,
        )
    }
}

/// Each consenting patient's first completed session.
fn first_sessions(
    conn: &mut DbConnection,
) -> Result<HashMap<PatientId, NaiveDateTime>, StoreError> {
    Ok(facts::first_sessions(conn)?
        .into_iter()
        .filter_map(|(p, t)| Some((p, t?)))
        .collect())
}

/// Feeds every session fact the filters allow to `add`.
fn each_session(
    conn: &mut DbConnection,
    filter: &ResearchFilter,
    derived: &DerivedFilter,
    ctx: &Derivations,
    mut add: impl FnMut(&research::Placed<'_>),
) -> Result<(), StoreError> {
    facts::each_session_fact(conn, filter, ctx.reads, |fact| {
        if let Some(placed) = ctx.place(&fact, derived) {
            add(&placed);
        }
    })
}

/// Every session the question selects, bounded per patient for the aggregate tier.
fn bounded_sessions(
    conn: &mut DbConnection,
    (filter, derived, ctx): (&ResearchFilter, &DerivedFilter, &Derivations),
    group_by: &[Dimension],
    privacy: &Privacy,
    keep: impl Fn(&research::Placed<'_>) -> bool,
) -> Result<Vec<Contribution>, StoreError> {
    let mut points = Vec::new();
    each_session(conn, filter, derived, ctx, |p| {
        if keep(p) {
            // The private tier counts patients by opaque keys.
            points.push(SessionPoint {
                patient: p.fact.patient_id.to_string(),
                course: p.fact.course_id.to_string(),
                session: p.fact.session_id.to_string(),
                started_at: p.fact.started_at,
                group: p.group(group_by),
                status: p.fact.status,
                durability_days: p.fact.durability_days,
                charge_cents: p.fact.charge_cents,
            });
        }
    })?;
    Ok(private::bound(points, &privacy.bounds))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"privacy": {"tier": "controlled", "epsilon_spent": 0.0, "epsilon_remaining": 40.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": null, "release_threshold": null, "repeated": false},
    "k": 11, "group_by": ["route"], "rows": [{"group": {"route": "iv"}, "effect": "nausea",
    "patients": 18, "reports": 31, "sessions": 240, "sessions_with_effect_per_100": 12.5,
    "severity_counts": {"mild": 20, "moderate": 9, "severe": 2, "life_threatening": 0}, "median_hours_to_resolution": 3.5,
    "share_unresolved": 0.0323, "error_95": null}], "withheld_groups": 2}))]
pub struct ResearchSideEffectsResponse {
    #[schema(required = true)]
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

    /// Every side effect the question selects, with the session fact it belongs to.
    fn reports(
        &self,
        conn: &mut DbConnection,
        ctx: &Derivations,
        mut add: impl FnMut(&research::Placed<'_>, &facts::SideEffectFact),
    ) -> Result<(), StoreError> {
        // Each report with its own session: one the derived filters leave out is skipped.
        facts::each_side_effect_fact(conn, &self.filter, ctx.reads, |session, effect| {
            if let Some(placed) = ctx.place(&session, &self.derived) {
                add(&placed, &effect);
            }
        })
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
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        let contributions = bounded_sessions(
            conn,
            (&self.filter, &self.derived, &ctx),
            &self.group_by,
            &self.privacy,
            |_| true,
        )?;
        let mut reports = Vec::new();
        self.reports(conn, &ctx, |p, e| {
            reports.push(private::ReportPoint {
                patient: p.fact.patient_id.to_string(),
                report: e.id.to_string(),
                session: p.fact.session_id.to_string(),
                effect: e.effect,
                severity: e.severity,
                onset_at: e.onset_at,
                hours_to_resolution: e
                    .resolved_at
                    .map(|r| (r - e.onset_at).num_seconds() as f64 / 3600.0),
            });
        })?;
        let released = private::side_effects(&contributions, &reports, &self.privacy)
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
        let possible = possible_groups(conn, &self.group_by, Effect::ALL.len())?;
        let withheld = possible.saturating_sub(released.rows.len());
        Ok((self.body(released.rows, withheld), released.spent))
    }
}

/// Side-effect rates per group and effect (domain.md §8).
pub async fn side_effects(
    call: &Call,
    question: Question,
) -> Result<ResearchSideEffectsResponse, ApiError> {
    let (filter, derived) = question.filters();
    let query = SideEffects {
        group_by: question.group_by.clone(),
        filter,
        derived,
        privacy: privacy(call),
    };
    let (body, privacy) = answer(call, Action::ResearchSideEffects, &question, query).await?;
    Ok(ResearchSideEffectsResponse { privacy, ..body })
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"privacy": {"tier": "controlled", "epsilon_spent": 0.0, "epsilon_remaining": 40.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": null, "release_threshold": null, "repeated": false},
    "k": 11, "instrument": "phq9", "group_by": ["sex"], "rows": [{"group": {"sex": "female"}, "week": 0,
    "patients": 14, "count": 30, "mean": 17.2, "sd": 4.1, "error_95": null}], "withheld_groups": 0}))]
pub struct ResearchTrajectoriesResponse {
    #[schema(required = true)]
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

/// Each patient's first session and group, and the scores of the question's instrument in
/// its range (streamed, filtered by time in the database).
struct TrajectoryInputs {
    firsts: HashMap<PatientId, NaiveDateTime>,
    /// Each patient's group.
    groups: HashMap<PatientId, Group>,
    scores: Vec<facts::ScoreFact>,
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

    /// A patient's group is that of their first session the filters allow, at any time.
    fn inputs(&self, conn: &mut DbConnection) -> Result<TrajectoryInputs, StoreError> {
        let ctx = Derivations::load(conn, &self.filter, &self.derived, &self.group_by)?;
        // The first session by time, then by id: the sessions arrive in no order.
        let mut first_groups: HashMap<PatientId, ((NaiveDateTime, SessionId), Group)> =
            HashMap::new();
        let everywhen = ResearchFilter {
            from: None,
            to: None,
            ..self.filter.clone()
        };
        each_session(conn, &everywhen, &self.derived, &ctx, |p| {
            let at = (p.fact.started_at, p.fact.session_id);
            let entry = first_groups
                .entry(p.fact.patient_id)
                .or_insert_with(|| (at, p.group(&self.group_by)));
            if at < entry.0 {
                *entry = (at, p.group(&self.group_by));
            }
        })?;
        let mut scores = Vec::new();
        facts::each_score(conn, self.instrument, &self.filter, |score| {
            if first_groups.contains_key(&score.patient_id) {
                scores.push(score);
            }
        })?;
        Ok(TrajectoryInputs {
            firsts: ctx.into_firsts(conn)?,
            groups: first_groups
                .into_iter()
                .map(|(id, (_, g))| (id, g))
                .collect(),
            scores,
        })
    }
}

impl Answerable for Trajectories {
    type Body = ResearchTrajectoriesResponse;

    fn exact(self, conn: &mut DbConnection) -> Result<Self::Body, ApiError> {
        let inputs = self.inputs(conn)?;
        let (rows, withheld) = research::trajectory_rows(
            &inputs.scores,
            &inputs.firsts,
            &inputs.groups,
            self.instrument,
            self.privacy.k,
        );
        Ok(self.body(rows, withheld))
    }

    fn private(self, conn: &mut DbConnection) -> Result<(Self::Body, Spent), ApiError> {
        let inputs = self.inputs(conn)?;
        let def = self.instrument.definition();
        let groups: HashMap<String, Group> = inputs
            .groups
            .iter()
            .map(|(p, g)| (p.to_string(), g.clone()))
            .collect();
        let points: Vec<private::ScorePoint> = inputs
            .scores
            .into_iter()
            .filter_map(|score| {
                let first = inputs.firsts.get(&score.patient_id)?;
                let week = research::week_of(*first, score.taken_at)?;
                Some(private::ScorePoint {
                    severity: def.severity(score.total),
                    patient: score.patient_id.to_string(),
                    assessment: score.assessment_id.to_string(),
                    week,
                    taken_at: score.taken_at,
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

/// Weekly mean severity of one instrument per group, weeks 0–52 since the first session.
pub async fn trajectories(
    call: &Call,
    instrument: Instrument,
    question: Question,
) -> Result<ResearchTrajectoriesResponse, ApiError> {
    if let Some(d) = question.group_by.iter().find(|d| {
        matches!(
            d,
            Dimension::Route | Dimension::DoseBand | Dimension::Phase | Dimension::InfusionNumber
        )
    }) {
        return Err(ApiError::invalid(
            "group_by",
            format!("{d} describes a session, not a patient's trajectory"),
        ));
    }
    let question = Question {
        instrument: Some(instrument),
        ..question
    };
    let (filter, derived) = question.filters();
    let query = Trajectories {
        instrument,
        group_by: question.group_by.clone(),
        filter,
        derived,
        privacy: privacy(call),
    };
    let (body, privacy) = answer(call, Action::ResearchTrajectories, &question, query).await?;
    Ok(ResearchTrajectoriesResponse { privacy, ..body })
}

/// A researcher's tier, privacy budget and spending in the current period.
pub struct Budget {
    pub tier: Tier,
    pub epsilon_spent: f64,
    pub queries: i32,
    pub period_start: DateTime<Utc>,
    pub renews_at: DateTime<Utc>,
    /// The controlled-tier grant in force, if any.
    pub grant: Option<GrantRow>,
}

/// The caller's tier, budget, spending and renewal (researchers).
pub async fn budget(call: &Call) -> Result<Budget, ApiError> {
    call.require(&[Role::Researcher])?;
    let settings = call.services.research;
    let researcher = call.caller.user_id;
    let (grant, (spent, queries, start, end)) = call
        .run(move |conn| {
            let now = clock::to_db(clock::now());
            let grant = grants::grant_in_force(conn, researcher, now)?;
            Ok::<_, StoreError>((grant, access::spending(conn, researcher, &settings)?))
        })
        .await?;
    Ok(Budget {
        tier: if grant.is_some() {
            Tier::Controlled
        } else {
            Tier::Aggregate
        },
        epsilon_spent: spent,
        queries,
        period_start: start,
        renews_at: end,
        grant,
    })
}
