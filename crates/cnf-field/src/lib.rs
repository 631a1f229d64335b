//! cnf-field
