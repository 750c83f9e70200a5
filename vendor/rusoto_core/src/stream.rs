// moved to rusoto_signature
pub use rusoto_signature::stream::*;
