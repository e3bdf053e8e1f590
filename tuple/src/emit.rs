//! What a collector emits: owned values or views borrowed from the input.

use crate::value::{Value, Values};
use crate::wire::ValueRef;

/// The values of an emission: owned [`Value`]s, or views ([`ValueRef`]) such as words borrowed
/// from the input, which the runtime writes into its batches without building a `Value` first.
#[derive(Debug, Clone, Copy)]
pub enum EmitValues<'a> {
    Owned(&'a [Value]),
    Refs(&'a [ValueRef<'a>]),
}

impl EmitValues<'_> {
    pub fn len(&self) -> usize {
        match self {
            EmitValues::Owned(v) => v.len(),
            EmitValues::Refs(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the values' bytes ([`crate::wire`]).
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            EmitValues::Owned(v) => crate::wire::put_values(out, v),
            EmitValues::Refs(v) => crate::wire::put_value_refs(out, v),
        }
    }

    /// The values as text, for logs.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            EmitValues::Owned(v) => v.iter().map(ToString::to_string).collect(),
            EmitValues::Refs(v) => v.iter().map(ToString::to_string).collect(),
        }
    }

    /// Owned copies of the values.
    pub fn to_values(&self) -> Values {
        match self {
            EmitValues::Owned(v) => v.iter().cloned().collect(),
            EmitValues::Refs(v) => v.iter().map(ValueRef::to_value).collect(),
        }
    }
}
