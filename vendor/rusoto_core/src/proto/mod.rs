pub mod json;
pub mod xml;
