//! The contract's request schemas, compiled once at start: a body or a query string that does
//! not parse as its type is answered with every way it breaks the contract — each bad field
//! named by its path, all in one 422 (api.md, Errors) — where the parser alone names only the
//! first it meets, and a query's parser not even that.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::FieldError;

pub struct RequestSchemas {
    bodies: HashMap<String, jsonschema::Validator>,
    /// By method and route pattern (`GET /v1/patients/{id}/assessments`).
    queries: HashMap<String, QuerySchema>,
}

/// An operation's query parameters as one object schema, and what each parameter's text is
/// read as before it is checked.
struct QuerySchema {
    validator: jsonschema::Validator,
    kinds: HashMap<String, Kind>,
}

/// What a query parameter's text stands for.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    /// Comma-separated (the form style without explode).
    List(Box<Kind>),
}

/// The most breaks one answer names: a body of ten thousand bad items gets fifty, not ten
/// thousand, so an error costs the server no more than the body did.
pub const MOST_ERRORS: usize = 50;

impl RequestSchemas {
    /// Compiles the schema of every request body `document` (an OpenAPI 3.1 document, as
    /// JSON) names, resolving its references within the document.
    pub fn of(document: &Value) -> Result<Self, String> {
        let mut bodies = HashMap::new();
        for name in request_bodies(document) {
            let schema = serde_json::json!({"$ref": format!("#/components/schemas/{name}")});
            bodies.insert(name.clone(), compiled(document, schema, &name)?);
        }
        let mut queries = HashMap::new();
        for (operation, parameters) in query_parameters(document) {
            let kinds = parameters
                .iter()
                .map(|(name, schema)| (name.clone(), kind(document, schema)))
                .collect();
            let schema = serde_json::json!({"type": "object", "properties": parameters});
            let validator = compiled(document, schema, &operation)?;
            queries.insert(operation, QuerySchema { validator, kinds });
        }
        Ok(Self { bodies, queries })
    }

    /// Every way the query string `query` of the operation `method` `route` (its pattern)
    /// breaks the parameters the contract states; none when it fits, or when the contract
    /// has no such operation.
    pub fn query_errors(&self, method: &str, route: &str, query: &str) -> Vec<FieldError> {
        let Some(schema) = self.queries.get(&format!("{method} {route}")) else {
            return vec![];
        };
        let mut given = serde_json::Map::new();
        for (name, text) in form_urlencoded::parse(query.as_bytes()) {
            let value = match schema.kinds.get(name.as_ref()) {
                Some(kind) => kind.read(&text),
                None => continue,
            };
            given.insert(name.into_owned(), value);
        }
        breaks(&schema.validator, &Value::Object(given))
    }
    /// Every way `body` breaks the schema called `name`; none when it fits, or when no
    /// request body has that schema.
    pub fn errors(&self, name: &str, body: &Value) -> Vec<FieldError> {
        match self.bodies.get(name) {
            Some(validator) => breaks(validator, body),
            None => vec![],
        }
    }
}

impl Kind {
    /// The text as the value it stands for; left as text when it is not one, so the schema
    /// names it as the wrong type.
    fn read(&self, text: &str) -> Value {
        let parsed = match self {
            Kind::Text => None,
            Kind::Integer => text.parse::<i64>().ok().map(Value::from),
            Kind::Number => text.parse::<f64>().ok().map(Value::from),
            Kind::Boolean => text.parse::<bool>().ok().map(Value::from),
            Kind::List(item) => Some(Value::Array(
                text.split(',').map(|part| item.read(part)).collect(),
            )),
        };
        parsed.unwrap_or_else(|| Value::from(text))
    }
}

/// `schema` compiled with the document's components to resolve its references against.
fn compiled(
    document: &Value,
    mut schema: Value,
    what: &str,
) -> Result<jsonschema::Validator, String> {
    schema["components"] = document["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("the schema of {what} does not compile: {e}"))
}

/// Every way `value` breaks `validator`'s schema, each named by its dotted path.
fn breaks(validator: &jsonschema::Validator, value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for error in validator.iter_errors(value).take(MOST_ERRORS) {
        let at = dotted(error.instance_path().as_str());
        match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                let property = property.as_str().unwrap_or_default();
                errors.push(FieldError::new(joined(&at, property), "is required"));
            }
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                errors.extend(unexpected.iter().map(|field| {
                    FieldError::new(joined(&at, field), "is not a field of this request")
                }));
            }
            // Masked: the message says what was wrong, never echoes the value sent (a
            // password, a note, a quarter-megabyte string).
            _ => errors.push(FieldError::new(
                if at.is_empty() { "body".into() } else { at },
                error.masked().to_string(),
            )),
        }
    }
    errors
}

/// What a parameter's schema (resolving one reference, and the non-null branch of a
/// nullable one) says its text stands for.
fn kind(document: &Value, schema: &Value) -> Kind {
    let schema = match schema["$ref"].as_str() {
        Some(r) => r
            .strip_prefix("#/components/schemas/")
            .map_or(&Value::Null, |name| {
                &document["components"]["schemas"][name]
            }),
        None => schema,
    };
    if let Some(branches) = schema["oneOf"].as_array() {
        let branch = branches.iter().find(|b| b["type"] != "null");
        return branch.map_or(Kind::Text, |b| kind(document, b));
    }
    let named = match &schema["type"] {
        Value::Array(types) => types.iter().find(|t| *t != "null").cloned(),
        other => Some(other.clone()),
    };
    match named.as_ref().and_then(Value::as_str) {
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Boolean,
        Some("array") => Kind::List(Box::new(kind(document, &schema["items"]))),
        _ => Kind::Text,
    }
}

/// Each operation's query parameters and their schemas, keyed `METHOD /route/{pattern}`.
fn query_parameters(document: &Value) -> Vec<(String, serde_json::Map<String, Value>)> {
    let mut operations = Vec::new();
    for (route, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let parameters: serde_json::Map<String, Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p["schema"].clone())))
                .collect();
            if !parameters.is_empty() {
                let key = format!("{} {route}", method.to_uppercase());
                operations.push((key, parameters));
            }
        }
    }
    operations
}

/// The component names of every request body in the document.
fn request_bodies(document: &Value) -> Vec<String> {
    let mut names: Vec<String> = document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(|item| item.as_object())
        .flat_map(|item| item.values())
        .filter_map(|operation| operation["requestBody"]["content"].as_object())
        .flat_map(|content| content.values())
        .filter_map(|media| media["schema"]["$ref"].as_str())
        .filter_map(|r| r.strip_prefix("#/components/schemas/"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A JSON pointer as a dotted path: `/pre/systolic` → `pre.systolic`, `/items/3` →
/// `items[3]`, the root → empty.
fn dotted(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            path.push_str(&format!("[{segment}]"));
        } else {
            path = joined(&path, &segment);
        }
    }
    path
}

fn joined(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_read_as_dotted_paths() {
        for (pointer, path) in [
            ("", ""),
            ("/sex", "sex"),
            ("/pre/systolic", "pre.systolic"),
            ("/items/3", "items[3]"),
            ("/readings/0/spo2", "readings[0].spo2"),
            ("/a~1b", "a/b"),
        ] {
            assert_eq!(dotted(pointer), path, "{pointer}");
        }
    }

    /// Each kind of break is named by its path, all of them at once.
    #[test]
    fn every_break_of_a_schema_is_named() {
        let document = serde_json::json!({
            "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Thing"}}}}}}},
            "components": {"schemas": {
                "Thing": {"type": "object", "additionalProperties": false,
                    "required": ["sex", "year"],
                    "properties": {
                        "sex": {"$ref": "#/components/schemas/Sex"},
                        "year": {"type": "integer", "minimum": 1900},
                        "at": {"type": "string", "format": "date-time"},
                        "items": {"type": "array", "items": {"type": "integer"}}}},
                "Sex": {"type": "string", "enum": ["female", "male"]}}}
        });
        let schemas = RequestSchemas::of(&document).unwrap();
        let body = serde_json::json!({"sex": "dragon", "year": 1700, "at": "yesterday",
            "items": [1, "two"], "colour": "blue"});
        let mut named: Vec<String> = schemas
            .errors("Thing", &body)
            .into_iter()
            .map(|e| e.field)
            .collect();
        named.sort();
        assert_eq!(named, ["at", "colour", "items[1]", "sex", "year"]);
        let missing: Vec<String> = schemas
            .errors("Thing", &serde_json::json!({}))
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(missing, ["sex", "year"]);
        assert!(schemas
            .errors("Thing", &serde_json::json!({"sex": "male", "year": 1984}))
            .is_empty());
        assert!(schemas.errors("Unknown", &body).is_empty());
        // The value sent is never echoed, and a flood of bad items is named only so far.
        let secret = serde_json::json!({"sex": "correct horse battery staple", "year": 1984});
        let said = format!("{:?}", schemas.errors("Thing", &secret));
        assert!(!said.contains("horse"), "{said}");
        let flood = serde_json::json!({"sex": "male", "year": 1984, "items": vec!["x"; 10_000]});
        assert_eq!(schemas.errors("Thing", &flood).len(), MOST_ERRORS);
    }
}
