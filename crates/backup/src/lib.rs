//! `chromadb-backup`: dumps a Chroma server of any era (0.4.3 to 1.x) into one checksummed,
//! compressed archive, restores an archive into any era, and verifies an archive against a
//! live server record by record. Talks to servers through the shared era-aware client
//! (`chroma-api`), stores archives on local disk or S3 (`object_store`).

pub mod archive;
pub mod error;
pub mod location;
pub mod model;
pub mod ops;
pub mod paging;
pub mod server;

pub use error::{Error, Result};
