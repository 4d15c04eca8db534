//! Settings, read once from environment variables and checked before anything starts.
//!
//! Every variable is documented in the README with its default. A bad value stops the start
//! with one line naming the variable and the rule it broke.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::egress::Egress;
use crate::domain::webhooks::RetrySchedule;

/// Which database engine a URL points at; decided once, here, from the URL's form.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(Secret),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    fn parse(var: &'static str, raw: &str) -> Result<Self, ConfigError> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(Secret(raw.to_owned())));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() || path.contains("://") {
            return Err(ConfigError::new(
                var,
                "must be a postgres:// URL, a sqlite:// URL or a path to an SQLite file",
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// The URL as the diesel connection wants it.
    pub fn connection_string(&self) -> String {
        match self {
            Self::Postgres(url) => url.expose().to_owned(),
            Self::Sqlite(path) => path.to_string_lossy().into_owned(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
            Self::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
        }
    }
}

/// A value that must never reach a log line: its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub bind_address: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    /// Research queries go here when set (a read replica); otherwise to `database_url`.
    pub research_database_url: Option<DatabaseUrl>,
    /// The address clients reach this deployment at, named first in the served OpenAPI
    /// document; unset, the document's one server is relative (`/`).
    pub public_url: Option<String>,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before it is answered 503.
    pub db_acquire_timeout: Duration,
    pub log_format: LogFormat,
    /// Production mode refuses unsafe defaults (a generated signing key, for one).
    pub production: bool,
    /// How long in-flight requests get to finish after SIGINT or SIGTERM.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's head (408 after it).
    pub request_head_timeout: Duration,
    /// How long a client may take to send a request's body once the head is in (408 after).
    pub request_body_timeout: Duration,
    /// How often the flags that time raises are swept for (`sweep`).
    pub sweep_interval: Duration,
    /// How long an urgent flag may stay unacknowledged before it is escalated.
    pub escalation_after: Duration,
    /// When a failed webhook delivery is tried again (the Standard Webhooks schedule unless
    /// set).
    pub webhook_retries: RetrySchedule,
    /// Where webhooks may be sent: public https only in production.
    pub webhook_egress: Egress,
    pub auth: AuthSettings,
    pub clinical: ClinicalSettings,
    pub research: ResearchSettings,
}

/// Research access (domain.md §8, §8a): the small-cell threshold and the differential privacy
/// of the aggregate tier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResearchSettings {
    /// k: a group with fewer distinct patients is withheld (never below 5).
    pub min_cell: usize,
    /// ε each answered aggregate-tier query spends.
    pub epsilon_per_query: f64,
    /// ε each researcher may spend per renewal period.
    pub epsilon_budget: f64,
    /// How long a budget lasts before it renews, in days.
    pub budget_days: u32,
    /// δ: the chance that a group key is released although too few patients are behind it.
    pub delta: f64,
    /// Contribution bounds: what one patient may add to one aggregate-tier answer.
    pub bounds: crate::domain::privacy::Bounds,
}

/// The clinical thresholds clinics set differently (domain.md §6–7), with the spec's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClinicalSettings {
    /// W: a benefit lost within this many days "wears off within days".
    pub wear_off_days: f64,
    /// How long side effects are expected to last before they count as persistent.
    pub persistence: crate::domain::side_effect::Persistence,
    /// Each instrument's remission cut-off.
    pub remission: crate::domain::instrument::RemissionCutOffs,
    pub thresholds: crate::domain::flags::Thresholds,
    /// Personal durability's settings (§6a).
    pub durability: crate::domain::durability::DurabilitySettings,
}

/// Password hashes per minute, with a burst.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HashRate {
    pub per_minute: u32,
    pub burst: u32,
}

/// The ceilings on password hashing per client address and per account.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HashLimits {
    pub per_address: HashRate,
    pub per_account: HashRate,
}

/// Sign-in, tokens and password hashing.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// The key access tokens are signed with; generated into the data directory when absent
    /// outside production mode.
    pub jwt_secret: Option<Secret>,
    /// Keys still accepted for verification while a rotation completes.
    pub jwt_previous_secrets: Vec<Secret>,
    pub access_token_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Failed sign-ins per account before back-off starts.
    pub account_failure_limit: u32,
    /// Failed sign-ins per client address in the throttle window before it is refused.
    pub address_failure_limit: u32,
    /// Load balancers whose `X-Forwarded-For` names the client; from anyone else the header
    /// is ignored, so a client cannot forge its way out of the per-address throttle.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Password hashes per minute a client address, and an account, may cost this process.
    pub hash_limits: HashLimits,
}

/// The smallest key accepted for HS256: as many bytes as the hash output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var} {rule}")]
pub struct ConfigError {
    pub var: &'static str,
    pub rule: &'static str,
}

impl ConfigError {
    fn new(var: &'static str, rule: &'static str) -> Self {
        Self { var, rule }
    }
}

pub const DEFAULT_BIND_ADDRESS: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "data";
pub const SQLITE_FILE_NAME: &str = "ketamine-outcomes.db";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `lookup`, so tests can supply an environment of their own.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bind_address = parse_or(&lookup, "KO_BIND_ADDRESS", DEFAULT_BIND_ADDRESS, |v| {
            v.parse()
                .map_err(|_| "must be an address and port such as 127.0.0.1:8080")
        })?;
        let data_dir = PathBuf::from(lookup("KO_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR.into()));
        let database_url = match lookup("DATABASE_URL") {
            Some(raw) => DatabaseUrl::parse("DATABASE_URL", &raw)?,
            None => DatabaseUrl::Sqlite(data_dir.join(SQLITE_FILE_NAME)),
        };
        let research_database_url = lookup("KO_RESEARCH_DATABASE_URL")
            .map(|raw| DatabaseUrl::parse("KO_RESEARCH_DATABASE_URL", &raw))
            .transpose()?;
        let public_url = lookup("KO_PUBLIC_URL")
            .map(|raw| public_url(&raw).map_err(|rule| ConfigError::new("KO_PUBLIC_URL", rule)))
            .transpose()?;
        let db_pool_size = parse_or(&lookup, "KO_DB_POOL_SIZE", "10", |v| match v.parse() {
            Ok(n @ 1..=200) => Ok(n),
            _ => Err("must be a whole number from 1 to 200"),
        })?;
        let db_acquire_timeout = seconds(&lookup, "KO_DB_ACQUIRE_TIMEOUT_SECS", "5")?;
        let shutdown_timeout = seconds(&lookup, "KO_SHUTDOWN_TIMEOUT_SECS", "30")?;
        let request_head_timeout = seconds(&lookup, "KO_REQUEST_HEAD_TIMEOUT_SECS", "5")?;
        let request_body_timeout = seconds(&lookup, "KO_REQUEST_BODY_TIMEOUT_SECS", "10")?;
        // A flag that time raises must reach the worklist within a minute of falling due.
        let sweep_interval = parse_or(&lookup, "KO_SWEEP_SECS", "30", |v| match v.parse() {
            Ok(n @ 1..=60) => Ok(Duration::from_secs(n)),
            _ => Err("must be a whole number of seconds from 1 to 60"),
        })?;
        let escalation_after = parse_or(&lookup, "KO_ESCALATION_MINUTES", "15", |v| {
            match v.parse() {
                Ok(n @ 1..=1440) => Ok(Duration::from_secs(n * 60)),
                _ => Err("must be a whole number of minutes from 1 to 1440"),
            }
        })?;
        let webhook_retries = parse_or(&lookup, "KO_WEBHOOK_RETRY_SECONDS", "", webhook_retries)?;
        let log_format = parse_or(&lookup, "KO_LOG_FORMAT", "pretty", |v| match v {
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err("must be json or pretty"),
        })?;
        let production = parse_or(&lookup, "KO_PRODUCTION", "false", |v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("must be true or false"),
        })?;
        if production && matches!(research_database_url, Some(DatabaseUrl::Sqlite(_))) {
            return Err(ConfigError::new(
                "KO_RESEARCH_DATABASE_URL",
                "must be a postgres:// URL in production (a read replica)",
            ));
        }
        let default_egress = if production { "public" } else { "any" };
        let webhook_egress = parse_or(&lookup, "KO_WEBHOOK_EGRESS", default_egress, |v| {
            match (v, production) {
                ("public", _) => Ok(Egress::Public),
                ("any", false) => Ok(Egress::Any),
                ("loopback", false) => Ok(Egress::Loopback),
                (_, true) => Err("must be public in production"),
                _ => Err("must be public, any or loopback"),
            }
        })?;
        let auth = auth_settings(&lookup)?;
        let clinical = clinical_settings(&lookup)?;
        let research = research_settings(&lookup)?;
        if production && auth.jwt_secret.is_none() {
            return Err(ConfigError::new(
                "KO_JWT_SECRET",
                "must be set in production mode",
            ));
        }
        Ok(Self {
            auth,
            clinical,
            research,
            bind_address,
            data_dir,
            database_url,
            research_database_url,
            public_url,
            db_pool_size,
            db_acquire_timeout,
            log_format,
            production,
            shutdown_timeout,
            request_head_timeout,
            request_body_timeout,
            sweep_interval,
            escalation_after,
            webhook_retries,
            webhook_egress,
        })
    }

    /// Where webhooks may be sent.
    pub fn egress(&self) -> Egress {
        self.webhook_egress
    }
}

/// A comma-separated list of waits in seconds, the first before the first attempt (1 to 20
/// attempts, each wait at most a day); empty, the specification's schedule.
fn webhook_retries(raw: &str) -> Result<RetrySchedule, &'static str> {
    const RULE: &str = "must be 1 to 20 comma-separated whole numbers of seconds up to 86400";
    if raw.is_empty() {
        return Ok(RetrySchedule::standard());
    }
    let waits = raw
        .split(',')
        .map(|w| match w.trim().parse() {
            Ok(n @ 0..=86_400) => Ok(Duration::from_secs(n)),
            _ => Err(RULE),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > 20 {
        return Err(RULE);
    }
    RetrySchedule::new(waits).ok_or(RULE)
}

fn auth_settings(lookup: &impl Fn(&str) -> Option<String>) -> Result<AuthSettings, ConfigError> {
    let jwt_secret = lookup("KO_JWT_SECRET")
        .map(|raw| parse_jwt_secret("KO_JWT_SECRET", &raw))
        .transpose()?;
    let jwt_previous_secrets = lookup("KO_JWT_PREVIOUS_SECRETS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|raw| parse_jwt_secret("KO_JWT_PREVIOUS_SECRETS", raw))
        .collect::<Result<_, _>>()?;
    let access_token_ttl = parse_or(lookup, "KO_ACCESS_TOKEN_MINUTES", "15", |v| {
        match v.parse() {
            Ok(n @ 1..=60) => Ok(Duration::from_secs(n * 60)),
            _ => Err("must be a whole number of minutes from 1 to 60"),
        }
    })?;
    let argon2_memory_kib = parse_or(lookup, "KO_ARGON2_MEMORY_KIB", "19456", |v| {
        match v.parse() {
            Ok(n @ 19_456..=4_194_304) => Ok(n),
            _ => Err("must be at least 19456 (19 MiB)"),
        }
    })?;
    let argon2_iterations = parse_or(lookup, "KO_ARGON2_ITERATIONS", "2", |v| match v.parse() {
        Ok(n @ 2..=20) => Ok(n),
        _ => Err("must be a whole number from 2 to 20"),
    })?;
    let account_failure_limit =
        parse_or(lookup, "KO_LOGIN_ACCOUNT_LIMIT", "5", |v| match v.parse() {
            Ok(n @ 3..=20) => Ok(n),
            _ => Err("must be a whole number from 3 to 20"),
        })?;
    let address_failure_limit = parse_or(lookup, "KO_LOGIN_ADDRESS_LIMIT", "50", |v| {
        match v.parse() {
            Ok(n @ 10..=10_000) => Ok(n),
            _ => Err("must be a whole number from 10 to 10000"),
        }
    })?;
    if address_failure_limit <= account_failure_limit {
        return Err(ConfigError::new(
            "KO_LOGIN_ADDRESS_LIMIT",
            "must be higher than KO_LOGIN_ACCOUNT_LIMIT (staff share one address)",
        ));
    }
    let trusted_proxies = lookup("KO_TRUSTED_PROXIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                ConfigError::new(
                    "KO_TRUSTED_PROXIES",
                    "must be a comma-separated list of IP addresses",
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let hashes_per_minute = |var: &'static str, default: &str| {
        parse_or(lookup, var, default, |v| match v.parse::<u32>() {
            Ok(n @ 1..=1_000_000) => Ok(HashRate {
                per_minute: n,
                burst: n.div_ceil(3),
            }),
            _ => Err("must be a whole number of hashes per minute from 1 to 1000000"),
        })
    };
    let hash_limits = HashLimits {
        per_address: hashes_per_minute("KO_HASHES_PER_MINUTE_PER_ADDRESS", "30")?,
        per_account: hashes_per_minute("KO_HASHES_PER_MINUTE_PER_ACCOUNT", "15")?,
    };
    Ok(AuthSettings {
        hash_limits,
        trusted_proxies,
        jwt_secret,
        jwt_previous_secrets,
        access_token_ttl,
        argon2_memory_kib,
        argon2_iterations,
        account_failure_limit,
        address_failure_limit,
    })
}

fn clinical_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<ClinicalSettings, ConfigError> {
    let wear_off_days = parse_or(lookup, "KO_WEAR_OFF_DAYS", "7", |v| {
        match v.parse::<u32>() {
            Ok(n @ 1..=60) => Ok(f64::from(n)),
            _ => Err("must be a whole number of days from 1 to 60"),
        }
    })?;
    let mm_hg = |var: &'static str, default: &str| {
        parse_or(lookup, var, default, |v| match v.parse() {
            Ok(n @ 60..=260) => Ok(n),
            _ => Err("must be a blood pressure in mmHg from 60 to 260"),
        })
    };
    let thresholds = crate::domain::flags::Thresholds {
        pre_systolic: mm_hg("KO_PRE_SESSION_SYSTOLIC", "160")?,
        pre_diastolic: mm_hg("KO_PRE_SESSION_DIASTOLIC", "100")?,
        post_systolic: mm_hg("KO_POST_DOSE_SYSTOLIC", "180")?,
        post_diastolic: mm_hg("KO_POST_DOSE_DIASTOLIC", "110")?,
    };
    let hours = |var: &'static str, default: &str| {
        parse_or(lookup, var, default, |v| match v.parse() {
            Ok(n @ 1..=168) => Ok(Duration::from_secs(n * 3600)),
            _ => Err("must be a whole number of hours from 1 to 168"),
        })
    };
    let as_chrono = |d: Duration| chrono::Duration::seconds(d.as_secs() as i64);
    let persistence = crate::domain::side_effect::Persistence {
        short: as_chrono(hours("KO_PERSISTENCE_SHORT_HOURS", "4")?),
        long: as_chrono(hours("KO_PERSISTENCE_LONG_HOURS", "24")?),
    };
    let mut remission = crate::domain::instrument::RemissionCutOffs::default();
    for (var, instrument) in REMISSION_VARS {
        if let Some(raw) = lookup(var) {
            let cut_off = raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(var, "must be a whole-number total"))?;
            remission = remission
                .with(instrument, cut_off)
                .map_err(|rule| ConfigError::new(var, rule))?;
        }
    }
    Ok(ClinicalSettings {
        wear_off_days,
        persistence,
        remission,
        thresholds,
        durability: durability_settings(lookup)?,
    })
}

/// domain.md §6a: R, G and the bounds of a suggested maintenance interval.
fn durability_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<crate::domain::durability::DurabilitySettings, ConfigError> {
    let days = |var: &'static str, default: &str| {
        parse_or(lookup, var, default, |v| match v.parse::<u32>() {
            Ok(n @ 1..=365) => Ok(n),
            _ => Err("must be a whole number of days from 1 to 365"),
        })
    };
    let recent = parse_or(lookup, "KO_DURABILITY_RECENT_SESSIONS", "6", |v| {
        match v.parse() {
            Ok(n @ 3..=50) => Ok(n),
            _ => Err("must be a whole number of sessions from 3 to 50"),
        }
    })?;
    let gap_margin_days = parse_or(lookup, "KO_BENEFIT_GAP_MARGIN_DAYS", "3", |v| {
        match v.parse::<u32>() {
            Ok(n @ 0..=60) => Ok(f64::from(n)),
            _ => Err("must be a whole number of days from 0 to 60"),
        }
    })?;
    let shortest = days("KO_MAINTENANCE_SHORTEST_DAYS", "7")?;
    let longest = days("KO_MAINTENANCE_LONGEST_DAYS", "56")?;
    if shortest > longest {
        return Err(ConfigError::new(
            "KO_MAINTENANCE_LONGEST_DAYS",
            "must not be below KO_MAINTENANCE_SHORTEST_DAYS",
        ));
    }
    Ok(crate::domain::durability::DurabilitySettings {
        recent,
        gap_margin_days,
        shortest_interval_days: shortest,
        longest_interval_days: longest,
    })
}

fn research_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<ResearchSettings, ConfigError> {
    let min_cell = parse_or(lookup, "KO_RESEARCH_MIN_CELL", "11", |v| match v.parse() {
        Ok(n @ 5..=1000) => Ok(n),
        _ => Err("must be a whole number from 5 to 1000 (small cells below 5 are never shown)"),
    })?;
    let epsilon = |var: &'static str, default: &str| {
        parse_or(lookup, var, default, |v| match v.parse::<f64>() {
            Ok(e) if (0.01..=1000.0).contains(&e) => Ok(e),
            _ => Err("must be a number from 0.01 to 1000"),
        })
    };
    let epsilon_per_query = epsilon("KO_RESEARCH_EPSILON_PER_QUERY", "6")?;
    let epsilon_budget = epsilon("KO_RESEARCH_EPSILON_BUDGET", "60")?;
    if epsilon_budget < epsilon_per_query {
        return Err(ConfigError::new(
            "KO_RESEARCH_EPSILON_BUDGET",
            "must be at least KO_RESEARCH_EPSILON_PER_QUERY",
        ));
    }
    let budget_days = parse_or(lookup, "KO_RESEARCH_BUDGET_DAYS", "30", |v| {
        match v.parse() {
            Ok(n @ 1..=366) => Ok(n),
            _ => Err("must be a whole number of days from 1 to 366"),
        }
    })?;
    let delta = parse_or(lookup, "KO_RESEARCH_DELTA", "1e-6", |v| {
        match v.parse::<f64>() {
            Ok(d) if d > 0.0 && d <= 1e-3 => Ok(d),
            _ => Err("must be a number above 0 and at most 0.001"),
        }
    })?;
    let bound = |var: &'static str, default: &str, max: u32| {
        parse_or(lookup, var, default, move |v| match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err("must be a whole number from 1 to the documented maximum"),
        })
    };
    let bounds = crate::domain::privacy::Bounds {
        sessions: bound("KO_RESEARCH_MAX_SESSIONS_PER_PATIENT", "8", 100)?,
        courses: bound("KO_RESEARCH_MAX_COURSES_PER_PATIENT", "1", 10)?,
        effects: bound("KO_RESEARCH_MAX_EFFECTS_PER_PATIENT", "3", 19)?,
        reports: bound("KO_RESEARCH_MAX_REPORTS_PER_EFFECT", "3", 50)?,
        weeks: bound("KO_RESEARCH_MAX_WEEKS_PER_PATIENT", "13", 53)?,
        due_items: bound("KO_RESEARCH_MAX_DUE_ITEMS_PER_PATIENT", "12", 1000)?,
        charge_cents: i64::from(bound(
            "KO_RESEARCH_CHARGE_CEILING_CENTS",
            "100000",
            10_000_000,
        )?),
    };
    Ok(ResearchSettings {
        min_cell,
        epsilon_per_query,
        epsilon_budget,
        budget_days,
        delta,
        bounds,
    })
}

/// The variables that override each instrument's remission cut-off.
const REMISSION_VARS: [(&str, crate::domain::instrument::Instrument); 6] = {
    use crate::domain::instrument::Instrument::*;
    [
        ("KO_REMISSION_PHQ9", Phq9),
        ("KO_REMISSION_GAD7", Gad7),
        ("KO_REMISSION_MADRS", Madrs),
        ("KO_REMISSION_PCL5", Pcl5),
        ("KO_REMISSION_YBOCS", Ybocs),
        ("KO_REMISSION_PAIN_NRS", PainNrs),
    ]
};

fn parse_jwt_secret(var: &'static str, raw: &str) -> Result<Secret, ConfigError> {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|_| ConfigError::new(var, "must be base64"))?;
    if decoded.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError::new(var, "must decode to at least 32 bytes"));
    }
    Ok(Secret(raw.trim().to_owned()))
}

/// An absolute http:// or https:// URL with a host, without spaces or control characters; a
/// trailing slash is dropped.
fn public_url(raw: &str) -> Result<String, &'static str> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    let clean = !raw.chars().any(|c| c.is_whitespace() || c.is_control());
    match rest {
        Some(host) if clean && raw.len() <= 2000 && !host.is_empty() && !host.starts_with('/') => {
            Ok(raw.trim_end_matches('/').to_owned())
        }
        _ => {
            Err("must be an absolute http:// or https:// URL, such as https://outcomes.example.org")
        }
    }
}

fn parse_or<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
    parse: impl Fn(&str) -> Result<T, &'static str>,
) -> Result<T, ConfigError> {
    let raw = lookup(var).unwrap_or_else(|| default.to_owned());
    parse(raw.trim()).map_err(|rule| ConfigError::new(var, rule))
}

fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<Duration, ConfigError> {
    parse_or(lookup, var, default, |v| match v.parse() {
        Ok(n @ 1..=3600) => Ok(Duration::from_secs(n)),
        _ => Err("must be a whole number of seconds from 1 to 3600"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_mode_on_loopback() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.bind_address.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database_url,
            DatabaseUrl::Sqlite(PathBuf::from("data/ketamine-outcomes.db"))
        );
        assert_eq!(s.research_database_url, None);
        assert!(!s.production);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn a_public_url_is_kept_without_its_trailing_slash() {
        let s = settings(&[("KO_PUBLIC_URL", "https://outcomes.example.org/")]).expect("valid");
        assert_eq!(
            s.public_url.as_deref(),
            Some("https://outcomes.example.org")
        );
        assert_eq!(settings(&[]).expect("valid").public_url, None);
    }

    #[test]
    fn database_url_form_decides_the_backend() {
        let pg = settings(&[("DATABASE_URL", "postgres://u@h/db")]).expect("valid");
        assert!(matches!(pg.database_url, DatabaseUrl::Postgres(_)));
        let file = settings(&[("DATABASE_URL", "sqlite:///tmp/x.db")]).expect("valid");
        assert_eq!(file.database_url, DatabaseUrl::Sqlite("/tmp/x.db".into()));
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            ("KO_BIND_ADDRESS", "localhost"),
            ("DATABASE_URL", "mysql://h/db"),
            ("KO_RESEARCH_DATABASE_URL", "redis://h"),
            ("KO_PUBLIC_URL", "outcomes.example.org"),
            ("KO_PUBLIC_URL", "https:///path"),
            ("KO_PUBLIC_URL", "https://exa mple.org"),
            ("KO_DB_POOL_SIZE", "0"),
            ("KO_DB_ACQUIRE_TIMEOUT_SECS", "soon"),
            ("KO_SHUTDOWN_TIMEOUT_SECS", "0"),
            ("KO_REQUEST_HEAD_TIMEOUT_SECS", "forever"),
            ("KO_REQUEST_BODY_TIMEOUT_SECS", "0"),
            ("KO_LOG_FORMAT", "xml"),
            ("KO_PRODUCTION", "yes please"),
            ("KO_JWT_SECRET", "c2hvcnQ="),
            ("KO_JWT_PREVIOUS_SECRETS", "not base64!"),
            ("KO_ACCESS_TOKEN_MINUTES", "600"),
            ("KO_ARGON2_MEMORY_KIB", "4096"),
            ("KO_ARGON2_ITERATIONS", "1"),
            ("KO_LOGIN_ACCOUNT_LIMIT", "0"),
            ("KO_LOGIN_ADDRESS_LIMIT", "5"),
            ("KO_WEAR_OFF_DAYS", "61"),
            ("KO_RESEARCH_MIN_CELL", "4"),
            ("KO_RESEARCH_EPSILON_PER_QUERY", "0"),
            ("KO_RESEARCH_EPSILON_BUDGET", "0.5"),
            ("KO_RESEARCH_BUDGET_DAYS", "0"),
            ("KO_RESEARCH_DELTA", "0.5"),
            ("KO_RESEARCH_MAX_SESSIONS_PER_PATIENT", "0"),
            ("KO_TRUSTED_PROXIES", "10.0.0.1, lb"),
            ("KO_HASHES_PER_MINUTE_PER_ADDRESS", "0"),
            ("KO_HASHES_PER_MINUTE_PER_ACCOUNT", "lots"),
            ("KO_PERSISTENCE_SHORT_HOURS", "0"),
            ("KO_REMISSION_PHQ9", "28"),
            ("KO_REMISSION_GAD7", "four"),
            ("KO_PRE_SESSION_SYSTOLIC", "40"),
            ("KO_POST_DOSE_DIASTOLIC", "high"),
        ];
        for (var, value) in cases {
            let err = settings(&[(var, value)]).expect_err(var);
            assert_eq!(err.var, var);
            assert!(err
                .to_string()
                .starts_with(&format!("invalid configuration: {var} ")));
        }
    }

    #[test]
    fn production_mode_refuses_to_start_without_a_signing_key() {
        let err = settings(&[("KO_PRODUCTION", "true")]).expect_err("no key");
        assert_eq!(err.var, "KO_JWT_SECRET");
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        assert!(settings(&[("KO_PRODUCTION", "true"), ("KO_JWT_SECRET", key)]).is_ok());
    }

    /// Issue 17, part 4: production posts webhooks to public https addresses only, and no
    /// setting loosens that; outside production any address, or this host only.
    #[test]
    fn webhook_egress_is_public_in_production_whatever_is_asked() {
        let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let production = [("KO_PRODUCTION", "true"), ("KO_JWT_SECRET", key)];
        assert_eq!(settings(&production).unwrap().egress(), Egress::Public);
        for loose in ["any", "loopback"] {
            let mut asked = production.to_vec();
            asked.push(("KO_WEBHOOK_EGRESS", loose));
            let err = settings(&asked).expect_err(loose);
            assert_eq!(err.var, "KO_WEBHOOK_EGRESS");
        }
        assert_eq!(settings(&[]).unwrap().egress(), Egress::Any);
        let local = settings(&[("KO_WEBHOOK_EGRESS", "loopback")]).unwrap();
        assert_eq!(local.egress(), Egress::Loopback);
        assert!(settings(&[("KO_WEBHOOK_EGRESS", "nowhere")]).is_err());
    }

    #[test]
    fn the_webhook_retry_schedule_is_the_specifications_unless_set() {
        assert_eq!(
            settings(&[]).unwrap().webhook_retries,
            RetrySchedule::standard()
        );
        let set = settings(&[("KO_WEBHOOK_RETRY_SECONDS", "0, 2,60")]).unwrap();
        let waits = [0, 2, 60].map(Duration::from_secs).to_vec();
        assert_eq!(set.webhook_retries, RetrySchedule::new(waits).unwrap());
        for bad in ["x", "1,,2", "-1", "86401", &vec!["1"; 21].join(",")] {
            let err = settings(&[("KO_WEBHOOK_RETRY_SECONDS", bad)]).expect_err(bad);
            assert_eq!(err.var, "KO_WEBHOOK_RETRY_SECONDS");
        }
    }

    #[test]
    fn clinics_may_set_their_own_remission_and_persistence() {
        let s = settings(&[
            ("KO_REMISSION_PHQ9", "5"),
            ("KO_PERSISTENCE_SHORT_HOURS", "6"),
        ])
        .expect("valid");
        use crate::domain::instrument::Instrument;
        assert_eq!(s.clinical.remission.of(Instrument::Phq9), Some(5));
        assert_eq!(
            s.clinical.remission.of(Instrument::Gad7),
            Some(4),
            "the others keep the spec's cut-offs"
        );
        assert_eq!(s.clinical.remission.of(Instrument::DailyMood), None);
        assert_eq!(s.clinical.persistence.short, chrono::Duration::hours(6));
    }

    /// The research defaults of domain.md §8a as the documentation states them.
    #[test]
    fn research_privacy_defaults() {
        let r = settings(&[]).expect("defaults").research;
        assert_eq!(
            (
                r.min_cell,
                r.epsilon_per_query,
                r.epsilon_budget,
                r.budget_days
            ),
            (11, 6.0, 60.0, 30)
        );
        assert_eq!(r.delta, 1e-6);
        assert_eq!(
            (r.bounds.sessions, r.bounds.courses, r.bounds.due_items),
            (8, 1, 12)
        );
    }

    #[test]
    fn debug_output_hides_the_postgres_password() {
        let s = settings(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).expect("valid");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
