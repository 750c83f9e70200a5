pub mod error;
pub mod util;
