//! Tuples, their typed fields, and patterns that match them.

use super::TupleSpaceError;
use crate::nesting::NESTING_MAX;
use std::cmp::Ordering;
use std::fmt;

/// A field of a tuple.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// A floating-point number (compared by total order, so NaN equals NaN).
    Float(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// true or false.
    Bool(bool),
    /// A nested tuple (at most [`NESTING_MAX`](crate::tuplespace::NESTING_MAX)
    /// levels deep).
    Tuple(#[serde(deserialize_with = "crate::nesting::nested")] Vec<Value>),
}

/// The type of a field, for typed wildcards.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Kind {
    /// [`Value::Str`].
    Str,
    /// [`Value::Int`].
    Int,
    /// [`Value::Float`].
    Float,
    /// [`Value::Bytes`].
    Bytes,
    /// [`Value::Bool`].
    Bool,
    /// [`Value::Tuple`].
    Tuple,
}

impl Value {
    /// The value's type.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Str(_) => Kind::Str,
            Value::Int(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Bytes(_) => Kind::Bytes,
            Value::Bool(_) => Kind::Bool,
            Value::Tuple(_) => Kind::Tuple,
        }
    }

    /// Bytes this value takes, roughly (for the per-tuple size bound).
    pub(crate) fn size(&self) -> usize {
        8 + match self {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Tuple(fields) => fields.iter().map(Value::size).sum(),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => 0,
        }
    }

    /// Whether tuples nest in this value more than `max` levels deep. Looks
    /// no deeper than `max + 1` levels, so a value built too deep to decode
    /// is refused without recursing through all of it.
    fn nests_deeper_than(&self, max: usize) -> bool {
        match self {
            Value::Tuple(fields) => max == 0 || fields.iter().any(|f| f.nests_deeper_than(max - 1)),
            _ => false,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Tuple(a), Value::Tuple(b)) => a.cmp(b),
            _ => self.kind().cmp(&other.kind()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

/// A tuple: an ordered list of fields.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Tuple(pub Vec<Value>);

impl Tuple {
    /// A tuple of these fields.
    pub fn new(fields: Vec<Value>) -> Self {
        Tuple(fields)
    }

    /// Its fields.
    pub fn fields(&self) -> &[Value] {
        &self.0
    }

    pub(crate) fn size(&self) -> usize {
        self.0.iter().map(Value::size).sum()
    }

    /// Refuses a tuple nested deeper than [`NESTING_MAX`]: it could not be
    /// decoded again.
    pub(crate) fn check_depth(&self) -> Result<(), TupleSpaceError> {
        if self.0.iter().any(|f| f.nests_deeper_than(NESTING_MAX)) {
            return Err(TupleSpaceError::TooDeep { max: NESTING_MAX });
        }
        Ok(())
    }

    /// Refuses a tuple too deep ([`Tuple::check_depth`]) or larger than
    /// `bytes_max`.
    pub(crate) fn check_bounds(&self, bytes_max: usize) -> Result<(), TupleSpaceError> {
        self.check_depth()?;
        let bytes = self.size();
        if bytes > bytes_max {
            return Err(TupleSpaceError::TupleTooLarge {
                bytes,
                max: bytes_max,
            });
        }
        Ok(())
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            match v {
                Value::Str(s) => write!(f, "{s:?}")?,
                Value::Int(n) => write!(f, "{n}")?,
                Value::Float(x) => write!(f, "{x}")?,
                Value::Bytes(b) => write!(f, "<{} bytes>", b.len())?,
                Value::Bool(b) => write!(f, "{b}")?,
                Value::Tuple(t) => write!(f, "{}", Tuple(t.clone()))?,
            }
        }
        write!(f, ")")
    }
}

/// Builds a tuple: `tuple!["task", 7, true]`.
#[macro_export]
macro_rules! tuple {
    ($($field:expr),* $(,)?) => {
        $crate::tuplespace::Tuple::new(vec![$($crate::tuplespace::Value::from($field)),*])
    };
}

/// One field of a pattern.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Field {
    /// Matches this exact value.
    Exact(Value),
    /// Matches any value.
    Any,
    /// Matches any value of this type.
    Typed(Kind),
    /// Matches a nested tuple matching this pattern.
    Nested(#[serde(deserialize_with = "crate::nesting::nested")] Pattern),
}

/// A template that tuples of the same arity match field by field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pattern(pub Vec<Field>);

impl Pattern {
    /// A pattern of these fields.
    pub fn new(fields: Vec<Field>) -> Self {
        Pattern(fields)
    }

    /// Whether `tuple` matches.
    pub fn matches(&self, tuple: &Tuple) -> bool {
        matches_fields(&self.0, &tuple.0)
    }

    /// The exact first field, which picks one index bucket.
    pub(crate) fn exact_head(&self) -> Option<&Value> {
        match self.0.first() {
            Some(Field::Exact(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn arity(&self) -> usize {
        self.0.len()
    }
}

fn matches_fields(pattern: &[Field], values: &[Value]) -> bool {
    pattern.len() == values.len()
        && pattern
            .iter()
            .zip(values)
            .all(|(field, value)| match (field, value) {
                (Field::Any, _) => true,
                (Field::Exact(expected), value) => expected == value,
                (Field::Typed(kind), value) => value.kind() == *kind,
                (Field::Nested(inner), Value::Tuple(fields)) => matches_fields(&inner.0, fields),
                (Field::Nested(_), _) => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_wildcard_typed_and_nested_fields() {
        let t = Tuple::new(vec![
            "job".into(),
            7.into(),
            Value::Tuple(vec![1.5.into(), true.into()]),
        ]);
        let yes = [
            Pattern(vec![Field::Exact("job".into()), Field::Any, Field::Any]),
            Pattern(vec![
                Field::Typed(Kind::Str),
                Field::Typed(Kind::Int),
                Field::Typed(Kind::Tuple),
            ]),
            Pattern(vec![
                Field::Any,
                Field::Exact(7.into()),
                Field::Nested(Pattern(vec![
                    Field::Typed(Kind::Float),
                    Field::Exact(true.into()),
                ])),
            ]),
        ];
        for p in &yes {
            assert!(p.matches(&t), "{p:?}");
        }
        let no = [
            Pattern(vec![Field::Exact("job".into()), Field::Any]),
            Pattern(vec![Field::Exact("jobs".into()), Field::Any, Field::Any]),
            Pattern(vec![Field::Any, Field::Typed(Kind::Float), Field::Any]),
            Pattern(vec![Field::Any, Field::Nested(Pattern(vec![])), Field::Any]),
        ];
        for p in &no {
            assert!(!p.matches(&t), "{p:?}");
        }
        assert_eq!(
            Value::Float(f64::NAN),
            Value::Float(f64::NAN),
            "total order"
        );
        assert_ne!(
            Value::Int(1),
            Value::Float(1.0),
            "types never compare equal"
        );
        assert_eq!(
            crate::tuple!["a", 1, true],
            Tuple(vec!["a".into(), 1.into(), true.into()])
        );
        assert_eq!(crate::tuple!["a", 1].to_string(), "(\"a\", 1)");
    }
}
