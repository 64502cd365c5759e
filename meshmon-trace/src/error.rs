//! Decoding errors: every one carries the byte offset where the payload went wrong.

/// Why a payload could not be decoded. Offsets are byte positions in the request body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is larger than [`Limits::max_body_bytes`](crate::Limits::max_body_bytes).
    #[error("payload of {len} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Body length.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The body ended in the middle of a value.
    #[error("unexpected end of payload at byte {offset} while reading {what}")]
    UnexpectedEof {
        /// Byte offset.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A declared length runs past the end of the body.
    #[error("{what} at byte {offset} declares {len} but only {remaining} bytes remain")]
    Truncated {
        /// Byte offset of the length header.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// The declared length (elements or bytes).
        len: u64,
        /// Bytes left in the body.
        remaining: u64,
    },
    /// A declared length is over a configured [`Limits`](crate::Limits) field.
    #[error("{what} at byte {offset} has length {len}, over the limit of {limit}")]
    LimitExceeded {
        /// Byte offset of the length header.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// The declared length.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Values nest deeper than [`Limits::max_depth`](crate::Limits::max_depth).
    #[error("values nest deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Byte offset.
        offset: usize,
        /// The configured limit.
        limit: u32,
    },
    /// A value of the wrong type.
    #[error("{field} at byte {offset}: expected {expected}, found {found}")]
    Type {
        /// Byte offset of the value.
        offset: usize,
        /// The field being read.
        field: &'static str,
        /// The accepted types.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A v0.5 string-table index past the end of the table.
    #[error("string index {index} at byte {offset} is out of range (the table has {len} strings)")]
    StringIndex {
        /// Byte offset.
        offset: usize,
        /// The index read.
        index: u64,
        /// Strings in the table.
        len: usize,
    },
    /// A structural rule of the format was broken (e.g. a v0.5 span without 12 elements).
    #[error("{what} at byte {offset}: {reason}")]
    Invalid {
        /// Byte offset.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Malformed JSON.
    #[error("invalid JSON at byte {offset} (line {line}, column {column}): {message}")]
    Json {
        /// Byte offset.
        offset: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's message.
        message: String,
    },
}

impl DecodeError {
    /// The byte offset the error points at (0 for whole-body errors).
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::BodyTooLarge { .. } => 0,
            DecodeError::UnexpectedEof { offset, .. }
            | DecodeError::Truncated { offset, .. }
            | DecodeError::LimitExceeded { offset, .. }
            | DecodeError::TooDeep { offset, .. }
            | DecodeError::Type { offset, .. }
            | DecodeError::StringIndex { offset, .. }
            | DecodeError::Invalid { offset, .. }
            | DecodeError::Json { offset, .. } => *offset,
        }
    }

    pub(crate) fn from_json(body: &[u8], err: &serde_json::Error) -> Self {
        let (line, column) = (err.line(), err.column());
        // serde_json reports 1-based line and column; turn them into a byte offset.
        let mut offset = 0usize;
        let mut cur_line = 1usize;
        if line > 1 {
            for (i, &b) in body.iter().enumerate() {
                if b == b'\n' {
                    cur_line += 1;
                    if cur_line == line {
                        offset = i + 1;
                        break;
                    }
                }
            }
        }
        offset = (offset + column.saturating_sub(1)).min(body.len());
        let message = err.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        DecodeError::Json {
            offset,
            line,
            column,
            message,
        }
    }
}
