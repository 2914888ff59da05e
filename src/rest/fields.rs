//! Body and query-parameter shapes of the REST routes: every field is checked at once and
//! turned into GraphQL variables (enum values upper-cased).

use serde_json::{Map, Value};

use crate::service::validate::Errors;

/// A JSON type a field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A string.
    Str,
    /// An integer.
    Int,
    /// `true` or `false`.
    Bool,
    /// One of these lower-case strings (upper-cased for GraphQL).
    Enum(&'static [&'static str]),
    /// An opaque ID.
    Id,
    /// A JSON object.
    Object,
    /// An array of strings.
    StrList,
    /// An RFC 3339 timestamp.
    DateTime,
    /// An array of 1 to 100 objects with these fields (a batch).
    Objects(&'static [Field]),
}

/// The rule the service checks a field's value against beyond its type, so the OpenAPI
/// document can state it (the services decide; see `service::lead::check_fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Only the type.
    None,
    /// 1 to 100 characters once trimmed, no NUL.
    Name,
    /// An email address of at most 254 characters.
    Email,
    /// `+` and 2 to 15 digits, the first not 0; spaces, dots, dashes and brackets allowed.
    Phone,
    /// 0 to 100.
    Score,
    /// At most `MAX_TAGS` tags of 1 to `MAX_TAG_LEN` characters.
    Tags,
    /// At most `MAX_CUSTOM_FIELDS` keys with scalar or null values.
    CustomFields,
    /// A webhook endpoint's URL (`service::webhook::URL_PATTERN`).
    Url,
    /// A list whose items are each one of these.
    Members(&'static [&'static str]),
    /// A list of 1 to `MAX_ITEMS` distinct IDs.
    Ids,
    /// An integer from the first to the second, inclusive.
    Between(i64, i64),
}

/// A body field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name in REST and GraphQL.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Must be present.
    pub required: bool,
    /// May be `null` (clears it on PATCH).
    pub nullable: bool,
    /// What its value must satisfy beyond the type.
    pub rule: Rule,
    /// A field it must not be sent with; when this one is `required`, one of the two is.
    pub alternative: Option<&'static str>,
}

impl Field {
    /// The same field with `rule`.
    pub const fn with(self, rule: Rule) -> Field {
        Field { rule, ..self }
    }

    /// The same field, never sent together with `other` (declared later in the same list).
    pub const fn or(self, other: &'static str) -> Field {
        Field {
            alternative: Some(other),
            ..self
        }
    }
}

/// An optional field.
pub const fn f(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
        nullable: false,
        rule: Rule::None,
        alternative: None,
    }
}
/// A required field.
pub const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        required: true,
        ..f(name, ty)
    }
}
/// An optional field that may be `null`.
pub const fn null(name: &'static str, ty: Ty) -> Field {
    Field {
        nullable: true,
        ..f(name, ty)
    }
}

fn describe(ty: Ty) -> String {
    match ty {
        Ty::Str | Ty::Id => "must be a string".into(),
        Ty::Int => "must be an integer".into(),
        Ty::Bool => "must be true or false".into(),
        Ty::Enum(values) => format!("must be one of {}", values.join(", ")),
        Ty::Object => "must be a JSON object".into(),
        Ty::StrList => "must be an array of strings".into(),
        Ty::DateTime => "must be an RFC 3339 date-time, e.g. 2026-02-08T14:30:00Z".into(),
        Ty::Objects(_) => format!("must be an array of 1 to {MAX_ITEMS} JSON objects"),
    }
}

/// The most items of a [`Ty::Objects`] array.
pub const MAX_ITEMS: usize = crate::service::lead::bulk::MAX_BATCH;

/// Converts one value; `None` when it has the wrong type.
fn convert(ty: Ty, v: &Value) -> Option<Value> {
    match (ty, v) {
        // A misspelled ID is the service's field error, listed with its other checks.
        (Ty::Str | Ty::Id, Value::String(_)) => Some(v.clone()),
        (Ty::Int, Value::Number(n)) if n.is_i64() => Some(v.clone()),
        // JSON Schema counts 77.0 as an integer, and so do we.
        (Ty::Int, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| Value::from(f as i64)),
        (Ty::Bool, Value::Bool(_)) | (Ty::Object, Value::Object(_)) => Some(v.clone()),
        (Ty::Enum(values), Value::String(s)) => values
            .contains(&s.as_str())
            .then(|| Value::String(s.to_uppercase())),
        (Ty::StrList, Value::Array(items)) => items.iter().all(Value::is_string).then(|| v.clone()),
        (Ty::DateTime, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .is_ok()
            .then(|| v.clone()),
        _ => None,
    }
}

/// Checks a body against `fields`, recording every problem; returns the GraphQL input of the
/// fields that passed.
pub fn check(
    fields: &[Field],
    body: &Map<String, Value>,
    errors: &mut Errors,
) -> Map<String, Value> {
    let mut input = Map::new();
    for key in body.keys() {
        if !fields.iter().any(|f| f.name == key) {
            errors.add(key.as_str(), "is not a known field");
        }
    }
    for field in fields {
        if let Some(other) = field.alternative
            && body.contains_key(field.name)
            && body.contains_key(other)
        {
            errors.add(other, format!("give {} or {other}, not both", field.name));
        }
        let alternative_sent = field.alternative.is_some_and(|o| body.contains_key(o));
        match body.get(field.name) {
            None if field.required && alternative_sent => {}
            None if field.required => match field.alternative {
                Some(other) => errors.add(field.name, format!("is required (or {other})")),
                None => errors.add(field.name, "is required"),
            },
            None => {}
            Some(Value::Null) if field.nullable => {
                input.insert(field.name.into(), Value::Null);
            }
            Some(Value::Null) if field.required => errors.add(field.name, "is required"),
            Some(Value::Null) => errors.add(field.name, "must not be null"),
            Some(Value::Array(items))
                if matches!(field.ty, Ty::Objects(_)) && (1..=MAX_ITEMS).contains(&items.len()) =>
            {
                let Ty::Objects(spec) = field.ty else {
                    continue;
                };
                let mut converted = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{}[{i}]", field.name);
                    match item.as_object() {
                        Some(obj) => {
                            let mut item_errors = Errors::new();
                            converted.push(Value::Object(check(spec, obj, &mut item_errors)));
                            errors.absorb(&at, item_errors);
                        }
                        None => errors.add(at, "must be a JSON object"),
                    }
                }
                input.insert(field.name.into(), Value::Array(converted));
            }
            Some(v) => match convert(field.ty, v) {
                Some(converted) => {
                    input.insert(field.name.into(), converted);
                }
                None => errors.add(field.name, describe(field.ty)),
            },
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rest::leads::{CREATE_FIELDS, UPDATE_FIELDS};

    #[test]
    fn reports_every_problem_at_once() {
        let body = json!({"email": 3, "firstName": null, "score": 1.5, "source": "fax", "tags": [1], "extra": true});
        let mut errors = Errors::new();
        let input = check(
            CREATE_FIELDS,
            body.as_object().expect("object"),
            &mut errors,
        );
        let err = errors.finish().expect_err("invalid");
        let fields: Vec<String> = err.fields().iter().map(|f| f.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "extra",
                "email",
                "firstName",
                "lastName",
                "source",
                "score",
                "tags"
            ]
        );
        assert!(input.is_empty());
    }

    #[test]
    fn converts_enums_and_keeps_nulls_where_allowed() {
        let body = json!({"source": "web", "status": "qualified", "phone": null});
        let mut errors = Errors::new();
        let input = check(
            UPDATE_FIELDS,
            body.as_object().expect("object"),
            &mut errors,
        );
        assert!(errors.is_empty());
        assert_eq!(
            Value::Object(input),
            json!({"source": "WEB", "status": "QUALIFIED", "phone": null})
        );
    }
}
