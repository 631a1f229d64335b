//! cnf-train
