//! flux: the FluxStudio backend as a library, so integration tests and the binary share modules.

pub mod db;
