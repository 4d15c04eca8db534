//! The contract's request schemas, compiled once at start: a body that does not parse as its
//! type is answered with every way it breaks the contract — each bad field named by its path,
//! all in one 422 (api.md, Errors) — where the parser alone names only the first it meets.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::FieldError;

pub struct RequestSchemas(HashMap<String, jsonschema::Validator>);

/// The most breaks one answer names: a body of ten thousand bad items gets fifty, not ten
/// thousand, so an error costs the server no more than the body did.
pub const MOST_ERRORS: usize = 50;

impl RequestSchemas {
    /// Compiles the schema of every request body `document` (an OpenAPI 3.1 document, as
    /// JSON) names, resolving its references within the document.
    pub fn of(document: &Value) -> Result<Self, String> {
        let mut validators = HashMap::new();
        for name in request_bodies(document) {
            let schema = serde_json::json!({
                "$ref": format!("#/components/schemas/{name}"),
                "components": document["components"],
            });
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| format!("the schema of {name} does not compile: {e}"))?;
            validators.insert(name, validator);
        }
        Ok(Self(validators))
    }

    /// Every way `body` breaks the schema called `name`; none when it fits, or when no
    /// request body has that schema.
    pub fn errors(&self, name: &str, body: &Value) -> Vec<FieldError> {
        let Some(validator) = self.0.get(name) else {
            return vec![];
        };
        let mut errors = Vec::new();
        for error in validator.iter_errors(body).take(MOST_ERRORS) {
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
