//! Authentication: access tokens now; signup, login, refresh and sessions arrive with the accounts work.

pub mod token;
