//! Wiring: builds the application from settings, binds its listener (port 0 allowed, so tests
//! can ask for the port they got) and runs it until SIGINT or SIGTERM.

use std::net::TcpListener;
use std::path::Path;

use actix_http::HttpService;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App};

use utoipa_swagger_ui::SwaggerUi;

use crate::api;
use crate::auth::keys;
use crate::auth::password::PasswordHasher;
use crate::call::audit_behind::{self, AuditWriter};
use crate::call::Services;
use crate::config::{DatabaseUrl, Settings};
use crate::connection::ProblemStream;
use crate::contract::RequestSchemas;
use crate::delivery::{self, Deliverer};
use crate::error;
use crate::http;
use crate::openapi;
use crate::store::{Db, ResearchDb, StoreError};
use crate::sweep;
use crate::telemetry::{self, Metrics};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("{0}")]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error("password hashing: {0}")]
    Hashing(#[from] crate::auth::password::HashError),
    /// The HTTP client that posts webhooks could not be built (its TLS settings).
    #[error("the webhook client: {0}")]
    Http(String),
    /// The contract's request schemas could not be compiled: a defect of the build itself.
    #[error("the contract: {0}")]
    Contract(String),
}

/// The built server, bound but not yet running.
pub struct Application {
    /// Where the listener is bound (the port the system chose when the settings gave 0).
    local: std::net::SocketAddr,
    server: Server,
    audit: audit_behind::Running,
    services: web::Data<Services>,
}

impl Application {
    /// Opens the database, applies pending migrations, starts the sweep of the flags that time
    /// raises and binds the listener. Called within the runtime the server will run on.
    pub fn build(settings: &Settings) -> Result<Self, StartupError> {
        private_dir(&settings.data_dir)?;
        let db = open_database(settings, &settings.database_url)?;
        db.migrate()?;
        let address = settings.bind_address.to_string();
        let listener =
            TcpListener::bind(settings.bind_address).map_err(|source| StartupError::Bind {
                address: address.clone(),
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?;
        // The sweep and the escalation check keep a connection each: a long sweep (every
        // record evaluated again under new clinical settings) must not hold a slot that
        // requests wait for, nor an escalation that waits on a writer, nor hold back an
        // escalation itself.
        let own_connection =
            |name| Db::named(&settings.database_url, 1, settings.db_acquire_timeout, name);
        tokio::spawn(sweep::run(
            own_connection("ketamine-outcomes-sweep"),
            settings.clinical,
            settings.sweep_interval,
        ));
        tokio::spawn(sweep::escalate(
            own_connection("ketamine-outcomes-escalation"),
            settings.escalation_after,
            settings.sweep_interval,
        ));
        tokio::spawn(crate::fhir::bulk::run(own_connection(
            "ketamine-outcomes-fhir-export",
        )));
        if settings.egress() == crate::domain::egress::Egress::Any {
            tracing::warn!(
                "webhooks may be posted to any address, private ones included (development): \
                 set KO_PRODUCTION=true, or KO_WEBHOOK_EGRESS=public, on a deployment"
            );
        }
        let (state, audit) = SharedState::new(db, settings)?;
        let services = state.services.clone();
        // Posts wait on receivers, not on the database: two connections store what they met.
        let delivery_db = Db::named(
            &settings.database_url,
            2,
            settings.db_acquire_timeout,
            "ketamine-outcomes-delivery",
        );
        tokio::spawn(
            Deliverer::new(
                delivery_db,
                services.webhooks.clone(),
                settings.webhook_retries.clone(),
            )
            .run(),
        );
        let server = serve(listener, state, settings)?;
        Ok(Self {
            local,
            server,
            audit: audit.start(),
            services,
        })
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// Logs that it is serving (the line process supervisors and tests wait for) once it
    /// listens for SIGINT and SIGTERM; runs until one comes; then stops accepting, ends the
    /// flag streams (their clients resume elsewhere with their last event id), lets in-flight
    /// requests finish, writes the audit events still queued and returns. actix would stop at
    /// once on SIGINT, so its own signal handling is off.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = stop_signal();
        tracing::info!(address = %self.local.ip(), port = self.local.port(), "serving");
        let handle = self.server.handle();
        let services = self.services.clone();
        actix_web::rt::spawn(async move {
            stop.await;
            tracing::info!("stop signal received; finishing in-flight requests");
            services.streams.close_all();
            handle.stop(true).await;
        });
        let served = self.server.await;
        self.audit.finish().await;
        served
    }

    /// The server future, for tests that drive it themselves (the audit writer runs on for
    /// as long as their runtime).
    pub fn into_server(self) -> Server {
        self.server
    }
}

pub fn open_database(settings: &Settings, url: &DatabaseUrl) -> Result<Db, StartupError> {
    if let DatabaseUrl::Sqlite(path) = url {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir)?;
        }
        private_database_file(path)?;
    }
    Ok(Db::new(
        url,
        settings.db_pool_size,
        settings.db_acquire_timeout,
    ))
}

/// Creates `dir` (and its parents) readable by this user alone when it does not exist; an
/// existing directory keeps the permissions its owner gave it.
fn private_dir(dir: &Path) -> Result<(), StartupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartupError::DataDir {
            path: dir.display().to_string(),
            source,
        })
}

/// The SQLite file holds every patient's record: it is created mode 0600 before SQLite opens
/// it (SQLite gives its -wal and -shm files the database file's mode), and an existing one
/// readable by others is tightened, as the signing key is.
fn private_database_file(path: &Path) -> Result<(), StartupError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |source| StartupError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    let mode = file.metadata().map_err(failed)?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(failed)?;
    }
    Ok(())
}

/// What every request may reach: the pools, the keys, the hasher, the settings.
#[derive(Clone)]
pub struct SharedState {
    services: web::Data<Services>,
    request_schemas: web::Data<RequestSchemas>,
    /// Where this deployment says it can be reached, for the served document (`KO_PUBLIC_URL`).
    public_url: Option<String>,
}

impl SharedState {
    /// The state, and the writer of the audit events reads leave behind: the caller starts it
    /// on the runtime that serves the requests.
    pub fn new(db: Db, settings: &Settings) -> Result<(Self, AuditWriter), StartupError> {
        let research_db = match &settings.research_database_url {
            Some(url) => ResearchDb {
                db: open_database(settings, url)?,
                replica: true,
            },
            None => ResearchDb {
                db: db.clone(),
                replica: false,
            },
        };
        let (audit_behind, audit_writer) = audit_behind::queue(db.clone());
        let sender = delivery::Sender::new(settings.egress(), delivery::system_lookup())
            .map_err(|e| StartupError::Http(e.to_string()))?;
        let services = web::Data::new(Services {
            db,
            audit_behind,
            research_db,
            keys: keys::load(&settings.auth, &settings.data_dir)?,
            hasher: PasswordHasher::new(
                settings.auth.argon2_memory_kib,
                settings.auth.argon2_iterations,
                settings.auth.hash_limits,
            )?,
            auth: settings.auth.clone(),
            clinical: settings.clinical,
            research: settings.research,
            streams: Default::default(),
            webhooks: sender.clone(),
            public_url: settings.public_url.clone(),
        });
        let contract = serde_json::to_value(openapi::contract())
            .map_err(|e| StartupError::Contract(e.to_string()))?;
        let request_schemas = RequestSchemas::of(&contract).map_err(StartupError::Contract)?;
        let state = Self {
            services,
            request_schemas: web::Data::new(request_schemas),
            public_url: settings.public_url.clone(),
        };
        Ok((state, audit_writer))
    }

    /// Registers the state, the whole route table and the document's own pages, for the
    /// server and for in-process clients such as `demo`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.services.clone())
            .app_data(self.request_schemas.clone());
        api::routes(&mut utoipa_actix_web::service_config::ServiceConfig::new(
            cfg,
        ));
        cfg.service(web::redirect("/docs", "/docs/"))
            .service(
                SwaggerUi::new("/docs/{_:.*}")
                    .url("/openapi.json", openapi::served(self.public_url.as_deref())),
            )
            .default_service(web::to(not_found));
    }
}

fn serve(
    listener: TcpListener,
    state: SharedState,
    settings: &Settings,
) -> Result<Server, StartupError> {
    let metrics = web::Data::new(Metrics::new());
    let body_deadline = web::Data::new(http::BodyDeadline(settings.request_body_timeout));
    let head_timeout = settings.request_head_timeout;
    let local = listener.local_addr().map_err(|source| StartupError::Bind {
        address: settings.bind_address.to_string(),
        source,
    })?;
    // actix-web's HttpServer, with the one thing it cannot do: a connection of our own type
    // (`connection::ProblemStream`), so the dispatcher's own refusals are problem documents too.
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .listen("ketamine-outcomes", listener, move || {
            let (state, metrics) = (state.clone(), metrics.clone());
            let body_deadline = body_deadline.clone();
            let app = App::new()
                .wrap(ErrorHandlers::new().default_handler(error::problem_for_every_error))
                .wrap(from_fn(http::body_deadline))
                .wrap(from_fn(telemetry::observe))
                .wrap(from_fn(http::no_store))
                .app_data(metrics)
                .app_data(body_deadline)
                .configure(|cfg| state.configure(cfg));
            let shutdown = shutdown.clone();
            let http = HttpService::build()
                .client_request_timeout(head_timeout)
                .client_disconnect_timeout(std::time::Duration::from_secs(1))
                .local_addr(local)
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .h1(map_config(
                    app.into_factory()
                        .map_err(|err: actix_web::Error| err.error_response()),
                    |_| AppConfig::default(),
                ));
            fn_service(|io: actix_web::rt::net::TcpStream| async move {
                let peer = io.peer_addr().ok();
                Ok::<_, actix_http::error::DispatchError>((ProblemStream::new(io), peer))
            })
            .and_then(http)
        })
        .map_err(|source| StartupError::Bind {
            address: settings.bind_address.to_string(),
            source,
        })?
        .run();
    Ok(server)
}

/// No route matched: 405 with `Allow` when the path exists for other methods, else 404.
async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    match openapi::methods_of(req.path()) {
        Some(allowed) => {
            let mut res = error::ApiError::MethodNotAllowed.error_response();
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
                res.headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            res
        }
        None => error::ApiError::NotFound.error_response(),
    }
}

/// SIGINT or SIGTERM, listened for from this call on: the listeners exist before the server
/// says it is serving, so a stop sent the moment it does is never met by the signal's default
/// action (the process killed, its in-flight requests cut).
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listeners = signal(SignalKind::interrupt()).and_then(|interrupt| {
        signal(SignalKind::terminate()).map(|terminate| (interrupt, terminate))
    });
    async move {
        let Ok((mut interrupt, mut terminate)) = listeners else {
            tracing::error!("cannot listen for stop signals");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}
