//! Store statistics for operators (`evlog stats`).
