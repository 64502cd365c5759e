//! meshmon-trace: Datadog and Zipkin trace intake, sampling, trace assembly, service map
//! and RED stats.
pub mod decode;
pub mod encode;
pub mod error;
mod msgpack;
pub mod normalize;
pub mod sampler;
pub mod span;

pub use decode::{Format, Limits};
pub use error::DecodeError;
pub use span::{OwnedSpan, Span, SpanEvent, SpanLink, TraceChunk, TracerPayload};
