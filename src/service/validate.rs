//! Input validation helpers that collect every failing field before refusing.

use crate::error::{AppError, FieldError};

/// Longest name (of a lead, user, tenant, source, pipeline or key label), once trimmed.
pub const NAME_MAX: usize = 100;
/// Longest email address.
pub const EMAIL_MAX: usize = 254;

/// Collects field errors; `finish` refuses if there are any.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records an error unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.add(field, message);
        }
    }

    /// Checks that a trimmed string has between `min` and `max` characters.
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min || n > max {
            if min > 0 && n == 0 {
                self.add(field, "is required");
            } else {
                self.add(field, format!("must be {min} to {max} characters"));
            }
        } else if value.contains('\0') {
            self.add(field, "must not contain NUL characters");
        }
    }

    /// Checks a name: 1 to `NAME_MAX` characters once trimmed, no NUL.
    pub fn name(&mut self, field: &str, value: &str) {
        // Sent with surrounding white space, a name still counts as sent (the documented
        // maximum is of the value sent).
        if value.chars().count() > NAME_MAX {
            self.add(field, format!("must be 1 to {NAME_MAX} characters"));
        } else {
            self.length(field, value.trim(), 1, NAME_MAX);
        }
    }

    /// Checks an email address's syntax.
    pub fn email(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.add(field, "is required");
        } else if value.chars().count() > EMAIL_MAX
            || value.contains('\0')
            || !email_address::EmailAddress::is_valid(value)
        {
            self.add(field, "Invalid email format");
        }
    }

    /// Adds `other`'s errors with their fields under `prefix` (`inputs[3]` and `email` make
    /// `inputs[3].email`).
    pub fn absorb(&mut self, prefix: &str, other: Errors) {
        for f in other.0 {
            self.0
                .push(FieldError::new(format!("{prefix}.{}", f.field), f.message));
        }
    }

    /// The errors so far.
    pub fn fields(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether nothing failed so far.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing failed, else `VALIDATION_FAILED` with every field.
    pub fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.0))
        }
    }
}

/// Normalizes an email for storage and login: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}
