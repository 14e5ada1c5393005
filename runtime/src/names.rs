//! The one rule for the free-form names callers give registries, groups
//! and reminders (tenants, namespaces, ids): 1 to 128 bytes, no control
//! characters (they would corrupt logs and line-based tools).

/// Longest such name, in bytes.
pub const NAME_BYTES_MAX: usize = 128;

/// Why `name` (a `what`) breaks the rule, if it does.
pub(crate) fn check(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(format!(
            "{what} {name:?}: 1 to {NAME_BYTES_MAX} bytes, no control characters"
        ));
    }
    Ok(())
}
