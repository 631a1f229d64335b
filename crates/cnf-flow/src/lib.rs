//! cnf-flow
