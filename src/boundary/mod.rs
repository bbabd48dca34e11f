//! The boundary as its clients meet it, as data: what a refusal from the gateway or the model
//! means and what to do about it ([`refusal`]), the streamed answer's events ([`sse`]). Pure: the
//! engine sends, this reads.

pub mod cases;
pub mod refusal;
pub mod sse;
