/// Whether an id from a path, query or body can be looked up at all. PostgreSQL refuses text with a
/// NUL byte (an error, not "no row"), so such ids are treated as unknown before reaching the store.
pub fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 512 && !id.contains('\0')
}
