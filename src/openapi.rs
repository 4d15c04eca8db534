//! The OpenAPI 3.1 document, generated from the handlers and wire types. It is the contract
//! that clients are generated from; `openapi/openapi.json` holds the committed copy.

use utoipa::OpenApi;

use crate::api;
use crate::error::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ketamine-outcomes",
        description = "Records ketamine treatment, scores questionnaires as the published \
            instruments define, flags what a clinician must see, and answers de-identified \
            research questions.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "A local server")),
    paths(
        api::operations::healthz,
        api::operations::readyz,
        api::operations::metrics,
    ),
    components(schemas(Problem, FieldError)),
    tags((name = "operations", description = "Probes and metrics for operators")),
)]
pub struct ApiDoc;

/// The document as committed and served: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serialises");
    json.push('\n');
    json
}
