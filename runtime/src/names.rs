//! The name rules, in one place. Two kinds of names exist:
//!
//! - **tokens** (node names, virtual actor and workflow kinds, tenants,
//!   workflow run ids): ASCII letters, digits, `.`, `_` and `-`, so they
//!   can be embedded in ids, stream names and paths (`kind:id`,
//!   `name@node`, `tenant/id`) without ever containing a separator;
//! - **free-form names** (actor names, virtual actor ids, registry and
//!   group namespaces and ids, reminder names): any UTF-8 but control
//!   characters (they would corrupt logs and line-based tools), and the
//!   separators of the id they are embedded in (`@` in an actor name).
//!
//! Each has a length bound in bytes. Every validator in the runtime is one
//! of [`check_token`] or [`check_free_form`] with its bound.

/// Longest free-form name given to registries, groups and reminders, in
/// bytes.
pub const NAME_BYTES_MAX: usize = 128;

/// Why `name` (a `what`) is not a token of at most `max` bytes, if it is
/// not.
pub(crate) fn check_token(what: &str, name: &str, max: usize) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(format!(
            "{what} {name:?}: 1 to {max} bytes of [A-Za-z0-9._-]"
        ));
    }
    Ok(())
}

/// Why `name` (a `what`) is not a free-form name of at most `max` bytes
/// without any of `separators`, if it is not.
pub(crate) fn check_free_form(
    what: &str,
    name: &str,
    max: usize,
    separators: &[char],
) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= max
        && !name
            .chars()
            .any(|c| c.is_control() || separators.contains(&c));
    if !valid {
        let without: String = separators.iter().map(|c| format!(" or {c:?}")).collect();
        return Err(format!(
            "{what} {name:?}: 1 to {max} bytes, no control characters{without}"
        ));
    }
    Ok(())
}

/// [`check_free_form`] for the names callers give registries, groups and
/// reminders: at most [`NAME_BYTES_MAX`] bytes.
pub(crate) fn check(what: &str, name: &str) -> Result<(), String> {
    check_free_form(what, name, NAME_BYTES_MAX, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_letters_digits_dots_underscores_and_dashes() {
        for good in ["a", "eu-west.3_b", &"t".repeat(10)] {
            assert_eq!(check_token("kind", good, 11), Ok(()));
        }
        for bad in ["", "a:b", "a/b", "a@b", "sp ace", "é", &"t".repeat(12)] {
            let why = check_token("kind", bad, 11).unwrap_err();
            assert!(why.starts_with("kind "), "{why}");
        }
    }

    #[test]
    fn free_form_names_refuse_control_characters_and_their_separators() {
        for good in ["alice", "a/b:c", "é🙂", &"n".repeat(NAME_BYTES_MAX)] {
            assert_eq!(check("id", good), Ok(()));
        }
        for bad in ["", "tab\there", "nl\n", &"n".repeat(NAME_BYTES_MAX + 1)] {
            assert!(check("id", bad).is_err(), "{bad:?}");
        }
        assert!(check_free_form("actor name", "a@b", 10, &['@']).is_err());
        assert_eq!(check_free_form("actor name", "a:b", 10, &['@']), Ok(()));
    }
}
