mod error;
mod payload;

pub use self::error::Error;
pub use self::payload::ResponsePayload;
