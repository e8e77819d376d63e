//! The todo backend (hyper, sqlx, Redis). Not built yet: this crate only reserves its place
//! in the workspace until the backend issue lands.
