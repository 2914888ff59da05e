//! The `DateTime` scalar: one spelling of time everywhere, RFC 3339 in UTC with milliseconds
//! (`2026-12-05T09:24:55.959Z`), as REST bodies, events and the audit log spell it.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

/// A point in time, RFC 3339 in UTC with milliseconds: `2026-12-05T09:24:55.959Z`. Inputs
/// may use any RFC 3339 offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, async_graphql::Description)]
pub struct DateTime(pub chrono::DateTime<Utc>);

#[Scalar(
    name = "DateTime",
    use_type_description,
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| DateTime(d.with_timezone(&Utc)))
                .map_err(|_| {
                    InputValueError::custom(
                        "expected an RFC 3339 date-time such as 2026-12-05T09:24:55.959Z",
                    )
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(at: chrono::DateTime<Utc>) -> Self {
        DateTime(at)
    }
}

impl From<DateTime> for chrono::DateTime<Utc> {
    fn from(at: DateTime) -> Self {
        at.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_utc_out_any_offset_in() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-05T10:24:55.959123456+01:00")
            .map(|d| d.with_timezone(&Utc))
            .ok();
        let at = DateTime(at.unwrap_or_default());
        assert_eq!(
            at.to_value(),
            Value::String("2026-12-05T09:24:55.959Z".into())
        );
        let whole = DateTime::parse(Value::String("2026-12-05T09:24:55Z".into())).ok();
        assert_eq!(
            whole.map(|d| d.to_value()),
            Some(Value::String("2026-12-05T09:24:55.000Z".into()))
        );
        assert!(DateTime::parse(Value::String("yesterday".into())).is_err());
        assert!(DateTime::parse(Value::Number(5.into())).is_err());
    }
}
